"""Health, readiness and metrics for load balancers and Prometheus (U6).

Anonymous callers learn only "ok" / "ready" / "not_ready"; a signed-in owner or admin also
sees each check. /metrics answers only on the loopback interface (and not through a proxy)
or to the bearer token in KONSENT_METRICS_TOKEN.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from konsent import __version__
from konsent.flows.operations import health
from konsent.flows.operations import metrics as exposition
from konsent.web.deps import SESSION_COOKIE, get_ctx, session_caller

router = APIRouter(include_in_schema=False)

OPERATOR_ROLES = ("owner", "admin")
_PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
_NO_STORE = {"cache-control": "no-store"}


def _operator(request: Request) -> bool:
    if not request.cookies.get(SESSION_COOKIE):
        return False
    try:
        caller = session_caller(request)
    except Exception:  # the database is down: answer as to anyone
        return False
    return caller is not None and caller.role in OPERATOR_ROLES


def _local(request: Request) -> bool:
    """A direct connection from this machine; one relayed by a reverse proxy does not count."""
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """The process answers; the database is not asked."""
    body: dict[str, object] = {"status": "ok"}
    if await run_in_threadpool(_operator, request):
        body["version"] = __version__
    return JSONResponse(body, headers=_NO_STORE)


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Database, migrations, key store and a fresh worker heartbeat; 503 while any is missing."""
    report = await health.readiness_async(get_ctx(request))
    details = await run_in_threadpool(_operator, request)
    return JSONResponse(report.as_dict(details), status_code=200 if report.ready else 503, headers=_NO_STORE)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    ctx = get_ctx(request)
    token = ctx.settings.metrics_token.get_secret_value() if ctx.settings.metrics_token else ""
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    allowed = bool(token) and hmac.compare_digest(given.encode(), token.encode())
    if not allowed and not _local(request):
        return JSONResponse(
            {"code": "forbidden", "message": "Metrics are served to localhost or with the metrics token."},
            status_code=403,
        )
    body, content_type = await run_in_threadpool(exposition.exposition, ctx)
    return Response(body, media_type=content_type, headers=_NO_STORE)
