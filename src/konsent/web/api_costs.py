"""REST API for costs: a broadcast's estimate and budget, the tenant's budget, the monthly bill,
the price table (CH6, #16 item 4). The same flows and permissions as the admin's costs pages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from konsent.flows.outbound import broadcast, budget, cost_views, costs
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1")
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
VIEW, MANAGE, STATS = "contacts.read", "settings.manage", "stats.view"


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": "250.00"}]})
    amount: str | None = Field(
        None, max_length=40, description="In the price table's currency, e.g. 250 or 99.50; null: no cap."
    )


@router.get("/broadcasts/{broadcast_id}/costs", tags=["broadcasts"])
def broadcast_costs(
    broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """What the broadcast is estimated to cost (audience per country × category price), its budget
    and what its queued messages reserved."""
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return cost_views.describe(s, broadcast.get_broadcast(s, caller.tenant_id, broadcast_id))


@router.put("/broadcasts/{broadcast_id}/budget", tags=["broadcasts"])
def set_broadcast_budget(
    broadcast_id: Id, body: BudgetIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Cap what this broadcast may cost: it pauses before a message would exceed it."""
    caller.require(MANAGE)
    amount = budget.parse_amount(body.amount)
    with get_ctx(request).db.write() as s:
        b = broadcast.get_broadcast(s, caller.tenant_id, broadcast_id, lock=True)
        budget.set_broadcast_budget(s, b, amount, caller.actor)
        return cost_views.describe(s, b)


@router.put("/budget", tags=["costs"])
def set_monthly_budget(
    body: BudgetIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """The tenant's monthly cap over every broadcast; null removes it."""
    caller.require(MANAGE)
    amount = budget.parse_amount(body.amount)
    with get_ctx(request).db.write() as s:
        budget.set_tenant_budget(s, caller.tenant_id, amount, caller.actor)
    return {"monthly_budget_micros": amount}


@router.get("/costs", tags=["costs"])
def monthly_costs(
    request: Request,
    caller: Caller = Depends(api_caller),
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
) -> dict[str, Any]:
    """Cost per month, purpose and channel account, priced at the table in force on each day."""
    caller.require(STATS)
    with get_ctx(request).db.read() as s:
        lines, currency = costs.monthly_costs(s, caller.tenant_id, [month] if month else None)
        view = cost_views.overview(s, caller.tenant_id)
    return {
        "currency": currency,
        "monthly_budget": view.monthly_budget_amount or None,
        "lines": [
            {
                "month": ln.month, "purpose": ln.purpose, "channel": ln.channel, "account": ln.account,
                "messages": ln.messages, "billable": ln.billable, "total_micros": ln.total_micros,
            }
            for ln in lines
        ],
    }  # fmt: skip


@router.get("/prices", tags=["costs"])
def prices(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """The price table's versions (imported by the operator) and the one in force."""
    caller.require(STATS)
    with get_ctx(request).db.read() as s:
        view = cost_views.overview(s, caller.tenant_id)
    return {
        "currency": view.currency,
        "in_force": [{"country": c, "category": k, "price": p} for c, k, p in view.table],
        "versions": [
            {"id": pl.id, "valid_from": pl.valid_from.isoformat(), "currency": pl.currency, "rows": pl.rows,
             "current": pl.current, "source": pl.source}
            for pl in view.lists
        ],
    }  # fmt: skip
