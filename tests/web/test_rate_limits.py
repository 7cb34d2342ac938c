"""Rate limits on every public door: 429 with Retry-After (S3, S8, #13 finding 5)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers import sim_account, sim_page_key
from tests.web.test_admin_auth import PASSWORD, form_token, login, make_user


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    settings.simulator_enabled = True
    settings.rate_limit_signin = "3/minute"
    settings.rate_limit_signin_account = "4/minute"
    settings.rate_limit_optin = "3/minute"
    settings.rate_limit_simulator = "3/minute"
    settings.rate_limit_simulator_read = "5/minute"
    settings.rate_limit_privacy = "3/minute"
    return settings


def _limited(r) -> bool:  # type: ignore[no-untyped-def]
    return r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_spraying_many_accounts_from_one_client_gets_429(ctx, demo, client):
    """S3: the per-client limit: one address trying account after account is slowed down."""
    codes = [login(client, f"user{i}@demo.example", "wrong password!").status_code for i in range(5)]
    assert codes[:3] == [401, 401, 401]
    r = login(client, "user9@demo.example", "wrong password!")
    assert (_limited(r) and "Too many sign-in attempts" in r.text) or "Zu viele" in r.text


def test_one_account_tried_from_many_clients_gets_429_but_not_at_its_own_browser(ctx, demo, app):
    """S3: the per-account limit holds across addresses; a browser that signed in to the account
    before is not counted, so the limit cannot shut the user out."""
    email = make_user(ctx, "agent@demo.example", "agent")
    own = TestClient(app, client=("192.0.2.1", 1))
    assert login(own, email, PASSWORD).url.path == "/admin"
    own.cookies.delete("konsent_session")
    results = []
    for i in range(5):
        attacker = TestClient(app, client=(f"198.51.100.{i + 1}", 1))
        results.append(login(attacker, email, "wrong password!").status_code)
    assert results == [401, 401, 401, 429, 429]  # 4 per minute: the user's first sign-in was one
    r = login(TestClient(app, client=("198.51.100.99", 1)), email, PASSWORD)
    assert _limited(r)
    assert login(own, email, PASSWORD).url.path == "/admin"


def test_widget_opt_ins_are_limited_per_client(ctx, demo, client):
    body = {"channel_account_id": sim_account(ctx).id, "topics": ["angebote"], "lang": "en"}
    codes = [client.post("/api/public/v1/widget/demo/optin", json=body).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200]
    r = client.post("/api/public/v1/widget/demo/optin", json=body)
    assert _limited(r) and r.headers["access-control-allow-origin"] == "*"
    other = TestClient(client.app, client=("203.0.113.5", 1))
    assert other.post("/api/public/v1/widget/demo/optin", json=body).status_code == 200


def test_simulator_sends_are_limited_per_client(ctx, demo, client):
    assert client.get("/simulator").status_code == 200
    key = sim_page_key(ctx)
    send = {"account": key, "phone": "+4915550003333", "text": "Hallo"}
    codes = [client.post("/simulator/api/send", json=send).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert _limited(client.post("/simulator/api/send", json=send))


def test_simulator_page_and_polls_are_limited_per_client(ctx, demo, client):
    codes = [client.get("/simulator").status_code for _ in range(5)]
    assert codes == [200] * 5
    assert _limited(client.get("/simulator"))
    assert _limited(client.get("/simulator/api/inbox", params={"account": "1", "phone": "+4915550003333"}))


def test_privacy_pages_are_limited_per_client(ctx, demo, client):
    """S8: guessing self-service tokens is bounded; each try costs the guesser, not other clients."""
    codes = [client.get(f"/privacy/guess{i}").status_code for i in range(3)]
    assert codes == [404, 404, 404]
    limited = client.get("/privacy/guess4", headers={"accept-language": "en"})
    assert _limited(limited) and limited.json()["detail"].startswith("Too many requests")
    assert _limited(client.post("/privacy/export/guess5"))
    assert TestClient(client.app, client=("203.0.113.6", 1)).get("/privacy/guess6").status_code == 404


def test_login_form_still_renders_when_limited(ctx, demo, client):
    for _ in range(3):
        login(client, "x@demo.example", "wrong password!")
    page = client.get("/admin/login")
    r = client.post(
        "/admin/login",
        data={
            "tenant": "demo",
            "email": "x@demo.example",
            "password": "p",
            "csrf_token": form_token(page.text),
        },
    )
    assert _limited(r) and 'name="password"' in r.text
