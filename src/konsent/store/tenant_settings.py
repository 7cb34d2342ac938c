"""Locking a tenant's row, and changing its settings document without losing another writer's change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import NotFound
from konsent.store.tables import Tenant


def lock_tenant(s: Session, tenant_id: int) -> Tenant:
    """The tenant's row, re-read under its lock: the one way konsent serialises per-tenant writers.

    FOR NO KEY UPDATE, not FOR UPDATE (PostgreSQL; SQLite has one writer anyway): every row that
    points at the tenant takes a key-share lock through its foreign key. FOR UPDATE would wait for
    those writers, and one of them, a broadcast's next page, waits in Python for the page that holds
    this lock to commit: a deadlock neither PostgreSQL nor Python can see.
    """
    tenant = s.scalars(
        select(Tenant)
        .where(Tenant.id == tenant_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if tenant is None:
        raise NotFound()
    return tenant


def merge_settings(
    s: Session, tenant_id: int, changes: Mapping[str, Any], drop: Iterable[str] = ()
) -> Tenant:
    """Set `changes` and remove `drop` in the tenant's settings, re-read under the row's lock.

    Each setting is a key of one JSON document: without the lock, two admins saving different
    settings at the same moment would each write back the document they read, and the first
    change (works-council mode, a budget, two-factor roles) would be lost silently.
    """
    tenant = lock_tenant(s, tenant_id)
    merged = {**(tenant.settings or {}), **changes}
    for key in drop:
        merged.pop(key, None)
    tenant.settings = merged
    return tenant
