"""Staff and API tokens from the admin: invitations, roles, deactivation, resets, 2FA per role,
tokens with expiry and last use, revocation, the CLI (#12, S3, U5)."""

from __future__ import annotations

import re
import socket
import time
from datetime import timedelta

import pyotp
import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from konsent.flows.organisation import staff, tenants, totp
from konsent.store.tables import ApiToken, AuditEntry, StaffSession, StaffTotp, StaffUser
from konsent.store.types import utcnow
from tests.web.test_admin_auth import PASSWORD, as_role, form_token, login, make_user

EN = {"accept-language": "en"}
NEW_PASSWORD = "a brand new passphrase"


def _invite(client: TestClient, token: str, email: str, role: str = "agent"):  # type: ignore[no-untyped-def]
    return client.post(
        "/admin/staff/invite",
        data={"csrf_token": token, "email": email, "role": role, "name": "Eva"},
        headers=EN,
    )


def _link(html: str) -> str:
    m = re.search(r'id="one-time-link">http://testserver(/admin/invite/[^<]+)</code>', html)
    assert m, "no one-time link on the page"
    return m.group(1)


def _user(ctx, email: str) -> StaffUser:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(StaffUser).where(StaffUser.email == email)).one()


def test_invitation_link_is_shown_once_works_once_and_the_invitee_signs_in(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    r = _invite(client, token, "eva@demo.example")
    assert r.status_code == 200 and "it is shown only now" in r.text
    path = _link(r.text)
    assert path not in client.get("/admin/staff").text  # shown once
    assert "invited" in client.get("/admin/staff", headers=EN).text
    fresh = TestClient(client.app)
    form = fresh.get(path)
    assert form.status_code == 200 and "eva@demo.example" in form.text
    mismatch = fresh.post(path, data={"new": NEW_PASSWORD, "repeat": "something else"}, headers=EN)
    assert mismatch.status_code == 422 and "The two new passwords differ." in mismatch.text
    done = fresh.post(path, data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert done.url.path == "/admin/login"
    assert fresh.post(path, data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}).status_code == 404
    assert fresh.get(path).status_code == 404
    assert login(fresh, "eva@demo.example", NEW_PASSWORD).url.path == "/admin"
    assert _user(ctx, "eva@demo.example").role == "agent"


def test_an_invitation_link_expires_after_72_hours(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    path = _link(_invite(client, token, "late@demo.example").text)
    with time_machine.travel(utcnow() + timedelta(hours=73), tick=False):
        assert client.get(path).status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_with_smtp_configured_the_invitation_is_emailed(ctx, demo, client, monkeypatch):
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received: list[tuple[list[str], str]] = []

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
            return "250 OK"

    port = _free_port()
    controller = aiosmtpd.Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setattr(ctx.settings, "smtp_host", "127.0.0.1")
        monkeypatch.setattr(ctx.settings, "smtp_port", port)
        monkeypatch.setattr(ctx.settings, "smtp_from", "konsent@demo.example")
        monkeypatch.setattr(ctx.settings, "smtp_starttls", False)
        token = as_role(ctx, client, "owner")
        r = _invite(client, token, "mail@demo.example")
        assert "The link was sent by e-mail." in r.text
        path = _link(r.text)
        for _ in range(50):
            if received:
                break
            time.sleep(0.05)
    finally:
        controller.stop()
    assert received and received[0][0] == ["mail@demo.example"]
    assert path in received[0][1]


def test_deactivating_a_user_ends_their_session_and_their_tokens_at_once(ctx, demo, client):
    """S3: the deactivated member's open browser session and API token stop working immediately."""
    owner_token = as_role(ctx, client, "owner")
    make_user(ctx, "leaver@demo.example", "admin")
    theirs = TestClient(client.app)
    r = login(theirs, "leaver@demo.example", PASSWORD)
    assert r.url.path == "/admin"
    created = theirs.post(
        "/admin/tokens",
        data={"csrf_token": form_token(r.text), "name": "crm", "role": "agent", "expires_days": "30"},
    )
    api_key = re.search(r'id="new-token">([^<]+)<', created.text).group(1)
    auth = {"authorization": f"Bearer {api_key}"}
    assert theirs.get("/api/v1/topics", headers=auth).status_code == 200
    assert theirs.get("/admin/contacts").status_code == 200
    uid = _user(ctx, "leaver@demo.example").id
    r = client.post(f"/admin/staff/{uid}/deactivate", data={"csrf_token": owner_token})
    assert r.status_code == 200
    assert theirs.get("/admin/contacts", follow_redirects=False).status_code in (303, 401)
    assert TestClient(client.app).get("/api/v1/topics", headers=auth).status_code == 401
    with ctx.db.read() as s:
        assert not s.scalars(select(StaffSession).where(StaffSession.user_id == uid)).all()
        assert s.scalars(select(ApiToken).where(ApiToken.user_id == uid)).one().revoked_at is not None
    assert login(TestClient(client.app), "leaver@demo.example", PASSWORD).status_code == 401
    tokens_page = client.get("/admin/tokens", headers=EN).text
    assert "revoked" in tokens_page


def test_reset_password_ends_sessions_and_gives_a_one_time_link(ctx, demo, client):
    owner_token = as_role(ctx, client, "owner")
    make_user(ctx, "forgot@demo.example", "agent")
    theirs = TestClient(client.app)
    assert login(theirs, "forgot@demo.example", PASSWORD).url.path == "/admin"
    uid = _user(ctx, "forgot@demo.example").id
    r = client.post(f"/admin/staff/{uid}/reset-password", data={"csrf_token": owner_token}, headers=EN)
    assert "their sessions have ended" in r.text
    assert theirs.get("/admin/contacts", follow_redirects=False).status_code in (303, 401)
    assert login(TestClient(client.app), "forgot@demo.example", PASSWORD).status_code == 401
    fresh = TestClient(client.app)
    fresh.post(_link(r.text), data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert login(fresh, "forgot@demo.example", NEW_PASSWORD).url.path == "/admin"


def test_reset_second_factor_removes_the_authenticator(ctx, demo, client):
    owner_token = as_role(ctx, client, "owner")
    make_user(ctx, "lostphone@demo.example", "agent")
    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.email == "lostphone@demo.example")).one()
        secret = totp.enrolment(ctx, s, user).secret
        totp.confirm(ctx, s, user, pyotp.TOTP(secret).now(), actor="test")
        uid = user.id
    assert (
        login(TestClient(client.app), "lostphone@demo.example", PASSWORD).status_code == 401
    )  # needs a code
    client.post(f"/admin/staff/{uid}/reset-2fa", data={"csrf_token": owner_token})
    with ctx.db.read() as s:
        assert s.get(StaffTotp, uid) is None
    assert login(TestClient(client.app), "lostphone@demo.example", PASSWORD).url.path == "/admin"


def test_a_role_that_requires_2fa_is_sent_to_set_it_up_before_anything_else(ctx, demo, client):
    owner_token = as_role(ctx, client, "owner")
    r = client.post(
        "/admin/staff-settings",
        data={"csrf_token": owner_token, "require_2fa": ["agent"], "time_zone": "Europe/Berlin"},
    )
    assert r.status_code == 200
    make_user(ctx, "agent2@demo.example", "agent")
    theirs = TestClient(client.app)
    r = login(theirs, "agent2@demo.example", PASSWORD)
    assert r.url.path == "/admin/security/totp"
    assert (
        "Ihre Rolle verlangt einen zweiten Faktor"
        in theirs.get("/admin/security/totp", headers={"accept-language": "de"}).text
    )
    assert theirs.get("/admin/inbox").url.path == "/admin/security/totp"
    user = _user(ctx, "agent2@demo.example")
    with ctx.db.write() as s:
        secret = totp.enrolment(ctx, s, s.get(StaffUser, user.id)).secret
    theirs.post(
        "/admin/security/totp",
        data={"csrf_token": form_token(r.text), "code": pyotp.TOTP(secret).now(), "action": "confirm"},
    )
    assert theirs.get("/admin/inbox").url.path == "/admin/inbox"
    # a role without the rule is not affected
    assert (
        login(TestClient(client.app), make_user(ctx, "view@demo.example", "viewer"), PASSWORD).url.path
        == "/admin"
    )


def test_roles_change_but_the_last_owner_stays_and_admins_cannot_make_owners(ctx, demo, client):
    admin_token = as_role(ctx, client, "admin")
    make_user(ctx, "someone@demo.example", "agent")
    uid = _user(ctx, "someone@demo.example").id
    r = client.post(f"/admin/staff/{uid}/role", data={"csrf_token": admin_token, "role": "owner"}, headers=EN)
    assert r.status_code == 422 and "Only an owner can give the owner role." in r.text
    client.post(f"/admin/staff/{uid}/role", data={"csrf_token": admin_token, "role": "dpo"})
    assert _user(ctx, "someone@demo.example").role == "dpo"
    client.cookies.clear()
    owner_token = as_role(ctx, client, "owner")
    owner = _user(ctx, "owner-user@demo.example")
    with ctx.db.write() as s:  # the demo's own owner leaves, so this is the last one
        s.scalars(select(StaffUser).where(StaffUser.email == demo.admin_email)).one().disabled = True
    r = client.post(
        f"/admin/staff/{owner.id}/role", data={"csrf_token": owner_token, "role": "admin"}, headers=EN
    )
    assert r.status_code == 409 and "at least one active owner" in r.text
    assert _user(ctx, "owner-user@demo.example").role == "owner"
    r = client.post(f"/admin/staff/{owner.id}/deactivate", data={"csrf_token": owner_token}, headers=EN)
    assert r.status_code == 422 and "You cannot deactivate yourself." in r.text


def test_agents_cannot_open_staff_or_token_pages(ctx, demo, client):
    token = as_role(ctx, client, "agent")
    assert client.get("/admin/staff").status_code == 403
    assert client.get("/admin/tokens").status_code == 403
    assert (
        client.post(
            "/admin/staff/invite", data={"csrf_token": token, "email": "x@y.z", "role": "owner"}
        ).status_code
        == 403
    )


def test_user_menu_links_own_account_password_and_second_factor(ctx, demo, client):
    as_role(ctx, client, "agent")
    html = client.get("/admin", headers=EN).text
    for href in ('href="/admin/me"', 'href="/admin/password"', 'href="/admin/security/totp"'):
        assert href in html


def test_api_token_lists_last_use_expires_and_can_be_revoked(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    r = client.post(
        "/admin/tokens",
        data={"csrf_token": token, "name": "shop", "role": "agent", "expires_days": "7"},
        headers=EN,
    )
    key = re.search(r'id="new-token">([^<]+)<', r.text).group(1)
    assert key.startswith("ks_")
    assert key not in client.get("/admin/tokens").text  # shown once
    api = TestClient(client.app)
    auth = {"authorization": f"Bearer {key}"}
    assert api.get("/api/v1/topics", headers=auth).status_code == 200
    with ctx.db.read() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "shop")).one()
        assert row.last_used_at is not None and row.role == "agent"
    page = client.get("/admin/tokens", headers=EN).text
    assert "shop" in page and "never" not in page.split("shop")[1].split("</tr>")[0]
    with time_machine.travel(utcnow() + timedelta(days=8), tick=False):
        assert api.get("/api/v1/topics", headers=auth).status_code == 401
    client.post(f"/admin/tokens/{row.id}/revoke", data={"csrf_token": token})
    assert api.get("/api/v1/topics", headers=auth).status_code == 401
    bad = client.post(
        "/admin/tokens",
        data={"csrf_token": token, "name": "x", "role": "agent", "expires_days": "0"},
        headers=EN,
    )
    assert bad.status_code == 422 and "1 to 3650 days" in bad.text
    with ctx.db.read() as s:
        actions = set(s.scalars(select(AuditEntry.action)).all())
    assert {"token.create", "token.revoke"} <= actions


def test_cli_lists_and_revokes_tokens(ctx, demo, monkeypatch):
    from konsent import cli

    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)
    with ctx.db.write() as s:
        key = staff.create_api_token(s, tenants.tenant_by_slug(s, "demo"), "erp", "viewer")
    runner = CliRunner()
    out = runner.invoke(cli.app, ["token", "list", "demo"])
    assert out.exit_code == 0 and "erp" in out.output and "viewer" in out.output and "active" in out.output
    assert key not in out.output
    token_id = out.output.split("\t", 1)[0].strip()
    out = runner.invoke(cli.app, ["token", "revoke", "demo", token_id])
    assert out.exit_code == 0
    with ctx.db.read() as s:
        assert staff.token_tenant(s, key) is None
    assert "revoked" in runner.invoke(cli.app, ["token", "list", "demo"]).output
    missing = runner.invoke(cli.app, ["token", "revoke", "demo", "999"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    made = runner.invoke(
        cli.app, ["token", "create", "demo", "ci", "--role", "agent", "--expires-days", "30"]
    )
    assert made.exit_code == 0 and made.output.strip().startswith("ks_")


def test_cli_invites_and_deactivates_staff(ctx, demo, monkeypatch, client):
    from konsent import cli

    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)
    runner = CliRunner()
    out = runner.invoke(cli.app, ["user", "invite", "demo", "cli@demo.example", "--role", "dpo"])
    assert out.exit_code == 0, out.output
    path = out.output.strip().removeprefix("http://testserver")
    assert path.startswith("/admin/invite/")
    client.post(path, data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert login(client, "cli@demo.example", NEW_PASSWORD).url.path == "/admin"
    bad = runner.invoke(cli.app, ["user", "invite", "demo", "x@demo.example", "--role", "superuser"])
    assert bad.exit_code == 2 and "Unknown role." in bad.output and "Traceback" not in bad.output
    out = runner.invoke(cli.app, ["user", "deactivate", "demo", "cli@demo.example"])
    assert out.exit_code == 0 and "sessions ended" in out.output
    assert client.get("/admin/contacts", follow_redirects=False).status_code in (303, 401)
    missing = runner.invoke(cli.app, ["user", "deactivate", "demo", "nobody@demo.example"])
    assert missing.exit_code == 2 and "No such staff member." in missing.output
