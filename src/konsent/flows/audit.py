"""Audit of staff access to personal data (S4, invariant 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from konsent.store.chain import AUDIT, CONSENT, append_audit

__all__ = ["AUDIT", "CONSENT", "record"]


def record(s: Session, tenant_id: int, actor: str, action: str, subject: str, **details: Any) -> None:
    """Append one access (view, export, edit, erase) to the tenant's hash-chained audit log."""
    append_audit(s, tenant_id, actor, action, subject, details)
