"""The public simulator acts only for the browser that made a phone, and only when enabled (S8, #13).

An anonymous caller must not send DATEN, STOP or LÖSCHEN as another browser's phone, read its
mailbox, acknowledge its messages, or find other tenants by counting account ids."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from konsent.channels.simulator import page_key
from konsent.flows.inbound import simulator, simulator_phones
from konsent.flows.organisation import tenants
from konsent.flows.privacy import rights as privacy
from konsent.settings import get_settings
from konsent.store.tables import ChannelAccount, Message, PrivacyExport, PrivacyRequest, SimulatorPhone
from tests.conftest import drain
from tests.flows.test_cli import cli, cli_on_test_db  # noqa: F401  (fixtures)
from tests.helpers import request_code, sim_account, sim_page_key

PHONE = "+4915550001111"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    settings.simulator_enabled = True
    return settings


def _browser(app) -> TestClient:  # type: ignore[no-untyped-def]
    """A fresh browser that opened the demo's phone page (and so has its secret cookie)."""
    c = TestClient(app)
    assert c.get("/simulator").status_code == 200
    assert c.cookies.get("konsent_sim")
    return c


def _send(c: TestClient, key: str, text: str, phone: str = PHONE):  # type: ignore[no-untyped-def]
    return c.post("/simulator/api/send", json={"account": key, "phone": phone, "text": text, "lang": "en"})


def _messages_in(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) or 0)


@pytest.fixture
def owner(app, ctx, demo):  # type: ignore[no-untyped-def]
    """Browser A signed PHONE up and has konsent's confirmation in its mailbox."""
    a = _browser(app)
    key = sim_page_key(ctx)
    assert _send(a, key, request_code(ctx, ["angebote"]).prefill).status_code == 200
    drain(ctx)
    return a, key


def test_simulator_pages_and_api_are_404_unless_the_operator_enables_them(ctx, demo, settings, app):
    """S8: a production installation has no public simulator at all."""
    settings.simulator_enabled = False
    c = TestClient(app)
    key = sim_page_key(ctx)
    assert c.get("/simulator").status_code == 404
    assert c.get(f"/simulator?account={key}").status_code == 404
    assert _send(c, key, "Hallo").status_code == 404
    assert c.get("/simulator/api/inbox", params={"account": key, "phone": PHONE}).status_code == 404
    ack = {"account": key, "phone": PHONE, "ids": ["sim.x"], "status": "read"}
    assert c.post("/simulator/api/ack", json=ack).status_code == 404
    assert _messages_in(ctx) == 0


@pytest.mark.parametrize("keyword", ["DATEN", "STOP", "LÖSCHEN"])
def test_another_browser_cannot_send_keywords_as_my_phone(owner, app, ctx, keyword):
    """S8: DATEN (export link), STOP and LÖSCHEN from a second browser as the first one's number are
    refused with 403; konsent receives nothing, no export and no request is made."""
    _, key = owner
    before = _messages_in(ctx)
    r = _send(_browser(app), key, keyword)
    assert r.status_code == 403 and "another simulator phone" in r.json()["message"]
    assert _messages_in(ctx) == before
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(PrivacyExport)) == 0
        assert s.scalar(select(func.count()).select_from(PrivacyRequest)) == 0


def test_a_caller_without_the_browser_cookie_cannot_send_at_all(owner, app, ctx):
    _, key = owner
    before = _messages_in(ctx)
    assert _send(TestClient(app), key, "STOP").status_code == 403
    assert _send(TestClient(app), key, "Hallo", phone="+4915550009999").status_code == 403
    assert _messages_in(ctx) == before


def test_another_browser_reads_an_empty_mailbox_for_my_phone(owner, app, ctx):
    a, key = owner
    mine = a.get("/simulator/api/inbox", params={"account": key, "phone": PHONE}).json()["messages"]
    assert mine  # the confirmation
    other = _browser(app).get("/simulator/api/inbox", params={"account": key, "phone": PHONE})
    assert other.status_code == 200 and other.json()["messages"] == []


def test_another_browser_cannot_mark_my_messages_read(owner, app, ctx):
    a, key = owner
    [msg] = a.get("/simulator/api/inbox", params={"account": key, "phone": PHONE}).json()["messages"]
    b = _browser(app)
    for phone in (PHONE, "+4915550002222"):
        body = {"account": key, "phone": phone, "ids": [msg["provider_id"]], "status": "read"}
        assert b.post("/simulator/api/ack", json=body).status_code == 200
    with ctx.db.read() as s:
        assert s.scalars(select(Message.status).where(Message.direction == "out")).one() != "read"


def test_a_number_known_from_elsewhere_cannot_be_taken_over(ctx, demo, app):
    """A contact that konsent knows on the account (not made by any browser) stays out of reach."""
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Hallo")
    r = _send(_browser(app), sim_page_key(ctx), "DATEN")
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(SimulatorPhone)) == 0


def test_my_own_new_number_works_and_stays_mine(ctx, demo, app):
    a = _browser(app)
    key = sim_page_key(ctx)
    assert _send(a, key, "Hallo").status_code == 200
    assert _send(a, key, "Noch einmal").status_code == 200
    assert _messages_in(ctx) == 2


def test_account_ids_cannot_be_enumerated_and_other_tenants_stay_hidden(ctx, demo, app):
    """S2, S8: only a link with the page key opens another tenant's simulator; counting ids gives
    404 pages without any tenant name, the API refuses bare or forged keys."""
    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "acme", "Acme Secret Holding")
        acc = tenants.create_channel_account(
            ctx, s, other, "simulator", "Sim", provider_ref="simulator", secrets_={"webhook_secret": "s" * 24}
        )
        acc_id = acc.id
    c = _browser(app)
    for n in range(1, acc_id + 3):
        for value in (str(n), f"{n}.{'0' * 32}"):
            r = c.get(f"/simulator?account={value}")
            assert r.status_code == 404 and "Acme" not in r.text
            assert _send(c, value, "Hallo").status_code == 404
    with ctx.db.read() as s:
        key = page_key(tenants.account_config(ctx, s, s.get(ChannelAccount, acc_id)))
    assert simulator_phones.open_page(ctx, key).tenant_name == "Acme Secret Holding"
    assert "Acme Secret Holding" in c.get(f"/simulator?account={key}").text


def test_erasing_a_contact_frees_nothing_for_others_to_read(owner, app, ctx, demo):
    """D2: the erased phone's mailbox and binding are gone; a new browser then finds an empty mailbox."""
    _, key = owner
    with ctx.db.write() as s:
        cid = s.scalars(select(Message.contact_id)).first()
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "staff")
    b = _browser(app)
    assert _send(b, key, "Hallo").status_code == 200
    assert b.get("/simulator/api/inbox", params={"account": key, "phone": PHONE}).json()["messages"] == []


def test_konsent_demo_serves_with_the_simulator_and_serve_without(ctx, cli_on_test_db, monkeypatch):  # noqa: F811
    """U1, S8: `konsent demo` turns the simulator on; plain `konsent serve` leaves it off."""
    import konsent.cli as konsent_cli
    from konsent.cli import run

    served: list[bool] = []
    monkeypatch.setattr(run, "_serve", lambda c, *_: served.append(c.settings.simulator_enabled))
    first = cli_on_test_db.invoke(konsent_cli.app, ["demo"])
    assert first.exit_code == 0, first.output
    get_settings.cache_clear()
    second = cli_on_test_db.invoke(konsent_cli.app, ["serve"])
    assert second.exit_code == 0, second.output
    assert served == [True, False]
