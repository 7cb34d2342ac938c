"""The simulator phone page plays a contact: it sends the code and sees konsent's answer (CH1, C2)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.store.tables import Consent, Contact, Message
from tests.conftest import drain
from tests.helpers import sim_account, sim_page_key

PHONE = "+49 1555 1234567"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    settings.simulator_enabled = True  # off unless the operator turns it on (S8)
    return settings


@pytest.fixture
def key(client, demo, ctx) -> str:  # type: ignore[no-untyped-def]
    """The demo simulator's page key; opening the page gives the client its browser cookie."""
    assert client.get("/simulator").status_code == 200
    return sim_page_key(ctx)


def _sign_up(client, ctx, lang: str = "en") -> dict:
    r = client.post(
        "/api/public/v1/widget/demo/optin",
        json={"channel_account_id": sim_account(ctx).id, "topics": ["produktnews"], "lang": lang},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_simulator_page_opens_with_the_prefilled_code(client, demo, ctx):
    """The widget's deep link opens the phone page with the account and the code in the compose box."""
    pending = _sign_up(client, ctx)
    link = pending["deep_link"].removeprefix("http://testserver")
    r = client.get(link)
    assert r.status_code == 200
    assert 'id="sim-text"' in r.text and 'id="sim-send"' in r.text and 'id="sim-messages"' in r.text
    assert pending["code"] in r.text
    assert "Demo GmbH" in r.text
    assert '<script src="/static/simulator.js" defer></script>' in r.text


def test_simulator_page_defaults_to_the_demo_account(client, demo, ctx):
    r = client.get("/simulator", headers={"accept-language": "de"})
    assert r.status_code == 200
    assert f'"account": "{sim_page_key(ctx)}"' in r.text
    assert "Simulator-Telefon" in r.text


def test_simulator_page_for_unknown_account_is_404(client, demo, ctx):
    assert client.get("/simulator?account=99999").status_code == 404
    assert client.get("/simulator?account=abc").status_code == 404
    assert client.get(f"/simulator?account={sim_account(ctx).id}").status_code == 404  # no key


def test_phone_sends_code_and_receives_confirmation_then_reads_it(client, demo, ctx, key):
    """C2: the code sent from the phone confirms the topic; the confirmation shows up in the inbox,
    and reading it on the phone marks konsent's message as read (the ticks staff see)."""
    pending = _sign_up(client, ctx)
    acc = key
    r = client.post(
        "/simulator/api/send",
        json={"account": acc, "phone": PHONE, "text": pending["prefill"], "name": "Alex", "lang": "en"},
    )
    assert r.status_code == 200, r.text
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
        consent = s.scalars(select(Consent)).one()
        assert consent.purpose == "newsletter:produktnews" and consent.status == "active"

    drain(ctx)
    inbox = client.get("/simulator/api/inbox", params={"account": acc, "phone": PHONE, "after": 0})
    assert inbox.status_code == 200
    msgs = inbox.json()["messages"]
    assert len(msgs) == 1
    assert "Product news" in msgs[0]["text"] and "STOP" in msgs[0]["text"]
    # Nothing newer than what the phone has seen.
    later = client.get(
        "/simulator/api/inbox", params={"account": acc, "phone": PHONE, "after": msgs[0]["id"]}
    )
    assert later.json()["messages"] == []

    ack = client.post(
        "/simulator/api/ack",
        json={"account": acc, "phone": PHONE, "ids": [msgs[0]["provider_id"]], "status": "read"},
    )
    assert ack.status_code == 200, ack.text
    with ctx.db.read() as s:
        out = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert out.provider_id == msgs[0]["provider_id"]
        assert out.status == "read"


def test_inbox_of_another_number_is_empty(client, demo, ctx, key):
    pending = _sign_up(client, ctx)
    acc = key
    client.post("/simulator/api/send", json={"account": acc, "phone": PHONE, "text": pending["prefill"]})
    drain(ctx)
    r = client.get("/simulator/api/inbox", params={"account": acc, "phone": "+49 1555 7654321"})
    assert r.json()["messages"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phone": "hello"}, "gültige Telefonnummer"),
        ({"phone": "1" * 41}, "gültige Telefonnummer"),
        ({"text": "   "}, "Bitte geben Sie eine Nachricht ein."),
        ({"text": "x" * 4097}, "höchstens 4096 Zeichen"),
        ({"name": "n" * 101}, "name"),
    ],
    ids=["bad-phone", "long-phone", "empty-text", "long-text", "long-name"],
)
def test_bad_phone_input_is_refused_with_a_message_and_nothing_received(
    client, demo, ctx, key, change, message
):
    """Bad input on the phone page: 422 with a translated message; konsent receives nothing."""
    body = {"account": key, "phone": PHONE, "text": "Hallo", "lang": "de", **change}
    r = client.post("/simulator/api/send", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["message"]
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert s.scalar(select(func.count()).select_from(Contact)) == 0


def test_send_to_unknown_account_is_404(client, demo):
    r = client.post("/simulator/api/send", json={"account": "99999", "phone": PHONE, "text": "Hallo"})
    assert r.status_code == 404


def test_inbox_with_bad_phone_is_422(client, demo, ctx, key):
    r = client.get("/simulator/api/inbox", params={"account": key, "phone": "nope", "lang": "en"})
    assert r.status_code == 422
    assert r.json()["message"].startswith("Please enter a valid phone number")


def test_ack_with_bad_status_is_422(client, demo, ctx, key):
    r = client.post(
        "/simulator/api/ack",
        json={"account": key, "phone": PHONE, "ids": ["sim.x"], "status": "deleted", "lang": "en"},
    )
    assert r.status_code == 422


def test_a_media_broadcast_reaches_the_simulated_phone_as_a_link_with_its_caption(client, demo, ctx, key):
    """M3, CH3: the demo can try media broadcasts: the simulator takes media by link like the real
    channels, and the phone page gets the link, its kind and the caption (it never loads the file)."""
    from konsent.flows.outbound import broadcast as bc
    from konsent.flows.outbound import broadcast_stats

    pending = _sign_up(client, ctx)
    acc = key
    r = client.post("/simulator/api/send", json={"account": acc, "phone": PHONE, "text": pending["prefill"]})
    assert r.status_code == 200, r.text
    drain(ctx)  # the confirmation
    with ctx.db.write() as s:
        b = bc.create_broadcast(
            ctx, s, demo.tenant_id, name="Katalog", topic="produktnews", text="Unser Katalog 2027",
            media_url="https://cdn.example.com/katalog.pdf", media_kind="document",
            media_filename="Katalog-2027.pdf",
        )  # fmt: skip
        bc.schedule(s, b, None)
        bid = b.id
    bc.queue_all(ctx, demo.tenant_id, bid)
    drain(ctx)
    with ctx.db.read() as s:
        st = broadcast_stats.stats(s, bc.get_broadcast(s, demo.tenant_id, bid))
    assert (st.sent, st.skipped) == (1, 0)
    msgs = client.get("/simulator/api/inbox", params={"account": acc, "phone": PHONE}).json()["messages"]
    assert msgs[-1]["text"] == "Unser Katalog 2027"
    assert msgs[-1]["media"] == {
        "url": "https://cdn.example.com/katalog.pdf",
        "kind": "document",
        "filename": "Katalog-2027.pdf",
    }
    assert msgs[0]["media"] is None  # the confirmation is text only
