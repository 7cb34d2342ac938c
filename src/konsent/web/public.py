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

from konsent.domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from konsent.flows import public_ops, texts
from konsent.flows.inbound import simulator, simulator_phones
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
TEXT_EMPTY = N_("Please type a message.")
TEXT_TOO_LONG = N_("The message is too long (at most {max} characters).")
BAD_PHONE = N_("Please enter a valid phone number, for example +49 1555 1234567.")
NOT_YOUR_PHONE = N_("This number belongs to another simulator phone. Please choose a new number.")

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
    "choose_channel": public_ops.CHOOSE_CHANNEL,
    "tick_topic": texts.TICK_A_TOPIC,
    "error_generic": N_("Something went wrong. Please try again later."),
    "error_network": N_("We could not reach the server. Please check your connection and try again."),
    "no_channels": N_("Sign-up is not available at the moment."),
}

SIM_STRINGS = {
    "sent": N_("sent"),
    "error_generic": N_("Something went wrong. Please try again."),
    "error_network": N_("The server cannot be reached. Retrying…"),
    "empty": N_("No messages yet. Send the prefilled text to confirm your sign-up."),
    "media_image": N_("Image"),
    "media_document": N_("Document"),
    "media_video": N_("Video"),
    "media_audio": N_("Audio"),
    "rate_limited": N_("Too many messages at once. Please wait a moment."),
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
        cfg = await run_in_threadpool(public_ops.widget_config, get_ctx(request), tenant_slug, locale)
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
    parsed = await _json_body(request, OptInIn, locale, {"channel_account_id": public_ops.CHOOSE_CHANNEL})
    if isinstance(parsed, Response):
        return parsed
    locale = pick_locale(parsed.lang or locale)
    if not parsed.topics:
        return _invalid(locale, texts.TICK_A_TOPIC)
    try:
        pending = await run_in_threadpool(
            public_ops.widget_opt_in,
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


# --- the simulator phone ------------------------------------------------------------------------

# The browser's secret: the phones it makes are its own (flows.inbound.simulator_phones).
SIM_COOKIE = "konsent_sim"
MAX_PAGE_KEY = 80


def _sim_closed(request: Request, door: str) -> Response | None:
    """404 while the operator has not enabled the simulator; 429 over the client's rate (S8)."""
    if not get_ctx(request).settings.simulator_enabled:
        return JSONResponse({"code": "not_found", "message": "Not found."}, status_code=404)
    wait = ratelimit.limiter(request).hit(door, ratelimit.client_key(request))
    if wait is not None:
        return JSONResponse(
            {"code": "rate_limited", "message": t(request_locale(request), SIM_STRINGS["rate_limited"])},
            status_code=429,
            headers={"retry-after": str(wait)},
        )
    return None


def _browser(request: Request) -> str:
    return request.cookies.get(SIM_COOKIE, "")[:100]


async def _page(request: Request, key: str) -> simulator_phones.PhonePage:
    if len(key) > MAX_PAGE_KEY:
        raise NotFound()
    return await run_in_threadpool(simulator_phones.open_page, get_ctx(request), key)


@router.get("/simulator", include_in_schema=False)
async def simulator_page(request: Request, account: str = "", text: str = "") -> Response:
    """A phone-like page that plays the contact on the simulator channel (CH1).

    Opened from a sign-up's deep link (`account` is the page key in it) or, for the demo,
    without one; the browser gets its secret cookie here."""
    if not get_ctx(request).settings.simulator_enabled:
        return render(request, "public/simulator_missing.html", {}, status_code=404)
    closed = _sim_closed(request, "simulator-read")
    if closed is not None:
        return closed
    locale = request_locale(request)
    try:
        target = await _page(request, account)
    except NotFound:
        return render(request, "public/simulator_missing.html", {}, status_code=404)
    config = {
        "account": target.key,
        "lang": locale,
        "strings": {key: t(locale, msgid) for key, msgid in SIM_STRINGS.items()},
    }
    resp = render(
        request,
        "public/simulator.html",
        {"target": target, "sim_config": config, "prefill": text[: simulator.MAX_TEXT]},
    )
    if not _browser(request):
        resp.set_cookie(
            SIM_COOKIE,
            simulator_phones.new_browser_secret(),
            max_age=365 * 86400,
            httponly=True,
            samesite="strict",
            secure=get_ctx(request).settings.base_url.startswith("https://"),
            path="/simulator",
        )
    resp.headers["cache-control"] = "no-store"
    return resp


PageKey = Annotated[str, StringConstraints(max_length=MAX_PAGE_KEY)]


class SendIn(BaseModel):
    account: PageKey
    phone: Annotated[str, StringConstraints(max_length=40)]
    text: Annotated[str, StringConstraints(max_length=simulator.MAX_TEXT)] = ""
    name: Short = ""
    lang: Short = ""
    button: Short | None = None


class AckIn(BaseModel):
    account: PageKey
    phone: Annotated[str, StringConstraints(max_length=40)]
    ids: list[Annotated[str, StringConstraints(max_length=200)]] = Field(max_length=200)
    status: Annotated[str, StringConstraints(max_length=20)] = "read"
    lang: Short = ""


def _sim_error(locale: str, exc: DomainError) -> JSONResponse:
    if isinstance(exc, InvalidInput) and "phone" in str(exc):
        return _invalid(locale, BAD_PHONE)
    if isinstance(exc, PermissionDenied):
        return JSONResponse({"code": exc.code, "message": t(locale, NOT_YOUR_PHONE)}, status_code=403)
    return _translated(locale, exc)


@router.post("/simulator/api/send", include_in_schema=False)
async def simulator_send(request: Request) -> Response:
    """The simulated contact sends a message; konsent receives it as a signed webhook (CH1).

    Only as a phone this browser made, or a new number, which then becomes its own (S8)."""
    closed = _sim_closed(request, "simulator")
    if closed is not None:
        return closed
    locale = request_locale(request)
    parsed = await _json_body(request, SendIn, locale, {"text": TEXT_TOO_LONG, "phone": BAD_PHONE})
    if isinstance(parsed, Response):
        return parsed
    locale = pick_locale(parsed.lang or locale)
    if not parsed.text.strip() and not parsed.button:
        return _invalid(locale, TEXT_EMPTY)
    ctx = get_ctx(request)
    try:
        target = await _page(request, parsed.account)
        await run_in_threadpool(
            simulator_phones.claim_phone, ctx, target.account_id, parsed.phone, _browser(request)
        )
        result = await run_in_threadpool(
            simulator.phone_send,
            ctx,
            target.account_id,
            parsed.phone,
            parsed.text,
            name=parsed.name or None,
            locale=locale,
            button=parsed.button,
        )
    except NotFound:
        raise
    except DomainError as exc:
        return _sim_error(locale, exc)
    if result.status != 200:
        return JSONResponse({"code": "rejected", "message": t(locale, SIM_STRINGS["error_generic"])}, 502)
    return JSONResponse({"ok": True})


@router.get("/simulator/api/inbox", include_in_schema=False)
async def simulator_inbox(request: Request, account: str = "", phone: str = "", after: int = 0) -> Response:
    """What konsent sent to this phone, oldest first; nothing for a phone of another browser (CH1, S8)."""
    closed = _sim_closed(request, "simulator-read")
    if closed is not None:
        return closed
    locale = request_locale(request)
    if len(phone) > 40:
        return _invalid(locale, BAD_PHONE)
    ctx = get_ctx(request)
    try:
        target = await _page(request, account)
        mine = await run_in_threadpool(
            simulator_phones.owns_phone, ctx, target.account_id, phone, _browser(request)
        )
        msgs = (
            await run_in_threadpool(simulator.phone_inbox, ctx, target.account_id, phone, max(after, 0))
            if mine
            else []
        )
    except NotFound:
        raise
    except DomainError as exc:
        return _sim_error(locale, exc)
    return JSONResponse(
        {
            "messages": [
                {
                    "id": m.id,
                    "provider_id": m.provider_id,
                    "text": m.text,
                    "buttons": m.buttons,
                    "media": m.media,
                    "at": m.at.astimezone(UTC).isoformat(),
                }
                for m in msgs
            ]
        },
        headers={"cache-control": "no-store"},
    )


@router.post("/simulator/api/ack", include_in_schema=False)
async def simulator_ack(request: Request) -> Response:
    """The phone shows konsent's messages: report them read, so staff see the ticks (CH1, CH4).

    Only messages sent to this browser's own phone are acknowledged."""
    closed = _sim_closed(request, "simulator")
    if closed is not None:
        return closed
    locale = request_locale(request)
    parsed = await _json_body(request, AckIn, locale)
    if isinstance(parsed, Response):
        return parsed
    locale = pick_locale(parsed.lang or locale)
    if parsed.status not in ("delivered", "read"):
        return _translated(locale, InvalidInput(detail="status must be delivered or read"))
    ctx = get_ctx(request)
    try:
        target = await _page(request, parsed.account)
        ids = await run_in_threadpool(
            simulator_phones.own_provider_ids,
            ctx,
            target.account_id,
            parsed.phone,
            _browser(request),
            parsed.ids,
        )
        if ids:
            await run_in_threadpool(simulator.phone_ack, ctx, target.account_id, ids, parsed.status)
    except NotFound:
        raise
    except DomainError as exc:
        return _translated(locale, exc)
    return JSONResponse({"ok": True})
