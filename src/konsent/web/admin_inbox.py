"""Admin pages of the inbox: the list, one conversation and its actions (M1, M2, S4).

Teams, canned replies, bot flows, statistics and TOTP are in `admin_inbox_setup`.

Thin views: check the permission, call one flow function in one transaction, redirect
(post/redirect/get) or re-render with the error a person can act on.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain import interactive, uploads
from konsent.domain.errors import DomainError, NotFound
from konsent.flows.context import utcnow
from konsent.flows.inbox import attachments, bot, canned, conversation
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import teams
from konsent.flows.organisation.tenants import channel_accounts
from konsent.flows.outbound import templates
from konsent.web import admin_inbox_setup, admin_templates, sse
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.admin_inbox_setup import int_id, opt_int, staff_choices
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(include_in_schema=False)
router.include_router(sse.router)
router.include_router(admin_inbox_setup.router)
router.include_router(admin_templates.router)

add_nav("/admin/inbox", "Inbox", "inbox.use", 15)


STATE_ALIASES = {"resolved": "closed"}  # what a team lead calls it; stored as "closed"


def _filters(request: Request) -> inbox.InboxFilter:
    """The list's filters from the query string: combinable, e.g. `?assignee=me&state=pending&label=vip`."""
    q = request.query_params
    state = q.get("state", "open")
    state = STATE_ALIASES.get(state, state)
    team = q.get("team", "")
    return inbox.InboxFilter(
        state=state if state in inbox.STATES else None,
        team_id=opt_int(team),
        my_teams=team == "mine",
        assignee=q.get("assignee") or None,
        channel_account_id=opt_int(q.get("channel", "")),
        label=(q.get("label") or "").strip().lower()[:40] or None,
        q=(q.get("q") or "")[:100],
        snoozed=q.get("snoozed") == "1",
    )


def _list_query(request: Request) -> dict[str, str]:
    """The list's own query parameters (no paging), carried from the list into a conversation and back."""
    keep = ("state", "team", "assignee", "channel", "label", "q", "snoozed")
    return {k: v[:100] for k, v in request.query_params.items() if k in keep and v}


def _href(base: str, params: dict[str, str], **changes: str) -> str:
    merged = {**params, **changes}
    merged = {k: v for k, v in merged.items() if v}
    return base + ("?" + urlencode(merged) if merged else "")


# --- inbox -----------------------------------------------------------------------------------------


@router.get("/inbox")
def inbox_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The conversation list with filters and search (M1)."""
    return _list(request, caller, "admin/inbox/list.html")


@router.get("/inbox/rows")
def inbox_rows(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Only the list's rows, for the live update."""
    return _list(request, caller, "admin/inbox/_rows.html")


def _list_context(request: Request, caller: Caller, s: Any, current: int | None = None) -> dict[str, Any]:
    """The list column's data (rows, filters, choices); the names shown are recorded (S4)."""
    ctx = get_ctx(request)
    f = _filters(request)
    result = inbox.list_conversations(ctx, s, caller, f, before=request.query_params.get("before"))
    inbox.record_list_view(s, caller, result)
    params = _list_query(request)
    return {
        "result": result,
        "f": f,
        "teams": teams.list_teams(s, caller.tenant_id),
        "accounts": channel_accounts(s, caller.tenant_id),
        "people": staff_choices(s, caller.tenant_id),
        "labels_in_use": inbox.label_names(s, caller.tenant_id),
        "list_params": params,
        "list_qs": urlencode(params),
        "href": lambda **changes: _href("/admin/inbox", params, **changes),
        "current_id": current,
        "next_href": _next_href(request, result.next_cursor),
    }


def _list(request: Request, caller: Caller, template: str) -> Response:
    caller.require("inbox.use")
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:  # a write: the names shown are recorded in the audit log (S4)
            data = _list_context(request, caller, s, opt_int(request.query_params.get("current", "")))
    except DomainError as exc:
        empty = _empty_list(request, error_text(request, exc))
        return page(request, caller, "admin/inbox/list.html", empty, status_of(exc))
    return page(request, caller, template, {**data, "error": ""})


def _next_href(request: Request, cursor: str | None) -> str:
    if not cursor:
        return ""
    params = {k: v for k, v in request.query_params.items() if k != "before"}
    params["before"] = cursor
    return "/admin/inbox?" + urlencode(params)


def _empty_list(request: Request, error: str) -> dict[str, Any]:
    f = inbox.InboxFilter()
    return {
        "result": inbox.InboxPage([], None, f),
        "f": f,
        "teams": [],
        "accounts": [],
        "people": [],
        "labels_in_use": [],
        "list_params": {},
        "list_qs": "",
        "href": lambda **changes: _href("/admin/inbox", {}, **changes),
        "current_id": None,
        "next_href": "",
        "error": error,
    }


def _conversation(
    request: Request,
    caller: Caller,
    cid: int,
    template: str,
    error: str = "",
    status_code: int = 200,
    chosen_id: int | None = None,
    values: list[str] | None = None,
) -> Response:
    caller.require("inbox.use")
    ctx = get_ctx(request)
    if chosen_id is None:
        chosen_id = opt_int(request.query_params.get("template", ""))
    with ctx.db.write() as s:  # a write: opening a conversation is recorded in the audit log (S4)
        view = conversation.view_conversation(ctx, s, caller, cid)
        replies = canned.canned_for(ctx, s, caller, cid)
        listing: dict[str, Any] = {}
        if template == "admin/inbox/conversation.html":
            try:
                listing = _list_context(request, caller, s, cid)
            except DomainError:
                listing = _empty_list(request, "")
        team_list = teams.list_teams(s, caller.tenant_id)
        people = staff_choices(s, caller.tenant_id)
        picker = []
        if view.composer and view.composer.can_template:
            agent_locale = caller.user.locale if caller.user else ""
            picker = templates.approved_for(
                s, caller.tenant_id, view.conversation.channel_account_id, [agent_locale, view.locale]
            )
    chosen = next((t for t in picker if t.id == chosen_id), None)
    return page(
        request,
        caller,
        template,
        {
            **listing,
            "v": view,
            "canned": replies,
            "teams": team_list,
            "people": people,
            "picker": picker,
            "picker_json": _picker_json(picker),
            "chosen": chosen,
            "values": values or [],
            "error": error,
            "notice": request.query_params.get("notice", ""),
            "staff_json": _staff_json(people),
            "upload_accept": ",".join(
                sorted(
                    t
                    for t in uploads.allowed_types(ctx.settings.upload_mime_types)
                    if uploads.media_kind(t) in view.media_kinds  # e.g. Instagram takes no documents
                )
            ),
            "upload_max_mb": max(1, round(ctx.settings.upload_max_bytes / 1_000_000)),
        },
        status_code,
    )


def _staff_json(people: list[Any]) -> str:
    """Staff ids and names for the "is replying" notice, safe inside a <script> element."""
    text = json.dumps({str(p.id): p.name or p.email for p in people}, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _picker_json(picker: list[Any]) -> str:
    """The approved templates for the picker's script, safe inside a <script> element."""
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "language": t.language,
            "body": t.body,
            "header": t.header,
            "buttons": list(t.buttons or []),
            "variables": t.variables,
        }
        for t in picker
    ]
    text = json.dumps(rows, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/inbox/{cid}")
def conversation_page(cid: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """One conversation: history with ticks, composer, notes, assignment, contact panel (M1)."""
    return _conversation(request, caller, int_id(cid), "admin/inbox/conversation.html")


@router.get("/inbox/{cid}/thread")
def conversation_thread(cid: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Only the message history, for the live update."""
    return _conversation(request, caller, int_id(cid), "admin/inbox/_thread.html")


def _act(request: Request, caller: Caller, cid: int, csrf: str, action: Any, notice: str = "") -> Response:
    check_csrf_form(caller, csrf)
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:
            action(ctx, s)
    except NotFound:
        raise
    except DomainError as exc:
        return _conversation(
            request, caller, cid, "admin/inbox/conversation.html", error_text(request, exc), status_of(exc)
        )
    return RedirectResponse(_back(request, cid, notice), status_code=303)


def _back(request: Request, cid: int, notice: str = "") -> str:
    """The conversation again, with the list's filters kept (post/redirect/get)."""
    return _href(f"/admin/inbox/{cid}", _list_query(request), notice=notice)


@router.post("/inbox/{cid}/reply")
async def reply(
    cid: str,
    request: Request,
    text: str = Form(""),
    media_url: str = Form(""),
    media_kind: str = Form(""),
    csrf_token: str = Form(""),
    file: UploadFile | None = File(None),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """The composer: text, optionally a file (sealed, sent through the channel's media path) (M1)."""
    conv = int_id(cid)
    text = text[:4096]
    upload = None
    if file is not None and file.filename:
        limit = get_ctx(request).settings.upload_max_bytes
        data = await file.read(limit + 1)  # one byte more than allowed is enough to refuse it
        upload = attachments.Upload(file.filename[:255], file.content_type or "", data)

    def send(ctx: Any, s: Any) -> None:
        if upload is not None:
            attachments.reply_with_file(ctx, s, caller, conv, text, upload)
        else:
            conversation.reply(
                ctx, s, caller, conv, text, media_url=media_url[:4000], media_kind=media_kind[:20]
            )

    return await run_in_threadpool(_act, request, caller, conv, csrf_token, send, "sent")


@router.post("/inbox/{cid}/reply-interactive")
def reply_interactive(
    cid: str,
    request: Request,
    text: str = Form(""),
    kind: str = Form(""),
    button_title: list[str] = Form([]),
    row_title: list[str] = Form([]),
    row_description: list[str] = Form([]),
    list_button: str = Form(""),
    link_title: str = Form(""),
    link_url: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """A reply with reply buttons, a list or a link button (inbox/_composer_interactive.html; CH5)."""
    conv = int_id(cid)
    titles = row_title if kind == "list" else button_title
    choices = interactive.from_form(
        kind if kind in interactive.KINDS else "",
        [t[:100] for t in titles[:20]],
        [d[:200] for d in row_description[:20]],
        list_button[:100],
        link_title[:100],
        link_url[:4000],
    )
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.reply(ctx, s, caller, conv, text[:4096], choices=choices),
        "sent",
    )


@router.post("/inbox/{cid}/template")
def reply_template(
    cid: str,
    request: Request,
    template_id: str = Form(""),
    var: list[str] = Form([]),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Outside the 24-hour window: send a registered, approved template with its variables (M1)."""
    conv = int_id(cid)
    tid = opt_int(template_id)
    values = [v[:1000] for v in var[:20]]

    check_csrf_form(caller, csrf_token)
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:
            conversation.reply_registered_template(ctx, s, caller, conv, tid or 0, values)
    except NotFound:
        raise
    except DomainError as exc:
        return _conversation(
            request, caller, conv, "admin/inbox/conversation.html", error_text(request, exc), status_of(exc),
            chosen_id=tid, values=values,
        )  # fmt: skip
    return RedirectResponse(_back(request, conv, "sent"), status_code=303)


@router.post("/inbox/{cid}/assign")
def assign(
    cid: str,
    request: Request,
    assignee: str = Form(""),
    team: str = Form(""),
    version: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    caller.require("inbox.use")
    me = caller.user.id if caller.user else None
    assignee_id = me if assignee == "me" else opt_int(assignee)
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.assign(
            s,
            caller,
            conv,
            assignee_id=assignee_id,
            team_id=opt_int(team),
            expected_version=opt_int(version),
        ),
        "assigned",
    )


@router.post("/inbox/{cid}/state")
def set_state(
    cid: str,
    request: Request,
    state: str = Form(""),
    version: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.set_state(
            s, caller, conv, state, expected_version=opt_int(version), ctx=ctx
        ),
        "state",
    )


@router.post("/inbox/{cid}/snooze")
def snooze(
    cid: str,
    request: Request,
    hours: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    n = opt_int(hours)
    until = utcnow() + timedelta(hours=n) if n else None
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.snooze(s, caller, conv, until),
        "snoozed",
    )


@router.post("/inbox/{cid}/note")
def note(
    cid: str,
    request: Request,
    text: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.add_note(ctx, s, caller, conv, text[:4000]),
        "note",
    )


@router.post("/inbox/{cid}/labels")
def labels(
    cid: str,
    request: Request,
    labels: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    names = [x for x in labels[:1000].split(",")]
    return _act(
        request, caller, conv, csrf_token, lambda ctx, s: conversation.set_labels(s, caller, conv, names)
    )


@router.post("/inbox/{cid}/withdraw-data")
def withdraw_data(
    cid: str,
    request: Request,
    purpose: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """The contact withdrew a data consent (e.g. by writing so): record it and delete the fields (C4)."""
    conv = int_id(cid)
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.withdraw_data_consent(s, caller, conv, purpose[:80]),
        "withdrawn",
    )


@router.post("/inbox/{cid}/takeover")
def takeover(
    cid: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """Stop the bot in this conversation: a person answers from now on (M2)."""
    conv = int_id(cid)
    return _act(request, caller, conv, csrf_token, lambda ctx, s: bot.stop_bot(s, caller, conv), "takeover")
