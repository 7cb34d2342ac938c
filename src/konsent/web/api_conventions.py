"""Conventions of the REST API (M4): one error body, bearer auth and examples in OpenAPI, docs served
offline, cursor pagination and idempotent writes.

Error body everywhere: `{"code": str, "message": str, "detail": str | [{"field", "message"}] | null}`
(more keys may carry the values of the message, e.g. `purpose` and `reason` of a refusal).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, JSONResponse

from konsent.domain.errors import InvalidInput
from konsent.flows import idempotency
from konsent.web.deps import Caller, get_ctx

DOCS_ASSETS = "/api/docs/assets"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENT = {"x-idempotent": True}  # `openapi_extra` of a route that honours Idempotency-Key


class FieldError(BaseModel):
    field: str = Field(description="Where: a dotted path into the body, query or path.")
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="Stable, machine-readable, e.g. `not_found`, `no_legal_basis`.")
    message: str = Field(description="What went wrong, for a person.")
    detail: str | list[FieldError] | None = Field(
        None, description="Invalid fields of a 422, or more about the error; null when nothing more."
    )


ERRORS: dict[int, str] = {
    400: "Bad request.",
    401: "No or an unknown bearer token (`unauthenticated`).",
    403: "The token's role or scopes do not allow this (`forbidden`).",
    404: "No such object for this tenant (`not_found`); other tenants' objects are never found.",
    409: "Refused by a rule: no legal basis (`no_legal_basis`), a closed window, a conflict.",
    413: "Request body too large (`too_large`).",
    415: "The body is not JSON.",
    422: "Invalid input (`invalid_input`): `detail` lists the fields, or says why.",
    429: "Rate limit of this token reached (`rate_limited`); wait `Retry-After` seconds.",
}


def error_body(code: str, message: str, detail: Any = None, **more: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": detail, **more}


# ------------------------------------------------------------------ pagination


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id after which the next page starts; 422 for a cursor we did not make."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind == "id" and value.isdigit() and 0 <= int(value) < 2**63:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidInput(detail="cursor: not a cursor this API handed out")


def page(request: Request, items: list[dict[str, Any]], limit: int, key: str = "id") -> JSONResponse:
    """A JSON array; a `Link: <…>; rel="next"` header and `X-Next-Cursor` when more may follow."""
    headers: dict[str, str] = {}
    if len(items) >= limit and items:
        nxt = encode_cursor(int(items[-1][key]))
        url = request.url.include_query_params(cursor=nxt)
        headers = {"link": f'<{url.path}?{url.query}>; rel="next"', "x-next-cursor": nxt}
    return JSONResponse(items, headers=headers)


PAGE_HEADERS = {
    "Link": {
        "description": 'The next page: `<url>; rel="next"`. Absent on the last page.',
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {"description": "The `cursor` of the next page.", "schema": {"type": "string"}},
}


# ------------------------------------------------------------------ idempotent writes


def write_once(
    request: Request,
    caller: Caller,
    body: BaseModel | None,
    status: int,
    action: Callable[[Any], Any],
) -> JSONResponse:
    """Run `action` in one write transaction; with an Idempotency-Key, at most once per key (M4).

    A retry with the same key and body returns the first answer with `Idempotent-Replayed: true`;
    the same key with another body is a 422. Only successful answers are kept (24 hours).
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    ctx = get_ctx(request)
    if key is not None:
        idempotency.check_key(key)
        raw = body.model_dump_json() if body is not None else ""
        fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\n{raw}".encode()).hexdigest()
    with ctx.db.write() as s:
        if key is not None:
            prior = idempotency.begin(s, caller.tenant_id, caller.actor, key, fingerprint)
            if prior is not None:
                return JSONResponse(prior[1], prior[0], headers={"idempotent-replayed": "true"})
        result = action(s)
        if key is not None:
            idempotency.finish(s, caller.tenant_id, caller.actor, key, status, result)
    return JSONResponse(result, status)


# ------------------------------------------------------------------ OpenAPI and docs


def _error_ref() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _codes_for(path: str, method: str, op: dict[str, Any]) -> list[int]:
    if path.startswith("/api/public/"):  # the widget's doors: no token, rate-limited per address
        codes = [404, 422, 429] + ([400, 413, 415] if method == "post" else [])
        return sorted(codes)
    codes = [401, 403, 422, 429]
    if "{" in path or method in ("post", "put", "patch", "delete"):
        codes.append(404)
    if method in ("post", "put", "patch", "delete"):
        codes += [409, 413]
    if "requestBody" in op:
        codes += [400, 415]
    return sorted(set(codes))


IDEMPOTENCY_PARAM = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Any unique string (a UUID); a retry with the same key returns the first answer "
    "and does nothing twice. Kept 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "example": "3f1c8a52-5d7e-4c2b-9a61-0f2e8d4b7c10",
}


def custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        comps = schema.setdefault("components", {})
        schemas = comps.setdefault("schemas", {})
        for model in (FieldError, ErrorBody):
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        comps["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token from Admin → API tokens or `konsent token create`: "
                "`Authorization: Bearer ks_…`.",
            }
        }
        for path, ops in schema.get("paths", {}).items():
            if not path.startswith(("/api/v1/", "/api/public/")):
                continue
            for method, op in ops.items():
                if path.startswith("/api/v1/"):
                    op["security"] = [{"bearer": []}]
                responses = op.setdefault("responses", {})
                for code in _codes_for(path, method, op):
                    entry = responses.setdefault(str(code), {"description": ERRORS[code]})
                    entry["content"] = _error_ref()
                    if code == 429:
                        entry["headers"] = {
                            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
                        }
                if op.pop("x-idempotent", False):
                    op.setdefault("parameters", []).append(IDEMPOTENCY_PARAM)
        app.openapi_schema = schema
        return schema

    return build


def install(app: FastAPI) -> None:
    """Offline Swagger UI and ReDoc (assets from the fastapi-offline package, no CDN) and our OpenAPI."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="api-docs-assets")
    openapi_url = app.openapi_url or "/api/v1/openapi.json"

    @app.get("/api/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} – Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": False},
        )

    @app.get("/api/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} – ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.openapi = custom_openapi(app)  # type: ignore[method-assign]
