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

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows.context import utcnow
from konsent.flows.inbox import bot, canned, conversation
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


def _filters(request: Request) -> inbox.InboxFilter:
    q = request.query_params
    state = q.get("state", "open")
    return inbox.InboxFilter(
        state=state if state in inbox.STATES else None,
        team_id=opt_int(q.get("team", "")),
        assignee=q.get("assignee") or None,
        channel_account_id=opt_int(q.get("channel", "")),
        label=(q.get("label") or "").strip().lower()[:40] or None,
        q=(q.get("q") or "")[:100],
        snoozed=q.get("snoozed") == "1",
    )


# --- inbox -----------------------------------------------------------------------------------------


@router.get("/inbox")
def inbox_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The conversation list with filters and search (M1)."""
    return _list(request, caller, "admin/inbox/list.html")


@router.get("/inbox/rows")
def inbox_rows(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Only the list's rows, for the live update."""
    return _list(request, caller, "admin/inbox/_rows.html")


def _list(request: Request, caller: Caller, template: str) -> Response:
    caller.require("inbox.use")
    ctx = get_ctx(request)
    f = _filters(request)
    before = request.query_params.get("before")
    try:
        with ctx.db.write() as s:  # a write: the names shown are recorded in the audit log (S4)
            result = inbox.list_conversations(ctx, s, caller, f, before=before)
            inbox.record_list_view(s, caller, result)
            team_list = teams.list_teams(s, caller.tenant_id)
            accounts = channel_accounts(s, caller.tenant_id)
            people = staff_choices(s, caller.tenant_id)
    except DomainError as exc:
        return page(
            request, caller, "admin/inbox/list.html", _empty_list(f, error_text(request, exc)), status_of(exc)
        )
    return page(
        request,
        caller,
        template,
        {
            "result": result,
            "f": f,
            "teams": team_list,
            "accounts": accounts,
            "people": people,
            "error": "",
            "next_href": _next_href(request, result.next_cursor),
        },
    )


def _next_href(request: Request, cursor: str | None) -> str:
    if not cursor:
        return ""
    params = {k: v for k, v in request.query_params.items() if k != "before"}
    params["before"] = cursor
    return "/admin/inbox?" + urlencode(params)


def _empty_list(f: inbox.InboxFilter, error: str) -> dict[str, Any]:
    return {
        "result": inbox.InboxPage([], None, f),
        "f": f,
        "teams": [],
        "accounts": [],
        "people": [],
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
        team_list = teams.list_teams(s, caller.tenant_id)
        people = staff_choices(s, caller.tenant_id)
        picker = []
        if view.templates and not view.window_open:
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
        },
        status_code,
    )


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
    suffix = f"?notice={notice}" if notice else ""
    return RedirectResponse(f"/admin/inbox/{cid}{suffix}", status_code=303)


@router.post("/inbox/{cid}/reply")
def reply(
    cid: str,
    request: Request,
    text: str = Form(""),
    media_url: str = Form(""),
    media_kind: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    conv = int_id(cid)
    return _act(
        request,
        caller,
        conv,
        csrf_token,
        lambda ctx, s: conversation.reply(
            ctx, s, caller, conv, text[:4096], media_url=media_url[:4000], media_kind=media_kind[:20]
        ),
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
    return RedirectResponse(f"/admin/inbox/{conv}?notice=sent", status_code=303)


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
        lambda ctx, s: conversation.set_state(s, caller, conv, state, expected_version=opt_int(version)),
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
