"""Admin sign-in: one-time password, throttling, CSRF, language (S3, U1, U2)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from konsent.flows.context import Konsent
from konsent.flows.organisation import staff, tenants
from konsent.store.tables import StaffUser

PASSWORD = "correct horse battery"


def form_token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1)


def login(client: TestClient, email: str, password: str, tenant: str = "demo"):  # type: ignore[no-untyped-def]
    """Sign in through the form, as a browser would."""
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"tenant": tenant, "email": email, "password": password, "csrf_token": form_token(page.text)},
    )


def make_user(ctx: Konsent, email: str, role: str, tenant_slug: str = "demo") -> str:
    with ctx.db.write() as s:
        staff.create_user(s, tenants.tenant_by_slug(s, tenant_slug), email, PASSWORD, role)
    return email


def as_role(ctx: Konsent, client: TestClient, role: str) -> str:
    """Sign in a fresh user of `role` on the demo tenant; return the page's CSRF token."""
    email = make_user(ctx, f"{role}-user@demo.example", role)
    r = login(client, email, PASSWORD)
    assert r.status_code == 200 and r.url.path == "/admin", r.text
    return form_token(r.text)


def test_seeded_one_time_password_forces_a_new_password_first(ctx, demo, client):
    """U1: the printed one-time password signs in, but only to choose a new password."""
    r = login(client, demo.admin_email, demo.admin_password)
    assert r.url.path == "/admin/password"
    assert client.get("/admin/contacts").url.path == "/admin/password"
    token = form_token(r.text)
    bad = client.post(
        "/admin/password",
        data={"current": demo.admin_password, "new": "short", "repeat": "short", "csrf_token": token},
    )
    assert bad.status_code == 422
    r = client.post(
        "/admin/password",
        data={"current": demo.admin_password, "new": PASSWORD, "repeat": PASSWORD, "csrf_token": token},
    )
    assert r.url.path == "/admin" and r.status_code == 200
    assert client.get("/admin/contacts").status_code == 200
    with ctx.db.read() as s:
        user = s.query(StaffUser).filter_by(email=demo.admin_email).one()
        assert not user.must_change_password
    # the old one-time password no longer works; the new one does
    fresh = TestClient(client.app)
    assert login(fresh, demo.admin_email, demo.admin_password).status_code == 401
    assert login(fresh, demo.admin_email, PASSWORD).url.path == "/admin"


def test_five_wrong_passwords_lock_the_account(ctx, demo, client):
    """S3: login throttling — after 5 failures even the right password is refused for a while."""
    email = make_user(ctx, "agent@demo.example", "agent")
    for _ in range(5):
        r = login(client, email, "wrong password!")
        assert r.status_code == 401
        assert "admin/login" in str(r.url)
    r = login(client, email, PASSWORD)
    assert r.status_code == 401
    assert client.get("/admin/contacts").url.path == "/admin/login"


def test_unknown_tenant_or_user_gets_the_same_answer(ctx, demo, client):
    """Sign-in failures reveal neither which tenants nor which users exist."""
    make_user(ctx, "agent@demo.example", "agent")
    a = login(client, "agent@demo.example", "wrong password!", tenant="no-such-tenant")
    b = login(client, "nobody@demo.example", "wrong password!")
    assert a.status_code == b.status_code == 401


def test_unauthenticated_admin_pages_redirect_to_login(ctx, demo, client):
    for path in ("/admin", "/admin/contacts", "/admin/contacts/1", "/admin/ledger", "/admin/channels"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin/login", path


def test_post_without_csrf_token_is_refused(ctx, demo, client):
    """Every admin form is CSRF-protected: a forged POST changes nothing (S3)."""
    as_role(ctx, client, "owner")
    assert client.post("/admin/logout", data={}).status_code == 403
    assert client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/admin/contacts").status_code == 200  # still signed in
    r = client.post(
        "/admin/login", data={"tenant": "demo", "email": "owner-user@demo.example", "password": PASSWORD}
    )
    assert r.status_code == 403


def test_session_cookie_is_http_only_and_logout_ends_it(ctx, demo, client):
    email = make_user(ctx, "owner@demo.example", "owner")
    page = client.get("/admin/login")
    r = client.post(
        "/admin/login",
        data={"tenant": "demo", "email": email, "password": PASSWORD, "csrf_token": form_token(page.text)},
        follow_redirects=False,
    )
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("konsent_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    token = form_token(client.get("/admin").text)
    r = client.post("/admin/logout", data={"csrf_token": token})
    assert r.url.path == "/admin/login"
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_language_follows_browser_and_switch_sticks(ctx, demo, client):
    """U2: German or English by Accept-Language, switchable by cookie."""
    as_role(ctx, client, "owner")
    assert "Kontakte" in client.get("/admin", headers={"accept-language": "de-DE,de;q=0.9"}).text
    assert ">Contacts<" in client.get("/admin", headers={"accept-language": "en-GB"}).text
    client.get("/admin/lang/de?next=/admin/contacts", headers={"accept-language": "en"})
    r = client.get("/admin", headers={"accept-language": "en"})
    assert "Kontakte" in r.text and 'lang="de"' in r.text
    # only admin paths are valid targets
    r = client.get("/admin/lang/en?next=https://evil.example/", follow_redirects=False)
    assert r.headers["location"] == "/admin"


def test_wrong_current_password_counts_towards_the_lock_and_new_password_ends_other_sessions(
    ctx, demo, client
):
    """S3: the password form is no way around throttling; a changed password signs out elsewhere."""
    token = as_role(ctx, client, "agent")
    other = type(client)(client.app)
    assert login(other, "agent-user@demo.example", PASSWORD).url.path == "/admin"
    r = client.post(
        "/admin/password",
        data={
            "current": "not my password",
            "new": "another password 1",
            "repeat": "another password 1",
            "csrf_token": token,
        },
        headers={"accept-language": "en"},
    )
    assert r.status_code == 422 and "The current password is wrong." in r.text
    with ctx.db.read() as s:
        assert s.query(StaffUser).filter_by(email="agent-user@demo.example").one().failed_logins == 1
    r = client.post(
        "/admin/password",
        data={
            "current": PASSWORD,
            "new": "another password 1",
            "repeat": "another password 1",
            "csrf_token": token,
        },
    )
    assert r.url.path == "/admin"
    assert client.get("/admin/contacts").status_code == 200
    assert other.get("/admin/contacts").url.path == "/admin/login"
