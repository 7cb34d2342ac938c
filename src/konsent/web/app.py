"""The FastAPI application factory."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konsent import __version__
from konsent.domain.errors import DomainError
from konsent.flows.context import Konsent
from konsent.web import scope_guard
from konsent.web.errors import as_json, message_of, status_of
from konsent.web.headers import SecurityHeaders
from konsent.web.hygiene import InputHygiene

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int, larger: tuple[re.Pattern[str], int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger  # paths that take files (the inbox composer) and their own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if self.larger is not None and self.larger[0].fullmatch(scope.get("path", "")):
            limit = max(limit, self.larger[1])
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await JSONResponse(
                    {"code": "too_large", "message": "Request body too large.", "detail": None}, 413
                )(scope, receive, send)
                return
        seen = 0
        started = refused = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is out; what the app answers to the cut-off body is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def limited() -> Message:
            # A streamed body over the limit: answer 413 here and tell the app the client left.
            # (Raising instead would reach FastAPI's body parser, which turns any error into 400.)
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                if not started:
                    await JSONResponse(
                        {"code": "too_large", "message": "Request body too large.", "detail": None}, 413
                    )(scope, receive, send)
                refused = True
                return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise
            # The 413 is out; the app saw the cut-off body as the client leaving. No traceback (#13).


class KonsentApp(FastAPI):
    """The FastAPI app with the status-webhook fast path in front of the whole middleware stack."""

    fast_path: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is not None:
            await self.fast_path(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(ctx: Konsent) -> FastAPI:
    """Build the web application around one installation context."""
    app = KonsentApp(
        title="konsent API",
        version=__version__,
        description="REST API of konsent. Every message names its purpose; sends without a legal basis "
        "are refused with 409 and the reason.",
        docs_url=None,  # served offline by api_conventions.install
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
        # Agents reach only contacts in their teams, on every route naming one (S3, web/scope_guard.py).
        dependencies=[Depends(scope_guard.agent_scope)],
    )
    app.state.ctx = ctx

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        from konsent.web.deps import Unauthenticated

        if isinstance(exc, Unauthenticated) and request.url.path.startswith("/admin"):
            return Response(status_code=303, headers={"location": "/admin/login"})
        from konsent.web.deps import render, request_locale

        status = status_of(exc)
        if request.url.path.startswith("/admin") and "text/html" in request.headers.get("accept", ""):
            message = message_of(exc, request_locale(request))
            return render(request, "error.html", {"status": status, "message": message}, status_code=status)
        # one error body {code, message, detail} (M4); JSON callers get English unless they ask for German
        body = {"detail": None, **as_json(exc, request_locale(request, "en"))}
        return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors: list[dict[str, Any]] = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"code": "invalid_input", "message": "The request is not valid.", "detail": errors}, 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        body = {"code": f"http_{exc.status_code}", "message": str(exc.detail), "detail": None}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    from konsent.web import admin, api, public, public_simulator, webhooks

    app.include_router(webhooks.router)
    app.include_router(api.router)
    from konsent.web import api_conventions, api_routes

    api_routes.include(app)
    api_conventions.install(app)
    app.include_router(public.router)
    app.include_router(public_simulator.router)
    app.include_router(admin.router)
    from konsent.web import privacy_pages

    app.include_router(privacy_pages.router)
    from konsent.web import admin_privacy

    app.include_router(admin_privacy.router)
    from konsent.web import admin_inbox

    app.include_router(admin_inbox.router, prefix="/admin")
    from konsent.web import admin_inbox_work

    app.include_router(admin_inbox_work.router, prefix="/admin")
    app.include_router(admin_inbox_work.public_router)
    from konsent.web import admin_broadcasts, admin_costs

    app.include_router(admin_costs.router)  # before the broadcasts: its /broadcasts/{id}/budget
    app.include_router(admin_broadcasts.router)
    from konsent.web import admin_audience  # segments and contact pressure (#17)

    app.include_router(admin_audience.router)
    from konsent.web import admin_company, admin_topics, api_setup, public_try  # company setup (#12)

    app.include_router(admin_company.router)
    app.include_router(admin_topics.router)
    app.include_router(api_setup.router)
    app.include_router(public_try.router)
    from konsent.web import ops

    app.include_router(ops.router)
    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(InputHygiene)
    app.add_middleware(SecurityHeaders, https=ctx.settings.base_url.lower().startswith("https://"))
    # the composer takes a file up to upload_max_bytes; the flow refuses a larger one with its own 413
    composer = (re.compile(r"/admin/inbox/\d{1,18}/reply"), ctx.settings.upload_max_bytes + 256_000)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes, larger=composer)

    threads = ctx.settings.web_threads

    async def framework(scope: Scope, receive: Receive, send: Send) -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()  # one per event loop
        if limiter.total_tokens != threads:
            limiter.total_tokens = threads
        await FastAPI.__call__(app, scope, receive, send)

    # Status webhooks are the hottest route (several per message sent): answered before routing.
    app.fast_path = webhooks.StatusFastPath(framework, ctx)
    return app
