"""The contact's self-service privacy pages: one-time export download, erasure, objection (D1, D2, D4).

A link alone does nothing (#13): the page first sends a code to the contact's messenger
(flows.privacy.proof_code); entering it opens a session of a few minutes in this browser (an
HttpOnly cookie), and only then can the contact download, correct, object or erase. Staff
who see the link in a conversation cannot get the code. Tokens are stored hashed. Unknown
links answer 404, used or expired ones 410, with the same page that says nothing about the
contact.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.flows import widget
from konsent.flows.privacy import contact_locale, proof_code, selfservice
from konsent.flows.privacy import rights as privacy
from konsent.web import ratelimit
from konsent.web.deps import get_ctx, render
from konsent.web.errors import status_of

router = APIRouter(
    prefix="/privacy", include_in_schema=False, dependencies=[Depends(ratelimit.per_client("privacy"))]
)

_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
PROOF_COOKIE = "konsent_privacy"
_GONE = (NotFound, privacy.LinkGone)


def _locale(request: Request) -> str | None:
    """The contact's language for pages behind their link (U2); an explicit ?lang= still wins."""
    if request.query_params.get("lang"):
        return None
    token = request.path_params.get("token", "")
    with get_ctx(request).db.read() as s:
        if request.url.path.startswith("/privacy/export/"):
            return contact_locale.for_export_link(s, token)
        return contact_locale.for_portal_link(s, token)


def _closed(request: Request, exc: DomainError) -> Response:
    return render(
        request,
        "privacy/closed.html",
        {"gone": status_of(exc) == 410},
        status_code=status_of(exc),
        locale=_locale(request),
    )


def _page(
    request: Request, name: str, context: dict, status: int = 200, locale: str | None = None
) -> Response:
    resp = render(request, name, context, status_code=status, locale=locale or _locale(request))
    resp.headers.update(_NO_STORE)
    return resp


def _session(request: Request) -> str:
    return request.cookies.get(PROOF_COOKIE, "")[:100]


def _base(export: bool, token: str) -> str:
    return f"/privacy/export/{token}" if export else f"/privacy/{token}"


async def _show(request: Request, token: str, export: bool, status: int = 200, **extra: str) -> Response:
    """The portal or export page: the code step until this browser has proved it, then the actions."""
    ctx = get_ctx(request)
    try:
        proven = await run_in_threadpool(widget.has_proof, ctx, token, export, _session(request))
    except _GONE as exc:
        return _closed(request, exc)
    context = {"token": token, "proven": proven, "base": _base(export, token), "error": "", "notice": ""}
    context.update(extra)
    return _page(request, "privacy/export.html" if export else "privacy/portal.html", context, status)


async def _send_code(request: Request, token: str, export: bool) -> Response:
    try:
        await run_in_threadpool(widget.send_proof_code, get_ctx(request), token, export)
    except _GONE as exc:
        return _closed(request, exc)
    except proof_code.ProofRefused:
        return await _show(request, token, export, 429, error="too_many_codes")
    except InvalidInput:
        return await _show(request, token, export, 409, error="not_sent")
    return await _show(request, token, export, notice="code_sent")


async def _verify(request: Request, token: str, export: bool, code: str) -> Response:
    try:
        secret = await run_in_threadpool(widget.verify_proof_code, get_ctx(request), token, export, code)
    except _GONE as exc:
        return _closed(request, exc)
    if not secret:
        return await _show(request, token, export, 403, error="wrong_code")
    resp = RedirectResponse(_base(export, token), status_code=303)
    resp.set_cookie(
        PROOF_COOKIE,
        secret,
        max_age=proof_code.SESSION_MINUTES * 60,
        httponly=True,
        samesite="strict",
        secure=get_ctx(request).settings.base_url.startswith("https://"),
        path="/privacy",
    )
    return resp


def _zip(blob: bytes) -> Response:
    """The contact's export as a download that no cache keeps (D1)."""
    return Response(
        blob,
        media_type="application/zip",
        headers={"content-disposition": 'attachment; filename="my-data.zip"', **_NO_STORE},
    )


# --- the export link of a DATEN answer ----------------------------------------------------------


@router.get("/export/{token}")
async def export_page(token: str, request: Request) -> Response:
    """A page with a download button: link previews that fetch the URL must not use it up."""
    return await _show(request, token, export=True)


@router.post("/export/{token}/code")
async def export_code(token: str, request: Request) -> Response:
    return await _send_code(request, token, export=True)


@router.post("/export/{token}/verify")
async def export_verify(token: str, request: Request, code: str = Form("")) -> Response:
    return await _verify(request, token, True, code)


@router.post("/export/{token}")
def export_download(token: str, request: Request) -> Response:
    try:
        with get_ctx(request).db.write() as s:
            blob = selfservice.export_download(get_ctx(request), s, token, _session(request))
    except _GONE as exc:
        return _closed(request, exc)
    except proof_code.ProofRequired:
        return RedirectResponse(f"/privacy/export/{token}", status_code=303)
    return _zip(blob)


# --- the self-service page of an INFO answer --------------------------------------------------------


@router.get("/{token}")
async def portal(token: str, request: Request) -> Response:
    return await _show(request, token, export=False)


@router.post("/{token}/code")
async def portal_code(token: str, request: Request) -> Response:
    return await _send_code(request, token, export=False)


@router.post("/{token}/verify")
async def portal_verify(token: str, request: Request, code: str = Form("")) -> Response:
    return await _verify(request, token, False, code)


def _act(request: Request, token: str, action: str, name: str = "") -> Response:
    """One proven self-service action; without the proof the visitor is sent back to the code step."""
    ctx = get_ctx(request)
    session = _session(request)
    locale = _locale(request)  # known only before an erasure
    try:
        with ctx.db.write() as s:
            if action == "export":
                return _zip(selfservice.portal_export(ctx, s, token, session))
            if action == "object":
                selfservice.portal_object(ctx, s, token, session)
                what = "objected"
            elif action == "rectify":
                selfservice.portal_rectify(ctx, s, token, name, session)
                what = "rectified"
            else:
                selfservice.portal_erase(ctx, s, token, session)
                what = "erased"
    except _GONE as exc:
        return _closed(request, exc)
    except proof_code.ProofRequired:
        return RedirectResponse(f"/privacy/{token}", status_code=303)
    return _page(request, "privacy/done.html", {"what": what}, locale=locale)


@router.post("/{token}/export")
def portal_export(token: str, request: Request) -> Response:
    return _act(request, token, "export")


@router.post("/{token}/object")
def portal_object(token: str, request: Request) -> Response:
    return _act(request, token, "object")


@router.post("/{token}/rectify")
async def portal_rectify(token: str, request: Request, name: str = Form("")) -> Response:
    """The contact corrects their name (D3)."""
    if not name.strip() or len(name) > 200:
        return await _show(request, token, False, 422, error="name")
    return await run_in_threadpool(_act, request, token, "rectify", name)


@router.post("/{token}/erase")
async def portal_erase(token: str, request: Request, confirm: str = Form("")) -> Response:
    """Erasure needs the box ticked on the page (D2); without it nothing happens."""
    if confirm != "yes":
        return await _show(request, token, False, 422, error="confirm")
    return await run_in_threadpool(_act, request, token, "erase")
