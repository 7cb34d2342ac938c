"""Appending to and reading the hash chains: consent ledger and audit log (invariant 3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.ledger import GENESIS, ChainEntry, canonical, entry_hash
from konsent.store.tables import AuditEntry, ChainHead, LedgerEntry

CONSENT = "consent"
AUDIT = "audit"


def _lock_head(session: Session, tenant_id: int, chain: str) -> ChainHead:
    q = select(ChainHead).where(ChainHead.tenant_id == tenant_id, ChainHead.chain == chain)
    head = session.scalars(q.with_for_update()).one_or_none()
    if head is None:
        head = ChainHead(tenant_id=tenant_id, chain=chain, seq=0, head_hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def append_ledger(
    session: Session,
    tenant_id: int,
    contact_id: int,
    purpose: str,
    action: str,
    payload: dict[str, Any],
) -> LedgerEntry:
    """Append one consent event; the payload is what the proof shows and the hash covers."""
    head = _lock_head(session, tenant_id, CONSENT)
    # Stored exactly as hashed: datetimes become ISO strings before both. The columns come last so
    # the payload always repeats them, and `iter_chain` can hold the columns to the hash.
    body = json.loads(canonical({**payload, "contact_id": contact_id, "purpose": purpose, "action": action}))
    h = entry_hash(head.head_hash, body)
    entry = LedgerEntry(
        tenant_id=tenant_id,
        seq=head.seq + 1,
        contact_id=contact_id,
        purpose=purpose,
        action=action,
        payload=body,
        prev_hash=head.head_hash,
        hash=h,
    )
    head.seq += 1
    head.head_hash = h
    session.add(entry)
    return entry


def append_audit(
    session: Session, tenant_id: int, actor: str, action: str, subject: str, payload: dict[str, Any]
) -> AuditEntry:
    """Append one staff access to personal data (S4)."""
    head = _lock_head(session, tenant_id, AUDIT)
    body = json.loads(canonical({**payload, "actor": actor, "action": action, "subject": subject}))
    h = entry_hash(head.head_hash, body)
    entry = AuditEntry(
        tenant_id=tenant_id,
        seq=head.seq + 1,
        actor=actor,
        action=action,
        subject=subject,
        payload=body,
        prev_hash=head.head_hash,
        hash=h,
    )
    head.seq += 1
    head.head_hash = h
    session.add(entry)
    return entry


def iter_chain(session: Session, tenant_id: int, chain: str, batch: int = 2000) -> Iterator[ChainEntry]:
    """Stream a tenant's chain in order, in batches, for verification."""
    model: Any = LedgerEntry if chain == CONSENT else AuditEntry
    last = 0
    while True:
        rows = session.scalars(
            select(model)
            .where(model.tenant_id == tenant_id, model.seq > last)
            .order_by(model.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for r in rows:
            # The columns a proof shows are checked too: an edited `action` breaks the hash.
            cols = (
                {"contact_id": r.contact_id, "purpose": r.purpose, "action": r.action}
                if chain == CONSENT
                else {"actor": r.actor, "action": r.action, "subject": r.subject}
            )
            yield ChainEntry(r.seq, {**r.payload, **cols}, r.prev_hash, r.hash)
        last = rows[-1].seq


def chain_head(session: Session, tenant_id: int, chain: str) -> tuple[int, str]:
    """The (seq, hash) the chain's head pointer records; (0, GENESIS) for an empty chain."""
    head = session.get(ChainHead, (tenant_id, chain))
    return (head.seq, head.head_hash) if head is not None else (0, GENESIS)
