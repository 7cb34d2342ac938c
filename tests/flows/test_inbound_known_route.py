"""A webhook for a route read before is verified with the account as last read, without a read
transaction first; its transaction then checks that the account is still in that state (CH2, #11).

These pin that check: a request verified against a state that is gone is verified again against
what is stored now, so a replaced secret or a switched-off account admits nothing.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.channels.base import WebhookRequest
from konsent.channels.simulator import SIGNATURE_HEADER, sign
from konsent.domain.errors import NotFound
from konsent.flows.inbound.receive import receive_webhook
from konsent.flows.organisation import channel_admin, tenants
from konsent.store.tables import Message
from tests.helpers import sim_account

OLD = "the-old-webhook-secret"


def _delivery(secret: str, provider_id: str, phone: str = "+4915550001111") -> WebhookRequest:
    body = json.dumps(
        {"messages": [{"id": provider_id, "from": phone, "text": "Hallo", "timestamp": time.time()}]}
    ).encode()
    return WebhookRequest("POST", {SIGNATURE_HEADER: sign(secret, body)}, {}, body)


def _stored(ctx, provider_id: str) -> bool:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(Message.id).where(Message.provider_id == provider_id)).first() is not None


@pytest.fixture
def known(ctx, demo):  # type: ignore[no-untyped-def]
    """The demo's simulator account with a secret of ours, its route known from one delivery."""
    acc = sim_account(ctx)
    with ctx.db.write() as s:
        tenants.store_secrets(ctx, s, tenants.get_account(s, acc.tenant_id, acc.id), {"webhook_secret": OLD})
    assert receive_webhook(ctx, acc.route_key, _delivery(OLD, "simin.first")).events == 1
    assert acc.route_key in ctx.known_routes
    return acc


def test_a_message_signed_with_a_replaced_webhook_secret_is_refused_and_not_stored(ctx, known):
    with ctx.db.write() as s:
        acc = tenants.get_account(s, known.tenant_id, known.id)
        tenants.store_secrets(ctx, s, acc, {"webhook_secret": "the-new-webhook-secret"})
    result = receive_webhook(ctx, known.route_key, _delivery(OLD, "simin.old-secret"))
    assert result.status in (401, 403)
    assert not _stored(ctx, "simin.old-secret")
    fresh = receive_webhook(ctx, known.route_key, _delivery("the-new-webhook-secret", "simin.new-secret"))
    assert (fresh.status, fresh.events) == (200, 1)
    assert _stored(ctx, "simin.new-secret")


def test_a_message_to_a_switched_off_account_is_not_stored(ctx, known):
    with ctx.db.write() as s:
        channel_admin.set_active(s, known.tenant_id, "user:1", known.id, False)
    with pytest.raises(NotFound):
        receive_webhook(ctx, known.route_key, _delivery(OLD, "simin.switched-off"))
    assert not _stored(ctx, "simin.switched-off")


def test_a_known_route_still_counts_a_redelivered_message_once(ctx, known):
    again = receive_webhook(ctx, known.route_key, _delivery(OLD, "simin.first"))
    assert (again.status, again.events, again.duplicates) == (200, 0, 1)


def _last_inbound(ctx, acc):  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return tenants.get_account(s, acc.tenant_id, acc.id).last_inbound_at


def test_an_accounts_last_inbound_time_moves_forward_once_a_minute_not_per_message(ctx, known):
    """Channel health (U5): an hour-old time is updated by the next message; a minute-fresh one is not."""
    with ctx.db.write() as s:
        acc = tenants.get_account(s, known.tenant_id, known.id)
        acc.last_inbound_at = acc.last_inbound_at - timedelta(hours=1)
    before = _last_inbound(ctx, known)
    receive_webhook(ctx, known.route_key, _delivery(OLD, "simin.hour-later"))
    moved = _last_inbound(ctx, known)
    assert moved > before + timedelta(minutes=59)
    receive_webhook(ctx, known.route_key, _delivery(OLD, "simin.seconds-later"))
    assert _last_inbound(ctx, known) == moved


def test_a_message_to_a_deleted_account_is_not_found_and_not_stored(ctx, demo):
    from konsent.flows.inbound import status_sink

    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        acc = tenants.create_channel_account(
            ctx, s, tenant, "simulator", "spare", secrets_={"webhook_secret": OLD}
        )
    status_sink.account_for_route(ctx, acc.route_key)  # the route is known now
    with ctx.db.write() as s:
        channel_admin.delete_account(s, acc.tenant_id, "user:1", acc.id)
    with pytest.raises(NotFound):
        receive_webhook(ctx, acc.route_key, _delivery(OLD, "simin.deleted"))
    assert not _stored(ctx, "simin.deleted")
