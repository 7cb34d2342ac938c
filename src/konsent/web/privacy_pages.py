"""The contact's self-service privacy pages: one-time export download, erasure, objection (D1, D2, D4).

Tokens in the URL are the only credential; they are stored hashed. Unknown links answer 404,
used or expired ones 410, with the same page that says nothing about the contact.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows import privacy, privacy_export
from konsent.flows import privacy_selfservice as selfservice
from konsent.web import ratelimit
from konsent.web.deps import get_ctx, render

router = APIRouter(
    prefix="/privacy", include_in_schema=False, dependencies=[Depends(ratelimit.per_client("privacy"))]
)

_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _closed(request: Request, exc: DomainError) -> Response:
    return render(
        request,
        "privacy/closed.html",
        {"gone": exc.status == 410},
        status_code=exc.status,
    )


def _page(request: Request, name: str, context: dict, status: int = 200) -> Response:
    resp = render(request, name, context, status_code=status)
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
            blob = privacy_export.portal_export(get_ctx(request), s, token)
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
    try:
        with get_ctx(request).db.write() as s:
            selfservice.portal_erase(get_ctx(request), s, token)
    except (NotFound, privacy.LinkGone) as exc:
        return _closed(request, exc)
    return _page(request, "privacy/done.html", {"what": "erased"})
