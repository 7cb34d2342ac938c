"""Key rotation without downtime: new tenant key versions and re-wrapping under a new master key (S1).

Tenant rotation: a new data-key version becomes active at once (new contacts and new
sealed settings use it); existing contact keys are re-wrapped in small batches, each its
own transaction, while traffic continues. Old versions stay readable (a contact row names
its version), so a process that has not noticed the rotation yet keeps working.

Master rotation: start every process with the new KONSENT_MASTER_KEY and the old one in
KONSENT_PREVIOUS_MASTER_KEYS, run `konsent keys rotate --master`, then drop the old key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.store.tables import ChannelAccount, Contact, TenantKey

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class RotationReport:
    tenant_id: int
    version: int
    contacts: int
    accounts: int
    remaining: int


def rotate_tenant(
    ctx: Konsent,
    tenant_id: int,
    *,
    actor: str = "system:cli",
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Activate a new tenant key version and re-wrap every contact key under it (S1)."""
    with ctx.db.write() as s:
        new = ctx.keys.add_tenant_version(s, tenant_id)
        total = int(
            s.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.tenant_id == tenant_id, Contact.wrapped_key.is_not(None))
            )
            or 0
        )
        audit.record(s, tenant_id, actor, "keys.rotate.tenant", f"tenant:{tenant_id}", version=new.version)
    with ctx.db.write() as s:
        accounts = 0
        for acc in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id)):
            if acc.secrets_sealed:
                clear = ctx.keys.open_for_tenant(s, tenant_id, acc.secrets_sealed, f"account:{acc.id}")
                acc.secrets_sealed = ctx.keys.seal_for_tenant(s, tenant_id, clear, f"account:{acc.id}")
                accounts += 1
    done, last_id = 0, 0
    while True:
        with ctx.db.write() as s:
            rows = s.scalars(
                select(Contact)
                .where(
                    Contact.tenant_id == tenant_id,
                    Contact.id > last_id,
                    Contact.wrapped_key.is_not(None),
                )
                .order_by(Contact.id)
                .limit(batch)
                .with_for_update()
            ).all()
            done += ctx.keys.rewrap_contacts(s, list(rows), new)
            if rows:
                last_id = rows[-1].id
        if progress is not None:
            progress(min(done, total), total)
        if len(rows) < batch:
            break
    with ctx.db.read() as s:
        remaining = int(
            s.scalar(
                select(func.count())
                .select_from(Contact)
                .where(
                    Contact.tenant_id == tenant_id,
                    Contact.wrapped_key.is_not(None),
                    Contact.key_version != new.version,
                )
            )
            or 0
        )
    log.info("tenant %s rotated to key v%s: %s contacts re-wrapped", tenant_id, new.version, done)
    return RotationReport(tenant_id, new.version, done, accounts, remaining)


def rotate_master(ctx: Konsent, actor: str = "system:cli") -> int:
    """Re-wrap every tenant key under the current master key; old masters must be configured as previous."""
    with ctx.db.write() as s:
        rows = s.scalars(select(TenantKey).order_by(TenantKey.id).with_for_update()).all()
        for row in rows:
            ctx.keys.rewrap_under_current_master(row)
        for tid in sorted({r.tenant_id for r in rows}):
            audit.record(s, tid, actor, "keys.rotate.master", f"tenant:{tid}", key_rows=len(rows))
    ctx.keys.forget()
    log.info("master key rotation: %s tenant key rows re-wrapped", len(rows))
    return len(rows)


def sweep_keystore(ctx: Konsent, min_age: timedelta = timedelta(hours=1)) -> int:
    """Destroy key-store secrets no live contact needs (D2).

    They are left behind when a process dies between an erasure's commit and the secret's
    destruction, or when a contact's creation rolled back. Secrets younger than `min_age`
    are left alone: their contact may not have committed yet.
    """
    removed, after = 0, 0
    while True:
        ids = ctx.keys.store.ids_older_than(min_age, after=after, limit=900)
        if not ids:
            break
        with ctx.db.read() as s:
            live = set(
                s.scalars(select(Contact.id).where(Contact.id.in_(ids), Contact.wrapped_key.is_not(None)))
            )
        removed += ctx.keys.store.destroy(i for i in ids if i not in live)
        after = ids[-1]
    if removed:
        log.info("key store sweep: %s orphaned contact secrets destroyed", removed)
    return removed
