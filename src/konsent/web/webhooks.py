"""Provider webhooks: GET handshake and POST deliveries for every channel account (CH2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse

from konsent.channels.base import WebhookRequest
from konsent.domain.errors import NotFound
from konsent.flows.inbound import acknowledge, receive_webhook
from konsent.web.deps import get_ctx

router = APIRouter(tags=["webhooks"])


@router.api_route("/webhooks/{route_key}", methods=["GET", "POST"], include_in_schema=False)
async def webhook(route_key: str, request: Request) -> PlainTextResponse:
    """One URL per channel account; an unknown key answers 404 and reveals no tenant."""
    body = await request.body()
    req = WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=body,
    )
    ctx = get_ctx(request)
    try:
        result = await run_in_threadpool(receive_webhook, ctx, route_key, req)
    except NotFound:
        return PlainTextResponse("Not Found", status_code=404)
    # Acknowledgements go out after the answer: the provider never waits on them.
    after = BackgroundTask(acknowledge, ctx, result) if result.to_acknowledge else None
    return PlainTextResponse(result.body, status_code=result.status, background=after)
