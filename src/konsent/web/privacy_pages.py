"""The contact's self-service privacy pages: one-time export download, erasure, objection (D1, D2, D4).

Tokens in the URL are the only credential; they are stored hashed. Unknown links answer 404,
used or expired ones 410, with the same page that says nothing about the contact.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows.privacy import contact_locale, selfservice
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy import rights as privacy
from konsent.web.deps import get_ctx, render
from konsent.web.errors import status_of

router = APIRouter(prefix="/privacy", include_in_schema=False)

_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


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


@router.get("/export/{token}")
def export_page(token: str, request: Request) -> Response:
    """A page with a download button: link previews that fetch the URL must not use it up."""
    try:
        with get_ctx(request).db.read() as s:
            row = privacy_export.check_export_link(s, token)
            expires = row.expires_at
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/export.html", {"token": token, "expires_at": expires})


def _zip(blob: bytes) -> Response:
    """The contact's export as a download that no cache keeps (D1)."""
    return Response(
        blob,
        media_type="application/zip",
        headers={"content-disposition": 'attachment; filename="my-data.zip"', **_NO_STORE},
    )


@router.post("/export/{token}")
def export_download(token: str, request: Request) -> Response:
    try:
        with get_ctx(request).db.write() as s:
            blob = privacy_export.download_export(get_ctx(request), s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _zip(blob)


@router.get("/{token}")
def portal(token: str, request: Request) -> Response:
    try:
        with get_ctx(request).db.read() as s:
            selfservice.portal_contact(s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/portal.html", {"token": token, "error": ""})


@router.post("/{token}/export")
def portal_export(token: str, request: Request) -> Response:
    try:
        with get_ctx(request).db.write() as s:
            blob = selfservice.portal_export(get_ctx(request), s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _zip(blob)


@router.post("/{token}/object")
def portal_object(token: str, request: Request) -> Response:
    try:
        with get_ctx(request).db.write() as s:
            selfservice.portal_object(get_ctx(request), s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/done.html", {"what": "objected"})


@router.post("/{token}/rectify")
def portal_rectify(token: str, request: Request, name: str = Form("")) -> Response:
    """The contact corrects their name (D3)."""
    if not name.strip() or len(name) > 200:
        try:
            with get_ctx(request).db.read() as s:
                selfservice.portal_contact(s, token)
        except (NotFound, privacy.LinkGone) as exc:
            return _closed(request, exc)
        return _page(request, "privacy/portal.html", {"token": token, "error": "name"}, status=422)
    try:
        with get_ctx(request).db.write() as s:
            selfservice.portal_rectify(get_ctx(request), s, token, name)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/done.html", {"what": "rectified"})


@router.post("/{token}/erase")
def portal_erase(token: str, request: Request, confirm: str = Form("")) -> Response:
    """Erasure needs the box ticked on the page (D2); without it nothing happens."""
    if confirm != "yes":
        try:
            with get_ctx(request).db.read() as s:
                selfservice.portal_contact(s, token)
        except (NotFound, privacy.LinkGone) as exc:
            return _closed(request, exc)
        return _page(request, "privacy/portal.html", {"token": token, "error": "confirm"}, status=422)
    locale = _locale(request)  # known only before the erasure
    try:
        with get_ctx(request).db.write() as s:
            selfservice.portal_erase(get_ctx(request), s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/done.html", {"what": "erased"}, locale=locale)
