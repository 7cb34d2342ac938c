"""Contact pressure at claim time: frequency cap and quiet hours per tenant (M5, domain.pressure).

Checked when a worker claims a marketing message, the same moment the legal basis is checked
again (delivery.outbox), because only then is it known how many messages the contact has had:
- over the cap: the message is not sent; its status is `not_sent` with the reason "contact
  pressure: …" (its own outcome, counted in the broadcast statistics, never a failure);
- in quiet hours in the contact's time zone: the row goes back to the queue, due when the quiet
  hours end, without spending an attempt (deferred, not skipped).
The contact's zone comes from the country of its phone number (phonenumbers' time-zone data;
the first zone where a number spans several), else the tenant's zone.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import phonenumbers
from phonenumbers import timezone as number_zones
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from konsent.domain import pressure as rules
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import localtime
from konsent.store.tables import Message, OutboxRow, Tenant
from konsent.store.tenant_settings import merge_settings

SETTINGS_KEY = "contact_pressure"
_LOCK_SPACE = 0x6B70  # two-key advisory locks "kp" (pacing uses "kn")
COUNTED = ("running", "unconfirmed", "done", "unknown")  # handed (or about to be) to the provider


class ClaimedMessage(Protocol):
    """What the check reads of a claimed message (delivery.outbox.Job)."""

    @property
    def outbox_id(self) -> int: ...
    @property
    def message_id(self) -> int: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def purpose(self) -> str: ...
    @property
    def address(self) -> str: ...


J = TypeVar("J", bound=ClaimedMessage)


# ---------------------------------------------------------------- settings


def rules_for(tenant: Tenant | None) -> rules.PressureRules:
    return rules.rules_of((tenant.settings or {}).get(SETTINGS_KEY) if tenant is not None else None)


def current_rules(s: Session, tenant_id: int) -> rules.PressureRules:
    """The tenant's rules as they apply now (off where never set)."""
    return rules_for(s.get(Tenant, tenant_id))


def set_rules(s: Session, tenant_id: int, actor: str, values: dict[str, Any]) -> rules.PressureRules:
    """Save the tenant's frequency cap and quiet hours; audited (M5)."""
    new = rules.validate(values)
    merge_settings(s, tenant_id, {SETTINGS_KEY: new.as_dict()})
    audit.record(s, tenant_id, actor, "settings.contact_pressure", f"tenant:{tenant_id}", **new.as_dict())
    return new


# ---------------------------------------------------------------- the contact's zone


def contact_zone(address: str, fallback: str) -> str:
    """The time zone of a phone number's country (or area), else `fallback` (Telegram ids etc.)."""
    if not address.startswith("+"):
        return fallback
    try:
        zones = number_zones.time_zones_for_geographical_number(phonenumbers.parse(address))
    except phonenumbers.NumberParseException:
        return fallback
    known = localtime.zone_names()
    return next((z for z in zones if z in known), fallback)


# ---------------------------------------------------------------- the claim-time check


def _sent_within(
    s: Session, tenant_id: int, contact_ids: set[int], since: datetime, batch: set[int]
) -> Counter[int]:
    rows = s.execute(
        select(OutboxRow.contact_id, func.count())
        .where(
            OutboxRow.tenant_id == tenant_id,
            OutboxRow.contact_id.in_(contact_ids),
            OutboxRow.purpose.like("newsletter:%"),
            OutboxRow.state.in_(COUNTED),
            or_(OutboxRow.state.in_(("running", "unconfirmed")), OutboxRow.finished_at >= since),
            OutboxRow.id.not_in(batch),
        )
        .group_by(OutboxRow.contact_id)
    )
    return Counter({cid: n for cid, n in rows})


def _lock_contacts(ctx: Konsent, s: Session, contact_ids: set[int]) -> None:
    """PostgreSQL: two workers claiming the same contact's messages count one after the other."""
    if ctx.db.is_postgres and contact_ids:
        for cid in sorted(contact_ids):  # one order everywhere: no deadlock between claims
            s.execute(text("SELECT pg_advisory_xact_lock(:s, :k)"), {"s": _LOCK_SPACE, "k": cid % 2**31})


def hold_back(ctx: Konsent, s: Session, jobs: list[J], now: datetime) -> list[J]:
    """The claimed jobs that may go now; the rest are deferred (quiet hours) or not sent (cap)."""
    marketing = [j for j in jobs if rules.applies_to(j.purpose)]
    if not marketing:
        return jobs
    tenants = {
        t.id: t for t in s.scalars(select(Tenant).where(Tenant.id.in_({j.tenant_id for j in marketing})))
    }
    deferred: list[tuple[J, datetime, str]] = []
    capped: list[tuple[J, str]] = []
    keep: set[int] = set()
    for tenant_id in {j.tenant_id for j in marketing}:
        mine = [j for j in marketing if j.tenant_id == tenant_id]
        tenant_rules = rules_for(tenants.get(tenant_id))
        if tenant_rules.quiet_on:
            fallback = localtime.tenant_zone(tenants.get(tenant_id))
            for j in list(mine):
                zone = zoneinfo.ZoneInfo(contact_zone(j.address, fallback))
                until = rules.quiet_until(tenant_rules, now.astimezone(zone))
                if until is not None:
                    deferred.append((j, until.astimezone(UTC), until.strftime("%H:%M")))
                    mine.remove(j)
        if tenant_rules.cap_on and mine:
            contact_ids = {j.contact_id for j in mine}
            _lock_contacts(ctx, s, contact_ids)
            since = now - timedelta(days=tenant_rules.cap_days)
            counts = _sent_within(s, tenant_id, contact_ids, since, {j.outbox_id for j in mine})
            for j in mine:  # in claim order: the earlier message of a contact goes first
                if rules.over_cap(tenant_rules, counts[j.contact_id]):
                    capped.append((j, tenant_rules.cap_reason()))
                    continue
                counts[j.contact_id] += 1
                keep.add(j.outbox_id)
        else:
            keep.update(j.outbox_id for j in mine)
    _defer(s, deferred)
    _not_sent(s, capped, now)
    return [j for j in jobs if not rules.applies_to(j.purpose) or j.outbox_id in keep]


def _defer(s: Session, deferred: Sequence[tuple[ClaimedMessage, datetime, str]]) -> None:
    """Back to the queue, due when the quiet hours end; no attempt spent (like a rate limit)."""
    for j, until, local in deferred:
        reason = rules.QUIET_REASON.format(until=local)
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == j.outbox_id, OutboxRow.state == "running")
            .values(
                state="available",
                attempt=OutboxRow.attempt - 1,
                run_at=until,
                lease_until=None,
                locked_by=None,
                last_error=reason,
            )
            .execution_options(synchronize_session=False)
        )
        s.execute(
            update(Message)
            .where(Message.id == j.message_id)
            .values(status_reason=reason)
            .execution_options(synchronize_session=False)
        )


def _not_sent(s: Session, capped: Sequence[tuple[ClaimedMessage, str]], now: datetime) -> None:
    """Held back by the frequency cap: its own final outcome, not a failure and not retried."""
    for j, reason in capped:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == j.outbox_id, OutboxRow.state == "running")
            .values(state=rules.NOT_SENT, finished_at=now, lease_until=None, last_error=reason)
            .execution_options(synchronize_session=False)
        )
        s.execute(
            update(Message)
            .where(Message.id == j.message_id)
            .values(status=rules.NOT_SENT, status_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
