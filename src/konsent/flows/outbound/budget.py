"""Budget caps: a monthly cap per tenant and a cap per broadcast that pause sending in time (CH6).

The check sits where a broadcast's messages are queued (`broadcast._queue_page`): a page of
the audience is priced message by message (the contact's country × the category of the
template the message uses, as the registry holds it now), and only the messages that still
fit under both caps are queued. The page's cost is added to the broadcast's reservation under
the broadcast's row lock (and the tenant's, so two broadcasts of one tenant cannot both spend
the last euro); a page that no longer fits then is rolled back and priced again. What was not
queued is never sent: the broadcast pauses with the reason, and resumes once a cap is raised.

The tenant's month = the actual cost of the month's messages outside broadcasts (as the status
webhooks report them) + the reservations of the broadcasts started in that month. Free
answers (DOI confirmation, STOP, INFO, DATEN) are never held back by a cap: they are service
messages inside the window, each one message.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.domain import costs as rules
from konsent.domain.errors import Conflict, DomainError
from konsent.domain.templates import N_
from konsent.flows import audit
from konsent.flows.outbound import costs
from konsent.flows.outbound.messaging import Draft
from konsent.store.tables import Broadcast, ChannelAccount, ContactIdentity, Tenant
from konsent.store.tenant_settings import lock_tenant, merge_settings
from konsent.store.types import utcnow

SETTING = "monthly_budget_micros"
REASON_PREFIX = "budget:"
# Shown where a broadcast paused for its budget (web/admin_broadcasts renders them, de + en).
N_BROADCAST_CAP = N_("the broadcast's budget of {cap} would be exceeded")
N_TENANT_CAP = N_("this month's budget of {cap} would be exceeded")


class InvalidBudget(DomainError):
    code = "invalid_budget"
    message = "A budget must be an amount of at least 0, such as 250 or 99.50."


def parse_amount(text: str | float | int | None) -> int | None:
    """An amount as people type it ("250", "99,50"); None for empty; InvalidBudget otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, bool):
        raise InvalidBudget()
    micros = rules.to_micros(str(text))
    if micros is None:
        raise InvalidBudget()
    return micros


# ------------------------------------------------------------------ settings


def tenant_budget(s: Session, tenant_id: int) -> int | None:
    t = s.get(Tenant, tenant_id)
    value = (t.settings or {}).get(SETTING) if t is not None else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def set_tenant_budget(s: Session, tenant_id: int, micros: int | None, actor: str) -> None:
    """Set or clear the tenant's monthly cap (owners and admins; audited)."""
    old = tenant_budget(s, tenant_id)
    if micros is None:
        merge_settings(s, tenant_id, {}, drop=[SETTING])
    else:
        merge_settings(s, tenant_id, {SETTING: int(micros)})
    audit.record(s, tenant_id, actor, "budget.tenant", f"tenant:{tenant_id}", old=old, new=micros)


def set_broadcast_budget(s: Session, b: Broadcast, micros: int | None, actor: str) -> None:
    """Set or clear a broadcast's cap; not once it is done or cancelled."""
    if b.state in ("done", "cancelled"):
        raise Conflict("a broadcast in state {state} cannot be changed", state=b.state)
    old = b.budget_micros
    b.budget_micros = micros
    audit.record(s, b.tenant_id, actor, "budget.broadcast", f"broadcast:{b.id}", old=old, new=micros)


# ------------------------------------------------------------------ the month


def month_of(at: datetime) -> str:
    return at.strftime("%Y-%m")


def committed(s: Session, tenant_id: int, now: datetime) -> int:
    """The tenant's month so far: actual costs outside broadcasts + every broadcast's reservation."""
    month = month_of(now)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    reserved = s.scalar(
        select(func.coalesce(func.sum(Broadcast.cost_reserved_micros), 0)).where(
            Broadcast.tenant_id == tenant_id, Broadcast.started_at >= start
        )
    )
    return int(reserved or 0) + costs.spent(s, tenant_id, month, exclude_newsletters=True)


# ------------------------------------------------------------------ admission of a page


@dataclass
class Admission:
    """What of a page may be queued: the drafts that fit, their cost, and why the rest waits."""

    drafts: list[Draft]
    cost_micros: int = 0
    held_from: int | None = None  # contact id of the first draft that did not fit
    reason: str = ""  # REASON_PREFIX + which cap, stored as the broadcast's paused_reason
    costs: dict[int, int] = field(default_factory=dict)  # contact id -> price


def admit(s: Session, b: Broadcast, drafts: list[Draft], now: datetime | None = None) -> Admission:
    """Price the page's drafts in order and keep those that fit under both caps (CH6)."""
    now = now or utcnow()
    table, currency, pl = costs.prices_in_force(s, b.tenant_id, now)
    if pl is None or not drafts:
        return Admission(drafts)
    prices = _prices(s, b, drafts, table)
    cap_b = None if b.budget_micros is None else b.budget_micros - (b.cost_reserved_micros or 0)
    cap_t_total = tenant_budget(s, b.tenant_id)
    cap_t = None if cap_t_total is None else cap_t_total - committed(s, b.tenant_id, now)
    total = 0
    for i, d in enumerate(drafts):
        price = prices[i]
        if cap_b is not None and total + price > cap_b:
            return Admission(
                drafts[:i], total, d.contact.id, _reason("broadcast", b.budget_micros or 0, currency)
            )
        if cap_t is not None and total + price > cap_t:
            return Admission(drafts[:i], total, d.contact.id, _reason("tenant", cap_t_total or 0, currency))
        total += price
    return Admission(drafts, total)


def rows_before_hold(
    rows: Sequence[Any], drafts: list[Draft], adm: Admission, skipped: Tally[str]
) -> list[Any]:
    """The page's audience rows before the first one held back; contacts skipped beyond it are not
    counted now (they are looked at again when the broadcast resumes)."""
    held = adm.held_from if adm.held_from is not None else 1 << 62
    with_draft = {d.contact.id for d in drafts}
    later = sum(1 for r in rows if r.id >= held and r.id not in with_draft)
    if later:
        skipped["no_identity"] -= later
        if skipped["no_identity"] <= 0:
            del skipped["no_identity"]
    return [r for r in rows if r.id < held]


def _reason(which: str, cap: int, currency: str) -> str:
    return f"{REASON_PREFIX}{which}:{rules.money(cap, currency)}"


def _prices(s: Session, b: Broadcast, drafts: list[Draft], table: costs.Table) -> list[int]:
    accounts = {d.channel_account_id for d in drafts}
    kinds = dict(
        s.execute(select(ChannelAccount.id, ChannelAccount.kind).where(ChannelAccount.id.in_(accounts)))
        .tuples()
        .all()
    )
    priced = {a for a, k in kinds.items() if costs.priced(k)}
    countries: dict[tuple[int, int], str] = {}
    if priced:
        ids = [d.contact.id for d in drafts if d.channel_account_id in priced]
        for i in range(0, len(ids), 5000):
            for cid, acc, country in s.execute(
                select(
                    ContactIdentity.contact_id, ContactIdentity.channel_account_id, ContactIdentity.country
                ).where(
                    ContactIdentity.tenant_id == b.tenant_id,
                    ContactIdentity.contact_id.in_(ids[i : i + 5000]),
                    ContactIdentity.channel_account_id.in_(priced),
                )
            ).tuples():
                countries[(cid, acc)] = country or ""
    categories = costs.template_categories(s, b.tenant_id, b.content or {})
    out = []
    for d in drafts:
        if d.channel_account_id not in priced:
            out.append(0)
            continue
        category = costs.draft_category(categories, b.content or {}, d.channel_account_id)
        country = countries.get((d.contact.id, d.channel_account_id)) or rules.OTHER
        out.append(rules.price(table, country, category))
    return out


def reserve(s: Session, b: Broadcast, adm: Admission, now: datetime | None = None) -> bool:
    """Under the broadcast's row lock: add the page's cost, if it still fits; False: price again."""
    if adm.cost_micros == 0:
        return True
    now = now or utcnow()
    lock_tenant(s, b.tenant_id)  # serialises the reservations of all the tenant's broadcasts
    reserved = b.cost_reserved_micros or 0
    if b.budget_micros is not None and reserved + adm.cost_micros > b.budget_micros:
        return False
    cap_t = tenant_budget(s, b.tenant_id)
    if cap_t is not None and committed(s, b.tenant_id, now) + adm.cost_micros > cap_t:
        return False
    b.cost_reserved_micros = reserved + adm.cost_micros
    return True


def pause_over_budget(s: Session, b: Broadcast, adm: Admission) -> None:
    """Stop queuing with the reason; what was queued within the budget still goes out."""
    b.state = "paused"
    b.paused_reason = adm.reason[:300]
    audit.record(s, b.tenant_id, "system", "broadcast.pause", f"broadcast:{b.id}", reason=adm.reason)


def describe_reason(reason: str) -> tuple[str, dict[str, Any]] | None:
    """A budget pause reason as (msgid, parameters) for the reader's language; None if not one."""
    if not reason.startswith(REASON_PREFIX):
        return None
    which, _, cap = reason[len(REASON_PREFIX) :].partition(":")
    return (N_TENANT_CAP if which == "tenant" else N_BROADCAST_CAP), {"cap": cap}


__all__ = [
    "Admission",
    "InvalidBudget",
    "admit",
    "committed",
    "describe_reason",
    "parse_amount",
    "pause_over_budget",
    "reserve",
    "rows_before_hold",
    "set_broadcast_budget",
    "set_tenant_budget",
    "tenant_budget",
]
