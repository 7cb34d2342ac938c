"""Public pages: the opt-in widget and its API, the demo shop, the simulator phone (C1, C2, CH1, U2)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Coroutine
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, TypeVar

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, StringConstraints, ValidationError
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows import texts, widget
from konsent.i18n import pick_locale, t
from konsent.web import ratelimit
from konsent.web.deps import get_ctx, render, request_locale
from konsent.web.errors import as_json, status_of

STATIC = Path(__file__).parent / "static"
MAX_FIELD = 100
MAX_TOPICS = 20
MAX_SOURCE_URL = 500

CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "content-type",
    "access-control-max-age": "600",
}


def N_(msgid: str) -> str:
    return msgid


# What the widget and the phone page say; German in locales/de/LC_MESSAGES/public.po (U2).
WITHDRAWAL_NOTICE = N_(
    "You can withdraw at any time by sending STOP; withdrawal does not affect the lawfulness of "
    "processing before it."
)
NOT_JSON = N_("Please send the form data as JSON.")
TOO_MANY_TOPICS = N_("Please choose at most {max} topics.")
FIELD_TOO_LONG = N_("The field {field} is too long (at most {max} characters).")
FIELD_INVALID = N_("The field {field} is missing or not valid.")
UNKNOWN_TENANT = N_("This sign-up form does not exist.")
TOO_MANY_SIGNUPS = N_("Too many sign-ups from your connection. Please try again in a few minutes.")

WIDGET_STRINGS = {
    "title": N_("Get our news on your messenger"),
    "intro": N_("Choose your messenger and the topics you are interested in."),
    "channel_legend": N_("Your messenger"),
    "topics_legend": N_("Topics"),
    "submit": N_("Sign up"),
    "submitting": N_("Please wait…"),
    "privacy": N_("Privacy policy"),
    "language": N_("Language"),
    "result_title": N_("Almost done: please confirm in your messenger"),
    "result_hint": N_(
        "Open the link on your phone or scan the QR code, then send the prefilled message. "
        "Your subscription starts only when we receive it; we have not sent you anything."
    ),
    "open_link": N_("Open messenger and confirm"),
    "code_label": N_("Your code"),
    "code_hint": N_("If the message is not prefilled, send this code to us."),
    "valid_until": N_("Valid until"),
    "qr_label": N_("QR code of the confirmation link"),
    "start_over": N_("Start over"),
    "choose_channel": widget.CHOOSE_CHANNEL,
    "tick_topic": texts.TICK_A_TOPIC,
    "error_generic": N_("Something went wrong. Please try again later."),
    "error_network": N_("We could not reach the server. Please check your connection and try again."),
    "no_channels": N_("Sign-up is not available at the moment."),
}


class _CorsRoute(APIRoute):
    """Widget API routes: any origin may call them, without credentials; errors carry the header too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except DomainError as exc:
                response = JSONResponse(
                    as_json(exc, request_locale(request, "en")), status_code=status_of(exc)
                )
            response.headers.update(CORS_HEADERS)
            return response

        return with_cors


router = APIRouter(tags=["public"])
widget_api = APIRouter(prefix="/api/public/v1", tags=["public"], route_class=_CorsRoute)

Model = TypeVar("Model", bound=BaseModel)
Short = Annotated[str, StringConstraints(max_length=MAX_FIELD)]


def _invalid(locale: str, msgid: str, status: int = 422, **params: Any) -> JSONResponse:
    return JSONResponse({"code": "invalid_input", "message": t(locale, msgid, **params)}, status_code=status)


def _explain(locale: str, exc: ValidationError, per_field: dict[str, str]) -> str:
    """One sentence a visitor understands for the first problem pydantic found."""
    err = exc.errors()[0]
    loc = err.get("loc", ())
    field = str(loc[0]) if loc else "body"
    limit = (err.get("ctx") or {}).get("max_length")
    if field in per_field and (limit is not None or "{max}" not in per_field[field]):
        return t(locale, per_field[field], max=limit)
    if err["type"] == "too_long" and field == "topics":
        return t(locale, TOO_MANY_TOPICS, max=limit)
    if err["type"] in ("string_too_long", "too_long"):
        return t(locale, FIELD_TOO_LONG, field=field, max=limit)
    return t(locale, FIELD_INVALID, field=field)


async def _json_body(
    request: Request, model: type[Model], locale: str, per_field: dict[str, str] | None = None
) -> Model | JSONResponse:
    """Parse a JSON body into `model`, or a translated 415/422 answer; nothing is stored either way."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return _invalid(locale, NOT_JSON, 415)
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _invalid(locale, NOT_JSON, 400)
    if not isinstance(data, dict):
        return _invalid(locale, NOT_JSON, 400)
    if isinstance(data.get("lang"), str):
        locale = pick_locale(data["lang"], locale)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = _explain(locale, exc, per_field or {})
        return JSONResponse({"code": "invalid_input", "message": message}, status_code=422)


def _translated(locale: str, exc: DomainError) -> JSONResponse:
    """A flow's error with its detail in the visitor's language (details are msgids or translated)."""
    return JSONResponse(as_json(exc, locale), status_code=status_of(exc))


# --- the widget --------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/admin/login", status_code=303)


@router.get("/widget.js", include_in_schema=False)
def widget_js() -> Response:
    return FileResponse(
        STATIC / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "public, max-age=300", "access-control-allow-origin": "*"},
    )


@widget_api.get("/widget/{tenant_slug}/config")
async def widget_config(tenant_slug: str, request: Request, lang: str = "") -> Response:
    """Channels, topics (never pre-ticked), the consent text verbatim, privacy link, UI strings (C1)."""
    locale = pick_locale(lang or request_locale(request))
    try:
        cfg = await run_in_threadpool(widget.widget_config, get_ctx(request), tenant_slug, locale)
    except NotFound:
        return _invalid(locale, UNKNOWN_TENANT, 404)
    return JSONResponse(
        {
            "tenant": {"slug": cfg.tenant_slug, "name": cfg.tenant_name},
            "locale": cfg.locale,
            "channels": [{"id": c.id, "kind": c.kind, "label": c.label} for c in cfg.channels],
            "topics": [
                {"slug": tp.slug, "name": tp.name, "description": tp.description, "checked": False}
                for tp in cfg.topics
            ],
            "consent": {
                "text": cfg.consent_text,
                "version": cfg.consent_version,
                "locale": cfg.consent_locale,
            },
            "privacy_url": cfg.privacy_url,
            "withdrawal_notice": t(cfg.locale, WITHDRAWAL_NOTICE),
            "strings": {key: t(cfg.locale, msgid) for key, msgid in WIDGET_STRINGS.items()},
        }
    )


class OptInIn(BaseModel):
    """A widget submission."""

    channel_account_id: int = Field(ge=1)
    topics: list[Short] = Field(max_length=MAX_TOPICS)
    lang: Short = ""
    source_url: Annotated[str, StringConstraints(max_length=MAX_SOURCE_URL)] = ""
    consent_version: int | None = Field(None, ge=1)


@widget_api.post("/widget/{tenant_slug}/optin")
async def widget_opt_in(tenant_slug: str, request: Request) -> Response:
    """Create a pending opt-in; answer with the deep link and its QR code. Sends nothing (C2)."""
    locale = request_locale(request)
    wait = ratelimit.limiter(request).hit("optin", ratelimit.client_key(request))
    if wait is not None:
        limited = _invalid(locale, TOO_MANY_SIGNUPS, 429)
        limited.headers["retry-after"] = str(wait)
        return limited
    parsed = await _json_body(request, OptInIn, locale, {"channel_account_id": widget.CHOOSE_CHANNEL})
    if isinstance(parsed, Response):
        return parsed
    locale = pick_locale(parsed.lang or locale)
    if not parsed.topics:
        return _invalid(locale, texts.TICK_A_TOPIC)
    try:
        pending = await run_in_threadpool(
            widget.widget_opt_in,
            get_ctx(request),
            tenant_slug,
            channel_account_id=parsed.channel_account_id,
            topic_slugs=parsed.topics,
            locale=locale,
            source_url=parsed.source_url,
            ip=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
            consent_version=parsed.consent_version,
        )
    except NotFound:
        return _invalid(locale, UNKNOWN_TENANT, 404)
    except DomainError as exc:
        return _translated(locale, exc)
    qr = _qr_svg(pending.deep_link, t(locale, WIDGET_STRINGS["qr_label"]))
    return JSONResponse(
        {
            "code": pending.code,
            "deep_link": pending.deep_link,
            "qr_svg": qr,
            "expires_at": pending.expires_at.astimezone(UTC).isoformat(),
            "prefill": pending.prefill,
        }
    )


def _qr_svg(data: str, title: str) -> str:
    """The deep link as an inline SVG QR code, made here so the widget needs no QR library."""
    buf = io.BytesIO()
    segno.make(data, error="m").save(
        buf,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        scale=4,
        border=2,
        dark="#000",
        light="#fff",
        title=title,
    )
    return buf.getvalue().decode()


@widget_api.options("/{path:path}", include_in_schema=False)
def preflight(path: str) -> Response:
    return Response(status_code=204)


router.include_router(widget_api)


# --- the demo shop ------------------------------------------------------------------------------


@router.get("/demo", include_in_schema=False)
def demo_page(request: Request) -> Response:
    """Demo GmbH's shop page: the widget embedded with one script tag (C1)."""
    return render(request, "public/demo.html", {"tenant_slug": "demo"})


@router.get("/demo/privacy", include_in_schema=False)
def demo_privacy(request: Request) -> Response:
    return render(request, "public/privacy.html", {})
