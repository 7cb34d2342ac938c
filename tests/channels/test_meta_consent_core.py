# ruff: noqa: F811
"""The consent core against the Meta fake on every Meta channel: service reply with status tracking,
opt-in by code and STOP (CH1, CH4, C2, C4). WhatsApp and Messenger have their own deeper tests; this
file makes sure no channel of the family is left out (360dialog, Instagram included)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from konsent.flows import message_desk
from konsent.store.tables import Consent, Message
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain

WA_USER, PSID = "4915112345678", "6543210987654321"
KINDS = ["whatsapp", "dialog360", "messenger", "instagram"]


def user_says(fake: Any, kind: str, text: str) -> Any:
    if kind in ("whatsapp", "dialog360"):
        return fake.user_text(fx.WA_PHONE_ID, WA_USER, text)
    return fake.user_message(fx.PAGE_ID, PSID, text)


def hand_over(client: Any, conn: fx.Connected, deliveries: list[Any]) -> None:
    """POST the fake's webhooks to konsent; Instagram's entry id is the IG account (re-signed)."""
    for d in deliveries:
        body, headers = d.body, d.headers
        if conn.kind == "instagram":
            body = body.replace(f'"id":"{fx.PAGE_ID}","time"'.encode(), f'"id":"{fx.IG_ID}","time"'.encode())
            headers = fx.signed(body)
        r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=headers)
        assert r.status_code == 200, (conn.kind, r.status_code, r.text)


def sent_texts(fake: Any, kind: str) -> list[str]:
    out = []
    for a in fake.accepted:
        body = a["body"]
        if kind not in ("whatsapp", "dialog360"):
            out.append(body["message"]["text"])
        elif body["type"] == "text":
            out.append(body["text"]["body"])
        else:  # a bot greeting with buttons
            out.append(body["interactive"]["body"]["text"])
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_service_reply_reaches_the_provider_and_its_statuses_end_at_read(ctx, client, fake, kind):
    """CH1, CH4: the contact writes; staff answers on purpose `service`; the fake's receipts → read."""
    conn = fx.connect(ctx, kind, fake)
    fake.status_flow = ()
    fake.take_outgoing()
    hand_over(client, conn, [user_says(fake, kind, "Habt ihr Samstag offen?")])
    fake.take_outgoing()
    drain(ctx)  # a bot greeting, if the tenant has one
    fake.status_flow = ("sent", "delivered", "read")
    with ctx.db.write() as s:
        contact_id = s.scalars(select(Message.contact_id).where(Message.direction == "in")).one()
        msg_id = message_desk.send_message(
            ctx, s, conn.tenant_id, "staff:1", contact_id, "service", "Ja, 9-14 Uhr."
        ).id
    drain(ctx)
    assert sent_texts(fake, kind)[-1] == "Ja, 9-14 Uhr."
    hand_over(client, conn, fake.wait_outgoing(2))
    with ctx.db.read() as s:
        assert s.get(Message, msg_id).status == "read"


@pytest.mark.parametrize("kind", KINDS)
def test_opt_in_by_code_then_stop_withdraws(ctx, client, fake, kind):
    """C2, C4: the code from the widget (wa.me text, m.me / ig.me ref) confirms; STOP withdraws."""
    conn = fx.connect(ctx, kind, fake)
    fake.status_flow = ()
    pending = fx.request_code(ctx, conn, ["angebote"])
    if kind in ("whatsapp", "dialog360"):
        hand_over(client, conn, [fake.user_text(fx.WA_PHONE_ID, WA_USER, pending.prefill)])
    else:
        hand_over(client, conn, [fake.user_referral(fx.PAGE_ID, PSID, pending.code)])
    fake.take_outgoing()
    drain(ctx)
    with ctx.db.read() as s:
        assert {c.purpose: c.status for c in s.scalars(select(Consent))} == {"newsletter:angebote": "active"}
    assert "STOP" in sent_texts(fake, kind)[-1]  # the confirmation names the way out
    hand_over(client, conn, [user_says(fake, kind, "STOP")])
    fake.take_outgoing()
    drain(ctx)
    with ctx.db.read() as s:
        assert {c.purpose: c.status for c in s.scalars(select(Consent))} == {
            "newsletter:angebote": "withdrawn"
        }
    assert len(sent_texts(fake, kind)) == 2  # confirmation, then the withdrawal notice
