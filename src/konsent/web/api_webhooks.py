"""REST API for outgoing webhook endpoints, their secrets and delivery logs (M4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from konsent.domain import webhooks as rules
from konsent.flows.webhooks import endpoints as webhooks
from konsent.web.api_conventions import IDEMPOTENT, PAGE_HEADERS, decode_cursor, page, write_once
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
MAX_ID = 2**63 - 1
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID)]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
EventType = Annotated[str, Field(max_length=40, examples=["consent.withdrawn"])]


class EndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://crm.example.com/konsent", "events": ["consent.withdrawn"]}]
        },
    )
    url: str = Field(max_length=2000, description="https:// only; no private or loopback addresses.")
    events: list[EventType] = Field(
        min_length=1, max_length=len(rules.EVENT_TYPES) + 1, description="Event types, or `*` for all."
    )
    include_personal: bool = Field(False, description="Add names, addresses and message texts to events.")
    description: str = Field("", max_length=200)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": True}]})
    url: str | None = Field(None, max_length=2000)
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(rules.EVENT_TYPES) + 1)
    include_personal: bool | None = None
    active: bool | None = Field(None, description="true re-enables an endpoint that was disabled.")


@router.post("/webhook-endpoints", status_code=201, openapi_extra=IDEMPOTENT)
def create_endpoint(body: EndpointIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Register an endpoint; the answer holds its signing `secret`, shown this once (M4)."""
    caller.require("settings.manage")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        ep, secret = webhooks.create_endpoint(
            ctx,
            s,
            caller.tenant_id,
            caller.actor,
            body.url,
            list(body.events),
            include_personal=body.include_personal,
            description=body.description,
        )
        return {**webhooks.describe_endpoint(ep), "secret": secret}

    return write_once(request, caller, body, 201, run)


@router.get("/webhook-endpoints")
def list_endpoints(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        return [webhooks.describe_endpoint(ep) for ep in webhooks.list_endpoints(s, caller.tenant_id)]


@router.get("/webhook-endpoints/{endpoint_id}")
def get_endpoint(
    endpoint_id: EndpointId, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        return webhooks.describe_endpoint(webhooks.get_endpoint(s, caller.tenant_id, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}")
def update_endpoint(
    endpoint_id: EndpointId, body: EndpointPatch, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("settings.manage")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        ep = webhooks.update_endpoint(
            ctx,
            s,
            caller.tenant_id,
            caller.actor,
            endpoint_id,
            url=body.url,
            events=list(body.events) if body.events is not None else None,
            include_personal=body.include_personal,
            active=body.active,
        )
        return webhooks.describe_endpoint(ep)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(
    endpoint_id: EndpointId, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        webhooks.delete_endpoint(s, caller.tenant_id, caller.actor, endpoint_id)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", openapi_extra=IDEMPOTENT)
def rotate_secret(
    endpoint_id: EndpointId, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """A new secret, shown once; for 24 hours events carry a signature with each secret."""
    caller.require("settings.manage")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        secret = webhooks.rotate_secret(ctx, s, caller.tenant_id, caller.actor, endpoint_id)
        ep = webhooks.get_endpoint(s, caller.tenant_id, endpoint_id)
        return {**webhooks.describe_endpoint(ep), "secret": secret}

    return write_once(request, caller, None, 200, run)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", responses={200: {"headers": PAGE_HEADERS}})
def list_deliveries(
    endpoint_id: EndpointId,
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(
        None, max_length=100, description="From `X-Next-Cursor` of the previous page."
    ),
    caller: Caller = Depends(api_caller),
) -> JSONResponse:
    """The delivery log, newest first."""
    caller.require("settings.manage")
    before = decode_cursor(cursor)
    with get_ctx(request).db.read() as s:
        rows = webhooks.deliveries(s, caller.tenant_id, endpoint_id, limit, before)
        return page(request, [webhooks.describe_delivery(d) for d in rows], limit)


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    openapi_extra=IDEMPOTENT,
)
def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """Send an event again now, with the same event id."""
    caller.require("settings.manage")

    def run(s: Any) -> dict[str, Any]:
        d = webhooks.redeliver(s, caller.tenant_id, caller.actor, endpoint_id, delivery_id)
        return webhooks.describe_delivery(d)

    return write_once(request, caller, None, 202, run)


@router.get("/webhook-event-types")
def event_types(caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """The event types an endpoint may ask for, and the signature's tolerance."""
    return {
        "events": list(rules.EVENT_TYPES),
        "signature_header": rules.SIGNATURE_HEADER,
        "tolerance_seconds": rules.TOLERANCE_SECONDS,
    }
