"""The simulator phone's pages and API: a browser plays a customer's messenger (CH1, U2).

Split from `web.public` (the widget and the demo shop), whose request helpers it uses.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import JSONResponse, Response

from konsent.domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from konsent.flows.inbound import simulator, simulator_phones
from konsent.i18n import pick_locale, t
from konsent.web import ratelimit
from konsent.web.deps import get_ctx, render, request_locale
from konsent.web.public import N_, Short, _invalid, _json_body, _translated

router = APIRouter(tags=["public"])

TEXT_EMPTY = N_("Please type a message.")
TEXT_TOO_LONG = N_("The message is too long (at most {max} characters).")
BAD_PHONE = N_("Please enter a valid phone number, for example +49 1555 1234567.")
NOT_YOUR_PHONE = N_("This number belongs to another simulator phone. Please choose a new number.")

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
                    "link": m.link,
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
