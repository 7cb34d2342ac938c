"""The pricing block of every WhatsApp status webhook is recorded per message, in the same write as
the status, on the slow and on the fast path; the month's bill prices it (CH6, #16 item 4)."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select

from konsent.flows.contacts import get_or_create_contact
from konsent.flows.context import Konsent
from konsent.flows.outbound import costs
from konsent.store.tables import ChannelAccount, Message, MessageCharge
from konsent.store.types import utcnow
from tests.channels import fixtures_meta as fx
from tests.costs.support import import_prices

WAMID = fx.WA_STATUS_SENT["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]


def _sent_message(
    ctx: Konsent, account_id: int, provider_id: str, purpose: str = "newsletter:angebote"
) -> int:
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        contact, _, _ = get_or_create_contact(ctx, s, acc, "+16505551234")
        now = utcnow()
        msg = Message(
            tenant_id=acc.tenant_id, contact_id=contact.id, channel_account_id=acc.id, direction="out",
            purpose=purpose, body_sealed=b"x", provider_id=provider_id, status="sent", status_reason="",
            created_at=now, updated_at=now,
        )  # fmt: skip
        s.add(msg)
        s.flush()
        return msg.id


def _status(wamid: str, status: str, pricing: dict[str, Any] | None) -> bytes:
    payload = copy.deepcopy(fx.WA_STATUS_SENT)
    st = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    st.update(id=wamid, status=status)
    st.pop("pricing")
    if pricing is not None:
        st["pricing"] = pricing
    return fx.meta_bytes(payload)


def _post(client: Any, conn: fx.Connected, body: bytes) -> int:
    return client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code


def _charges(ctx: Konsent) -> list[tuple[int, str, str, str, str, bool, str]]:
    with ctx.db.read() as s:
        return [
            (c.message_ref, c.purpose, c.country, c.category, c.pricing_type, c.billable, c.month)
            for c in s.scalars(select(MessageCharge).order_by(MessageCharge.message_ref))
        ]


def test_pricing_of_metas_own_status_example_is_stored_with_the_message(ctx: Konsent, client) -> None:
    """Meta's verbatim `sent` example (PMP, regular, marketing, billable) → one charge row: US, marketing."""
    conn = fx.connect(ctx, "whatsapp")
    mid = _sent_message(ctx, conn.account_id, WAMID)
    assert _post(client, conn, fx.meta_bytes(fx.WA_STATUS_SENT)) == 200
    assert _charges(ctx) == [(mid, "newsletter:angebote", "US", "marketing", "regular", True, "2025-06")]
    with ctx.db.read() as s:
        assert s.get(Message, mid).status == "sent"  # type: ignore[union-attr]


def test_sent_and_delivered_both_carry_pricing_but_the_message_is_charged_once(ctx: Konsent, client) -> None:
    conn = fx.connect(ctx, "whatsapp")
    mid = _sent_message(ctx, conn.account_id, WAMID)
    block = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
    assert _post(client, conn, _status(WAMID, "sent", block)) == 200
    assert _post(client, conn, _status(WAMID, "delivered", block)) == 200
    assert _post(client, conn, _status(WAMID, "delivered", block)) == 200  # Meta's retry
    assert [c[0] for c in _charges(ctx)] == [mid]


def test_the_fast_status_path_stores_pricing_in_its_group_commit(ctx: Konsent, client) -> None:
    """Once the route is known, statuses take the group commit (status_sink): pricing goes with them."""
    conn = fx.connect(ctx, "whatsapp")
    first = _sent_message(ctx, conn.account_id, "wamid.first")
    second = _sent_message(ctx, conn.account_id, "wamid.second", purpose="service")
    assert _post(client, conn, _status("wamid.first", "sent", None)) == 200  # slow path, learns the route
    assert conn.route_key in ctx.known_routes
    free = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    assert _post(client, conn, _status("wamid.second", "delivered", free)) == 200
    assert _charges(ctx) == [(second, "service", "US", "service", "free_customer_service", False, "2025-06")]
    with ctx.db.read() as s:
        assert (s.get(Message, first).status, s.get(Message, second).status) == ("sent", "delivered")  # type: ignore[union-attr]


def test_a_status_without_pricing_or_with_an_unknown_category_records_no_charge(ctx: Konsent, client) -> None:
    conn = fx.connect(ctx, "whatsapp")
    _sent_message(ctx, conn.account_id, WAMID)
    assert _post(client, conn, fx.meta_bytes(fx.WA_STATUS_SENT_V24)) == 200
    assert _post(client, conn, _status(WAMID, "read", {"category": "lottery", "billable": True})) == 200
    assert _charges(ctx) == []


def test_the_bill_prices_billable_messages_at_the_table_of_their_day(ctx: Konsent, client) -> None:
    conn = fx.connect(ctx, "whatsapp")
    _sent_message(ctx, conn.account_id, WAMID)
    _sent_message(ctx, conn.account_id, "wamid.free", purpose="service")
    import_prices(ctx, conn.tenant_id, valid_from="2025-01-01")  # "*" marketing 0.20
    assert _post(client, conn, fx.meta_bytes(fx.WA_STATUS_SENT)) == 200
    free = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    assert _post(client, conn, _status("wamid.free", "sent", free)) == 200
    with ctx.db.read() as s:
        lines, currency = costs.monthly_costs(s, conn.tenant_id)
    by_purpose = {ln.purpose: (ln.month, ln.messages, ln.billable, ln.total_micros) for ln in lines}
    assert by_purpose == {"newsletter:angebote": ("2025-06", 1, 1, 200_000), "service": ("2025-06", 1, 0, 0)}
    assert currency == "EUR"
