"""Idempotency keys of inbound events without provider ids in clear (invariant 6, D2, S8).

Provider ids can carry personal data: a WhatsApp message id holds the sender's number in
base64, Threema and Messenger ids name the sender. `webhook_events` therefore stores only a
keyed hash of each id, made with the tenant's blind-index key. That key survives key
rotation, so the same id always gives the same key and a retried delivery is still
recognised; without the key nobody can tell which number an event came from.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from konsent.domain.status_batch import hashed_key
from konsent.flows.context import Konsent
from konsent.store.tables import WebhookEvent

__all__ = ["claim", "dedupe_secret", "hashed_key"]


def dedupe_secret(ctx: Konsent, s: Session, tenant_id: int) -> bytes:
    """The tenant's key for dedupe hashes (its blind-index key, cached by the key ring)."""
    return ctx.keys.tenant(s, tenant_id).index_key


def claim(s: Session, tenant_id: int, account_id: int, key: str, kind: str) -> bool:
    """Record an event's dedupe key; False if it is recorded already (a duplicate), in one statement.

    A concurrent transaction that recorded the same key first makes this one wait for its commit
    and then count the event as a duplicate (ON CONFLICT DO NOTHING), as a later delivery would.
    """
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(WebhookEvent)
        .values(tenant_id=tenant_id, channel_account_id=account_id, dedupe_key=key, kind=kind)
        .on_conflict_do_nothing(index_elements=["channel_account_id", "dedupe_key"])
        .returning(WebhookEvent.id)
    )
    return s.execute(stmt).first() is not None
