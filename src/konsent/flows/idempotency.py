"""Idempotency keys for API writes (M4): a retried POST returns the first answer and does nothing twice.

The key row is inserted in the same transaction as the action it guards. A concurrent retry's
insert waits on the unique index (PostgreSQL) or on the write lock (SQLite) until the first
commits, then finds the stored answer; if the first failed and rolled back, the retry runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from konsent.domain.errors import DomainError, InvalidInput
from konsent.store.tables import IdempotencyKey

MAX_KEY = 255


class KeyReused(DomainError):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used for a different request."


def _find(s: Session, tenant_id: int, actor: str, key: str) -> IdempotencyKey | None:
    return s.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.actor == actor, IdempotencyKey.key == key
        )
    ).one_or_none()


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidInput("Idempotency-Key: 1 to {limit} printable characters", limit=MAX_KEY)
    return key


def begin(s: Session, tenant_id: int, actor: str, key: str, fingerprint: str) -> tuple[int, Any] | None:
    """The stored (status, body) if this key was used already; otherwise reserve it in `s`."""
    found = _find(s, tenant_id, actor, key)
    if found is None:
        try:
            with s.begin_nested():
                s.add(IdempotencyKey(tenant_id=tenant_id, actor=actor[:40], key=key, fingerprint=fingerprint))
            return None
        except IntegrityError:
            found = _find(s, tenant_id, actor, key)  # a concurrent request with this key committed first
            if found is None:
                raise
    if found.fingerprint != fingerprint:
        raise KeyReused()
    return found.status, found.response


def finish(s: Session, tenant_id: int, actor: str, key: str, status: int, body: Any) -> None:
    row = _find(s, tenant_id, actor, key)
    assert row is not None
    row.status, row.response = status, body
