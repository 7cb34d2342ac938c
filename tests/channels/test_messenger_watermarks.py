# ruff: noqa: F811
"""Messenger / Instagram read and delivery watermarks against the Meta fake (CH4, invariants 4 and 6).

A watermark names no message: every message of that contact on that account sent at or
before it reached the status. Sent times are set on the outbox rows, so "before" and
"after" do not depend on how fast the test runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from konsent.channels.base import OutboundContent
from konsent.domain.purposes import SERVICE
from konsent.flows.contacts import find_identity
from konsent.flows.organisation import tenants
from konsent.flows.outbound.messaging import enqueue_message
from konsent.store.tables import ChannelAccount, Contact, Message, OutboxRow, WebhookEvent
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain

ANNA, BEN = "6543210987654321", "6543210987650000"
T = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # the watermark
T_MS = int(T.timestamp() * 1000)


def greet(client: Any, fake: Any, conn: fx.Connected, psid: str) -> None:
    """The contact writes first (opens the window, creates the contact)."""
    fake.user_message(fx.PAGE_ID, psid, "Hallo, eine Frage")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]


def send(
    ctx: Any, conn: fx.Connected, psid: str, text: str, sent_at: datetime, queued_at: datetime | None = None
) -> int:
    """A service message through the real queue and the fake, queued and recorded as sent then."""
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, conn.account_id)
        ident = find_identity(ctx, s, acc, psid)
        contact = s.get(Contact, ident.contact_id)
        msg_id = enqueue_message(
            ctx, s, contact, SERVICE, OutboundContent(text=text), channel_account_id=acc.id
        ).id
    drain(ctx)
    with ctx.db.write() as s:
        s.execute(update(OutboxRow).where(OutboxRow.message_id == msg_id).values(finished_at=sent_at))
        queued = queued_at or sent_at - timedelta(seconds=1)
        s.execute(update(Message).where(Message.id == msg_id).values(created_at=queued))
    return msg_id


def statuses(ctx: Any, *ids: int) -> list[str]:
    with ctx.db.read() as s:
        by_id = {m.id: m.status for m in s.scalars(select(Message).where(Message.id.in_(ids)))}
    return [by_id[i] for i in ids]


def watermark_rows(ctx: Any) -> int:
    with ctx.db.read() as s:
        return s.scalar(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.dedupe_key.like("wm:%"))
        )


def other_tenant(ctx: Any, fake: Any) -> fx.Connected:
    """A second tenant connected to the same Page: its messages are out of every watermark's reach."""
    settings, secrets_ = fx.account_values("messenger", fake.url)
    with ctx.db.write() as s:
        tenant = tenants.create_tenant(ctx, s, "andere", "Andere GmbH")
        acc = tenants.create_channel_account(
            ctx, s, tenant, "messenger", "other", settings=settings, secrets_=secrets_
        )
        return fx.Connected(tenant.id, acc.id, acc.route_key, "messenger")


def test_read_watermark_marks_the_contacts_earlier_messages_and_nothing_else(ctx, client, fake):
    """CH4: read up to T → Anna's messages sent at or before T are read; later, failed, Ben's,
    the other tenant's stay; the duplicate delivery changes nothing (invariant 6)."""
    conn = fx.connect(ctx, "messenger", fake)
    fake.status_flow = ()  # the test sends the receipts itself
    greet(client, fake, conn, ANNA)
    greet(client, fake, conn, BEN)
    other = other_tenant(ctx, fake)
    greet(client, fake, other, ANNA)
    early = send(ctx, conn, ANNA, "eins", T - timedelta(minutes=10))
    # queued before T, its send recorded a moment after T: Meta stamped it before answering
    at_mark = send(ctx, conn, ANNA, "zwei", T + timedelta(seconds=2), queued_at=T - timedelta(seconds=1))
    later = send(ctx, conn, ANNA, "drei", T + timedelta(minutes=5))
    waited = send(ctx, conn, ANNA, "lange in der Warteschlange", T + timedelta(minutes=5), queued_at=T)
    after = send(
        ctx, conn, ANNA, "nach dem Lesen", T + timedelta(seconds=2), queued_at=T + timedelta(seconds=1)
    )
    failed = send(ctx, conn, ANNA, "vier", T - timedelta(minutes=5))
    bens = send(ctx, conn, BEN, "fuer Ben", T - timedelta(minutes=10))
    theirs = send(ctx, other, ANNA, "anderer Mandant", T - timedelta(minutes=10))
    with ctx.db.write() as s:
        s.get(Message, failed).status = "failed"

    read = fake.page_read(fx.PAGE_ID, ANNA, T_MS)
    fake.take_outgoing()
    assert fx.deliver(client, conn, [read, read]) == [200, 200]
    assert statuses(ctx, early, at_mark, later, waited, after, failed, bens, theirs) == [
        "read", "read", "sent", "sent", "sent", "failed", "sent", "sent"]  # fmt: skip
    assert watermark_rows(ctx) == 1

    # Delivered up to T + 10 min, no mids: only the later message moves; read stays read.
    later_mark = int((T + timedelta(minutes=10)).timestamp() * 1000)
    delivered = fake.page_delivered(fx.PAGE_ID, ANNA, later_mark)
    fake.take_outgoing()
    assert "mids" not in delivered.json()["entry"][0]["messaging"][0]["delivery"]
    assert fx.deliver(client, conn, [delivered]) == [200]
    assert statuses(ctx, early, at_mark, later, waited, after, failed) == [
        "read", "read", "delivered", "delivered", "delivered", "failed"]  # fmt: skip
    assert fx.deliver(client, conn, [read]) == [200]  # an old duplicate arriving late
    assert statuses(ctx, early, at_mark, later, waited, after, failed) == [
        "read", "read", "delivered", "delivered", "delivered", "failed"]  # fmt: skip


def test_a_late_delivered_watermark_never_undoes_read(ctx, client, fake):
    """CH4: out of order — read arrives first, then delivered with the same watermark."""
    conn = fx.connect(ctx, "messenger", fake)
    fake.status_flow = ()
    greet(client, fake, conn, ANNA)
    msg = send(ctx, conn, ANNA, "eins", T - timedelta(minutes=1))
    read = fake.page_read(fx.PAGE_ID, ANNA, T_MS)
    delivered = fake.page_delivered(fx.PAGE_ID, ANNA, T_MS)
    fake.take_outgoing()
    assert fx.deliver(client, conn, [read, delivered]) == [200, 200]
    assert statuses(ctx, msg) == ["read"]


def test_watermark_of_an_unknown_contact_or_implausible_value_touches_nothing(ctx, client, fake):
    """Bad input loses nothing and marks nothing: unknown PSID, watermark 0, a string."""
    conn = fx.connect(ctx, "messenger", fake)
    fake.status_flow = ()
    greet(client, fake, conn, ANNA)
    msg = send(ctx, conn, ANNA, "eins", T - timedelta(minutes=1))
    unknown = fake.page_read(fx.PAGE_ID, "9999999999", T_MS)
    zero = fake.page_read(fx.PAGE_ID, ANNA, 0)
    text = fake.page_delivered(fx.PAGE_ID, ANNA, T_MS)
    fake.take_outgoing()
    body = text.body.replace(f'"watermark":{T_MS}'.encode(), f'"watermark":"{T_MS}"'.encode())
    assert (
        client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code == 200
    )
    assert fx.deliver(client, conn, [unknown, zero]) == [200, 200]
    assert statuses(ctx, msg) == ["sent"]


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
def test_receipts_without_mids_from_the_fake_end_at_read(ctx, client, fake, kind):
    """CH4 end to end: the fake answers a send, then reports delivery without mids and the read
    watermark at the message's own stamp (before konsent recorded the send)."""
    conn = fx.connect(ctx, kind, fake)
    fake.delivery_mids = False
    greet_item = fake.user_message(fx.PAGE_ID, ANNA, "Hallo")
    fake.take_outgoing()
    post(client, conn, kind, greet_item)
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, conn.account_id)
        contact = s.get(Contact, find_identity(ctx, s, acc, ANNA).contact_id)
        enqueue_message(ctx, s, contact, SERVICE, OutboundContent(text="Antwort"), channel_account_id=acc.id)
    drain(ctx)
    with ctx.db.read() as s:
        out = list(s.scalars(select(Message.id).where(Message.direction == "out")))
    receipts = fake.wait_outgoing(2 * len(out))  # the bot's greeting and our answer: delivery, read each
    kinds = [next(iter(set(d.json()["entry"][0]["messaging"][0]) & {"delivery", "read"})) for d in receipts]
    assert sorted(kinds) == ["delivery"] * len(out) + ["read"] * len(out)
    assert all("mids" not in d.json()["entry"][0]["messaging"][0].get("delivery", {}) for d in receipts)
    for d in receipts:
        post(client, conn, kind, d)
    assert statuses(ctx, *out) == ["read"] * len(out)


def post(client: Any, conn: fx.Connected, kind: str, delivery: Any) -> None:
    """Hand a fake webhook to konsent; Instagram posts with the IG account id in entry[].id."""
    body = delivery.body
    if kind == "instagram":
        body = body.replace(f'"id":"{fx.PAGE_ID}","time"'.encode(), f'"id":"{fx.IG_ID}","time"'.encode())
    assert (
        client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code == 200
    )
