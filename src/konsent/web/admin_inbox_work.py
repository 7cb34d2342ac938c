"""The inbox's working tools: the side panel's one Save, the "is replying" note, and agents'
attachments — to staff of the conversation's team, and to the provider by signed link (M1, #17).

Files are sent as downloads (`Content-Disposition: attachment`, a sandboxing CSP, and the
`nosniff` every response carries, web.headers); only raster images whose bytes match their type
may be shown inline in the thread, and active content (HTML, SVG, scripts) is served as
`application/octet-stream` whatever it claims.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain import uploads
from konsent.domain.errors import DomainError, NotFound
from konsent.flows.inbox import attachments, listing, panel, presence
from konsent.web import admin_inbox
from konsent.web.admin_common import admin_caller, error_text
from konsent.web.admin_inbox_setup import int_id, opt_int
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(include_in_schema=False)  # under /admin
public_router = APIRouter(include_in_schema=False)  # the providers' door, at the root

SNOOZE_CHOICES = {"": None, "1": 1, "4": 4, "24": 24, "72": 72}


@router.post("/inbox/{cid}/panel")
def save_panel(
    cid: str,
    request: Request,
    version: str = Form(""),
    state: str = Form(""),
    assignee: str = Form(""),
    team: str = Form(""),
    labels: str = Form(""),
    snooze: str = Form(panel.KEEP),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """The side panel's one Save: state, assignee, team, labels and snooze together (M1)."""
    conv = int_id(cid)
    check_csrf_form(caller, csrf_token)
    caller.require("inbox.use")
    me = caller.user.id if caller.user else None
    state = admin_inbox.STATE_ALIASES.get(state, state)
    change = panel.PanelChange(
        version=opt_int(version),
        state=state,
        assignee_id=me if assignee == "me" else opt_int(assignee),
        team_id=opt_int(team),
        labels=labels[:1000].split(","),
        snooze_hours=SNOOZE_CHOICES.get(snooze, panel.KEEP),
    )
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:
            panel.save_panel(ctx, s, caller, conv, change)
    except NotFound:
        raise
    except DomainError as exc:
        return admin_inbox._conversation(
            request, caller, conv, "admin/inbox/conversation.html", error_text(request, exc), status_of(exc)
        )
    try:  # handed to another team: the agent may not see it any more
        with ctx.db.read() as s:
            listing.get_conversation(s, caller, conv)
    except NotFound:
        return RedirectResponse(admin_inbox._href("/admin/inbox", admin_inbox._list_query(request)), 303)
    return RedirectResponse(admin_inbox._back(request, conv, "saved"), status_code=303)


@router.post("/inbox/{cid}/typing")
def typing(
    cid: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """The reply box is in use: other agents on this conversation see "… is replying" (M1)."""
    conv = int_id(cid)
    check_csrf_form(caller, csrf_token)
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        presence.note_typing(s, caller, conv)
    return Response(status_code=204)


def _file_response(out: attachments.FileOut, inline: bool) -> Response:
    active = uploads.is_active(out.mime, out.filename, out.data[:1024])
    show = inline and out.inline
    disposition = "inline" if show else "attachment"
    ascii_name = out.filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "")
    return Response(
        out.data,
        media_type="application/octet-stream" if active else out.mime,
        headers={
            "content-disposition": (
                f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(out.filename)}"
            ),
            "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": "private, no-store",
            "cross-origin-resource-policy": "same-origin",
        },
    )


@router.get("/inbox/{cid}/files/{file_id}")
def staff_file(
    cid: str, file_id: str, request: Request, inline: str = "", caller: Caller = Depends(admin_caller)
) -> Response:
    """An attachment of a conversation the caller may open; audited (S4). `?inline=1` shows a
    checked raster image in the page; anything else is a download."""
    conv, fid = int_id(cid), int_id(file_id)
    ctx = get_ctx(request)
    with ctx.db.write() as s:  # a write: the access is recorded in the audit log
        out = attachments.open_for_staff(ctx, s, caller, conv, fid)
    return _file_response(out, inline == "1")


@public_router.get("/files/{token}/{name}")
async def provider_file(token: str, name: str, request: Request) -> Response:
    """The file behind a short-lived signed link, for the provider delivering an agent's reply."""
    ctx = get_ctx(request)
    if len(token) > 100:
        raise NotFound()

    def fetch() -> attachments.FileOut:
        with ctx.db.read() as s:
            return attachments.open_by_link(ctx, s, token)

    out = await run_in_threadpool(fetch)
    response = _file_response(out, inline=False)
    response.headers["cache-control"] = "no-store"
    response.headers["cross-origin-resource-policy"] = "cross-origin"
    return response
