"""Optional TOTP second factor at sign-in (S3)."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from konsent.flows.organisation import staff, tenants, totp
from konsent.store.tables import StaffUser

PASSWORD = "correct-horse-battery"


def _enrolled_user(ctx) -> str:  # type: ignore[no-untyped-def]
    """An agent with a confirmed authenticator; returns the TOTP secret."""
    with ctx.db.write() as s:
        user = staff.create_user(
            s, tenants.tenant_by_slug(s, "demo"), "agent@demo.example", PASSWORD, "agent"
        )
        secret = totp.enrolment(ctx, s, user).secret
        totp.confirm(ctx, s, user, pyotp.TOTP(secret).now(), actor=f"user:{user.id}")
    with ctx.db.write() as s:  # the enrolment code is spent; make the next one fresh
        row = s.get(totp.StaffTotp, user.id)
        row.last_step = 0
    return secret


def _login(client, code: str = ""):  # type: ignore[no-untyped-def]
    page = client.get("/admin/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/admin/login",
        data={
            "tenant": "demo",
            "email": "agent@demo.example",
            "password": PASSWORD,
            "totp_code": code,
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )


def test_enrolled_user_needs_the_authenticator_code_to_sign_in(ctx, demo, client):
    secret = _enrolled_user(ctx)
    assert _login(client).status_code == 401  # right password, no code
    assert _login(client, "000000").status_code == 401  # right password, wrong code
    ok = _login(client, pyotp.TOTP(secret).now())
    assert ok.status_code == 303 and "konsent_session" in ok.headers.get("set-cookie", "")


def test_wrong_codes_count_towards_the_lock(ctx, demo, client):
    secret = _enrolled_user(ctx)
    for _ in range(staff.MAX_FAILURES):
        assert _login(client, "000000").status_code == 401
    # Locked now: even the right code and password are refused.
    assert _login(client, pyotp.TOTP(secret).now()).status_code == 401
    with ctx.db.read() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.email == "agent@demo.example")).one()
        assert user.locked_until is not None
