"""Admin pages for outgoing webhooks: endpoints, their secrets shown once, the delivery log (M4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain import webhooks as rules
from konsent.domain.errors import DomainError, InvalidInput
from konsent.flows.webhooks import endpoints as webhooks
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx

router = APIRouter(prefix="/admin/webhooks", include_in_schema=False)
add_nav("/admin/webhooks", "Webhooks", "settings.manage", 85)


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(detail="not an id")
    return int(raw)


def _list(request: Request, caller: Caller, **extra: Any) -> Response:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        endpoints = [webhooks.describe_endpoint(ep) for ep in webhooks.list_endpoints(s, caller.tenant_id)]
    status = int(extra.pop("status", 200))
    context = {"endpoints": endpoints, "event_types": rules.EVENT_TYPES, "secret": None, "error": ""}
    return page(request, caller, "admin/webhooks.html", {**context, **extra}, status)


@router.get("")
def webhooks_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _list(request, caller)


@router.post("")
async def webhook_create(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Add an endpoint; its secret is shown on the answer page, once."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    ctx = get_ctx(request)
    events = [str(e) for e in form.getlist("events")]
    try:
        with ctx.db.write() as s:
            ep, secret = webhooks.create_endpoint(
                ctx,
                s,
                caller.tenant_id,
                caller.actor,
                str(form.get("url") or ""),
                events,
                include_personal=form.get("include_personal") == "on",
                description=str(form.get("description") or "")[:200],
            )
            shown = {"endpoint_id": ep.id, "value": secret}
    except DomainError as exc:
        return _list(request, caller, error=error_text(request, exc), status=422)
    return _list(request, caller, secret=shown)


@router.post("/{endpoint_id}/{action}")
async def webhook_action(
    endpoint_id: str, action: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """rotate (secret shown once), disable, enable, delete, or redeliver one delivery."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    ctx = get_ctx(request)
    eid = _id(endpoint_id)
    shown = None
    with ctx.db.write() as s:
        if action == "rotate":
            shown = {
                "endpoint_id": eid,
                "value": webhooks.rotate_secret(ctx, s, caller.tenant_id, caller.actor, eid),
            }
        elif action in ("disable", "enable"):
            webhooks.update_endpoint(ctx, s, caller.tenant_id, caller.actor, eid, active=action == "enable")
        elif action == "delete":
            webhooks.delete_endpoint(s, caller.tenant_id, caller.actor, eid)
        elif action == "redeliver":
            did = _id(str(form.get("delivery_id") or ""))
            webhooks.redeliver(s, caller.tenant_id, caller.actor, eid, did)
            return RedirectResponse(f"/admin/webhooks/{eid}?redelivered={did}", status_code=303)
        else:
            raise InvalidInput(detail="unknown action")
    if shown is not None:
        return _list(request, caller, secret=shown)
    return RedirectResponse("/admin/webhooks", status_code=303)


@router.get("/{endpoint_id}")
def webhook_log(endpoint_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The delivery log of one endpoint, newest first, with a redeliver button per event."""
    caller.require("settings.manage")
    eid = _id(endpoint_id)
    with get_ctx(request).db.read() as s:
        ep = webhooks.describe_endpoint(webhooks.get_endpoint(s, caller.tenant_id, eid))
        log = [webhooks.describe_delivery(d) for d in webhooks.deliveries(s, caller.tenant_id, eid, 100)]
    redelivered = request.query_params.get("redelivered", "")
    return page(
        request,
        caller,
        "admin/webhook_log.html",
        {"endpoint": ep, "log": log, "redelivered": redelivered if redelivered.isdigit() else ""},
    )
