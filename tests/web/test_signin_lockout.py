"""Sign-in lock-out counted atomically on both databases; trusted browsers stay admitted (S3, #13)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import select

from konsent.flows.organisation import signin
from konsent.store.tables import StaffUser
from tests.web.test_admin_auth import PASSWORD, login, make_user

EMAIL = "agent@demo.example"


def _parallel_sign_ins(ctx, passwords: list[str]) -> list[bool]:  # type: ignore[no-untyped-def]
    """All attempts start together, each in its own transaction, as parallel requests would."""
    start = threading.Barrier(len(passwords))

    def attempt(password: str) -> bool:
        start.wait()
        with ctx.db.write() as s:
            return signin.sign_in(ctx, s, "demo", EMAIL, password) is not None

    with ThreadPoolExecutor(len(passwords)) as pool:
        return list(pool.map(attempt, passwords))


def _locked(ctx) -> bool:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(StaffUser.locked_until).where(StaffUser.email == EMAIL)).one() is not None


def test_forty_wrong_passwords_in_parallel_lock_the_account(ctx, demo):
    """S3: no lost updates: 40 failures at once count as 40, so the account is locked afterwards
    and the right password is refused."""
    make_user(ctx, EMAIL, "agent")
    assert not any(_parallel_sign_ins(ctx, ["wrong password!"] * 40))
    assert _locked(ctx)
    with ctx.db.write() as s:
        assert signin.sign_in(ctx, s, "demo", EMAIL, PASSWORD) is None


def test_a_burst_with_the_right_password_after_the_threshold_does_not_sign_in(ctx, demo):
    """S3: once five failures happened, a parallel burst mixing right and wrong passwords gets nowhere."""
    make_user(ctx, EMAIL, "agent")
    assert not any(_parallel_sign_ins(ctx, ["wrong password!"] * 10))
    assert not any(_parallel_sign_ins(ctx, [PASSWORD, "wrong password!"] * 5))


def test_an_attacker_cannot_lock_the_user_out_of_a_browser_they_signed_in_with(ctx, demo, client):
    """S3: the lock shuts out unknown browsers only; the user's own browser (trusted-device cookie
    from an earlier sign-in) still gets in with the right password, an attacker's does not."""
    make_user(ctx, EMAIL, "agent")
    assert login(client, EMAIL, PASSWORD).url.path == "/admin"
    assert client.cookies.get("konsent_device")
    client.cookies.delete("konsent_session")
    attacker = TestClient(client.app, client=("198.51.100.7", 4000))
    for _ in range(5):
        assert login(attacker, EMAIL, "wrong password!").status_code == 401
    assert _locked(ctx)
    assert login(attacker, EMAIL, PASSWORD).status_code == 401
    assert login(client, EMAIL, PASSWORD).url.path == "/admin"


def test_a_forged_or_other_users_device_cookie_does_not_lift_the_lock(ctx, demo, client):
    """The trusted-device cookie is a MAC over user and password hash: copying another user's or
    making one up does not help."""
    make_user(ctx, EMAIL, "agent")
    make_user(ctx, "other@demo.example", "agent")
    assert login(client, "other@demo.example", PASSWORD).url.path == "/admin"
    other_device = client.cookies.get("konsent_device")
    attacker = TestClient(client.app, client=("198.51.100.8", 4000))
    for _ in range(5):
        login(attacker, EMAIL, "wrong password!")
    for forged in (other_device, "1.abcdefghijkl.00", f"{other_device}x"):
        attacker.cookies.set("konsent_device", forged or "")
        assert login(attacker, EMAIL, PASSWORD).status_code == 401
