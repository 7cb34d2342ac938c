"""Writing outgoing-webhook events in the transaction of the action that causes them (M4).

Imports only store and domain, so every flow may call `emit` without an import cycle.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain import webhooks as rules
from konsent.domain.webhooks import status_data
from konsent.store.tables import WebhookDelivery, WebhookEndpoint
from konsent.store.types import utcnow


def emit(
    s: Session, tenant_id: int, event_type: str, data: dict[str, Any], at: datetime | None = None
) -> int:
    """Queue `event_type` for every active endpoint of the tenant that wants it; return how many."""
    assert event_type in rules.EVENT_TYPES, event_type
    endpoints = s.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True)
        )
    ).all()
    at = at or utcnow()
    n = 0
    for endpoint_id, events in endpoints:
        if not rules.wants(list(events or []), event_type):
            continue
        event_id = "evt_" + uuid.uuid4().hex
        payload = {"id": event_id, "type": event_type, "created_at": at.isoformat(), "data": data}
        s.add(
            WebhookDelivery(
                tenant_id=tenant_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                run_at=at,
                created_at=at,
            )
        )
        n += 1
    return n


def emit_status(s: Session, tenant_id: int, message_id: int, status: str, reason: str) -> None:
    """message.status for one message (the slow path; the status writers use `status_rows`)."""
    emit(s, tenant_id, "message.status", status_data(message_id, status, reason))


def emit_closed(s: Session, conv: Any, by: str) -> None:
    """conversation.closed, by staff or by the chatbot."""
    data = {"conversation_id": conv.id, "contact_id": conv.contact_id, "closed_by": by}
    emit(s, conv.tenant_id, "conversation.closed", data)
