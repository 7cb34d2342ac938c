"""What the admin and the API show about costs: a broadcast's estimate and budget, the month (CH6).

Read models over `costs` and `budget`, for one tenant at a time (invariant 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from konsent.domain.costs import money
from konsent.flows.outbound import broadcast, budget, costs
from konsent.store.tables import Broadcast
from konsent.store.types import utcnow


def estimate(s: Session, b: Broadcast, now: datetime | None = None) -> costs.Estimate:
    """The broadcast's audience now × the price table in force (the confirm page, the API)."""
    now = now or utcnow()
    return costs.estimate_broadcast(s, b, broadcast._audience(s, b, now), now)


def broadcast_costs(s: Session, b: Broadcast) -> dict[str, Any]:
    """Estimate (before sending), reservation and budget of one broadcast, ready to show."""
    est = estimate(s, b) if b.state in ("draft", "scheduled", "paused") else None
    _, currency, _ = costs.prices_in_force(s, b.tenant_id, utcnow())
    reason = budget.describe_reason(b.paused_reason or "") if b.state == "paused" else None
    return {
        "estimate": est,
        "currency": currency,
        "total": money(est.total_micros, est.currency) if est else "",
        "budget": money(b.budget_micros, currency) if b.budget_micros is not None else "",
        "budget_amount": _plain(b.budget_micros),
        "reserved": money(b.cost_reserved_micros or 0, currency),
        "budget_pause": reason,  # (msgid, params) when the broadcast paused for a budget
    }


def describe(s: Session, b: Broadcast) -> dict[str, Any]:
    """The API's view: estimate, budget and reservation in millionths and as amounts."""
    est = estimate(s, b)
    reason = budget.describe_reason(b.paused_reason or "") if b.state == "paused" else None
    return {
        "broadcast_id": b.id,
        "estimate": est.as_dict(),
        "budget": _plain(b.budget_micros),
        "budget_micros": b.budget_micros,
        "cost_reserved_micros": b.cost_reserved_micros or 0,
        "paused_for_budget": reason is not None,
        "paused_reason": b.paused_reason if b.state == "paused" else "",
    }


def _plain(micros: int | None) -> str:
    return "" if micros is None else money(micros, "").strip()


@dataclass(frozen=True)
class Overview:
    """The costs page: budget, month so far, price table versions, the bill."""

    currency: str
    monthly_budget: str
    monthly_budget_amount: str
    committed: str
    month: str
    lists: list[costs.PriceListInfo]
    table: list[tuple[str, str, str]]  # country, category, price of the version in force
    bill: list[costs.BillLine]


def overview(s: Session, tenant_id: int, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    table, currency, _pl = costs.prices_in_force(s, tenant_id, now)
    cap = budget.tenant_budget(s, tenant_id)
    bill, _ = costs.monthly_costs(s, tenant_id)
    rows = sorted(table.items(), key=lambda kv: (kv[0][0] == "*", kv[0][0], kv[0][1]))
    return Overview(
        currency=currency,
        monthly_budget=money(cap, currency) if cap is not None else "",
        monthly_budget_amount=_plain(cap),
        committed=money(budget.committed(s, tenant_id, now), currency),
        month=budget.month_of(now),
        lists=costs.price_lists(s, tenant_id, now),
        table=[(c, k, money(m, currency)) for (c, k), m in rows],
        bill=bill,
    )


def month_lines(s: Session, tenant_id: int, months: int = 3) -> tuple[list[costs.BillLine], str]:
    """The dashboard's table: the last few months' cost per purpose and channel."""
    lines, currency = costs.monthly_costs(s, tenant_id)
    keep = sorted({ln.month for ln in lines}, reverse=True)[:months]
    return [ln for ln in lines if ln.month in keep], currency


__all__ = ["Overview", "broadcast_costs", "describe", "estimate", "month_lines", "overview"]
