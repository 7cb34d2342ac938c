"""Admin pages of costs: the price table in force and its versions, the monthly budget, what went
out per month, purpose and channel, and a broadcast's budget (CH6, #16 item 4).

Thin views: check the permission and the CSRF token, call one flow, redirect or re-render.
Prices are imported by the operator (`konsent prices import`); the page shows them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.costs import money
from konsent.domain.errors import DomainError, NotFound
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import budget, cost_views
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, gettext_for, request_locale, templates
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin", include_in_schema=False)
add_nav("/admin/costs", "Costs", "stats.view", 61)
templates.env.globals.setdefault("money", money)  # an amount in millionths, for people

VIEW = "stats.view"
MANAGE = "settings.manage"


def _render(request: Request, caller: Caller, error: str = "", status_code: int = 200) -> Response:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        view = cost_views.overview(s, caller.tenant_id)
    _ = gettext_for(request_locale(request))
    notice = _("Budget saved.") if request.query_params.get("notice") == "budget" else ""
    return page(
        request, caller, "admin/costs.html", {"v": view, "error": error, "notice": notice}, status_code
    )


@router.get("/costs")
def costs_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Prices, monthly budget and the bill per month, purpose and channel."""
    return _render(request, caller)


@router.post("/costs/budget")
def set_monthly_budget(
    request: Request,
    caller: Caller = Depends(admin_caller),
    monthly: str = Form("", max_length=40),
    csrf_token: str = Form(""),
) -> Response:
    """Set or clear the tenant's monthly cap (empty: no cap)."""
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    try:
        amount = budget.parse_amount(monthly)
        with get_ctx(request).db.write() as s:
            budget.set_tenant_budget(s, caller.tenant_id, amount, caller.actor)
    except DomainError as exc:
        return _render(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/costs?notice=budget", status_code=303)


@router.post("/broadcasts/{broadcast_id}/budget")
def set_broadcast_budget(
    broadcast_id: str,
    request: Request,
    caller: Caller = Depends(admin_caller),
    amount: str = Form("", max_length=40),
    csrf_token: str = Form(""),
) -> Response:
    """Set or clear one broadcast's cap; its detail page shows the estimate beside it."""
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    if not broadcast_id.isdigit() or len(broadcast_id) > 18:
        raise NotFound()
    bid = int(broadcast_id)
    try:
        micros = budget.parse_amount(amount)
        with get_ctx(request).db.write() as s:
            b = bc.get_broadcast(s, caller.tenant_id, bid, lock=True)
            budget.set_broadcast_budget(s, b, micros, caller.actor)
    except DomainError as exc:
        if status_of(exc) == 404:
            raise
        code = "invalid" if isinstance(exc, budget.InvalidBudget) else "final"
        return RedirectResponse(f"/admin/broadcasts/{bid}?budget_error={code}", status_code=303)
    return RedirectResponse(f"/admin/broadcasts/{bid}", status_code=303)
