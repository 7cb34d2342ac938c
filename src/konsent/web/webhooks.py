"""Provider webhooks: GET handshake and POST deliveries for every channel account (CH2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konsent.domain.errors import NotFound
from konsent.flows.context import Konsent
from konsent.flows.inbound import status_sink
from konsent.flows.inbound.receive import WebhookRequest, acknowledge, receive_webhook
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
        # Status-only deliveries for known routes were taken by StatusFastPath before routing.
        result = await run_in_threadpool(receive_webhook, ctx, route_key, req, try_fast=False)
    except NotFound:
        return PlainTextResponse("Not Found", status_code=404)
    # Acknowledgements go out after the answer: the provider never waits on them.
    after = BackgroundTask(acknowledge, ctx, result) if result.to_acknowledge else None
    return PlainTextResponse(result.body, status_code=result.status, background=after)


class StatusFastPath:
    """ASGI middleware for the hottest route: status webhooks answered without the framework (CH4).

    A POST to /webhooks/<key> with a small body is verified and parsed here; if it is a
    status-only delivery for a known account, it is stored by the next group commit and
    answered 200 once that has committed. Anything else continues, body intact, to the
    route above, which handles every case.
    """

    def __init__(self, app: ASGIApp, ctx: Konsent) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or not path.startswith(PREFIX) or "/" in path[len(PREFIX) :]:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (
                not value.isdigit() or int(value) > status_sink.FAST_BODY_LIMIT
            ):
                await self.app(scope, receive, send)  # large: the route (and its 413 limit) takes it
                return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= status_sink.FAST_BODY_LIMIT:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the route see it as it would
                await self.app(scope, _replay(receive, chunks, more=True, then=message), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        if not more:
            req = WebhookRequest(
                method="POST",
                headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])},
                query={},
                body=b"".join(chunks),
            )
            if await status_sink.try_fast_path_async(self.ctx, path[len(PREFIX) :], req) is not None:
                # a fresh list: outer middleware appends its headers to it
                await send({"type": "http.response.start", "status": 200, "headers": list(_OK_HEADERS)})
                await send({"type": "http.response.body", "body": b"OK"})
                return
        await self.app(scope, _replay(receive, chunks, more=more), send)


PREFIX = "/webhooks/"
_OK_HEADERS = (
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"2"),
    # what SecurityHeaders adds to every other answer (this one is sent before the middleware)
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
)


def _replay(receive: Receive, chunks: list[bytes], *, more: bool, then: Message | None = None) -> Receive:
    """A receive that hands the app the body read so far, then whatever the client still sends."""
    queue: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]
    if then is not None:
        queue.append(then)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed
