"""Admin pages around the inbox: teams, canned replies, bot flows, statistics, TOTP (M2, S3, S5, U3)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows.context import utcnow
from konsent.flows.inbox import bot, bot_flows, canned, csat, disclosure, stats
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import staff, staff_admin, teams, totp
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(include_in_schema=False)

add_nav("/admin/stats", "Statistics", "stats.view", 60)
add_nav("/admin/teams", "Teams", "teams.manage", 62)
add_nav("/admin/canned", "Canned replies", "canned.manage", 64)
add_nav("/admin/bot", "Chatbot", "bot.manage", 66)


def int_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def opt_int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


staff_choices = staff.assignable


# --- teams -----------------------------------------------------------------------------------------


@router.get("/teams")
def team_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("teams.manage")
    return _teams(request, caller)


def _teams(request: Request, caller: Caller, error: str = "", status_code: int = 200) -> Response:
    with get_ctx(request).db.read() as s:
        rows = [(t, teams.members(s, caller.tenant_id, t.id)) for t in teams.list_teams(s, caller.tenant_id)]
        people = staff_choices(s, caller.tenant_id)
        unrouted = inbox.agents_see_unrouted(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/inbox/teams.html",
        {"rows": rows, "people": people, "error": error, "unrouted": unrouted},
        status_code,
    )


@router.post("/teams/unrouted")
def team_unrouted(
    request: Request, on: str = Form(""), csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """Agents see conversations no team has yet, or only their teams' (S3)."""
    check_csrf_form(caller, csrf_token)
    with get_ctx(request).db.write() as s:
        inbox.set_agents_see_unrouted(s, caller, on == "1")
    return RedirectResponse("/admin/teams", status_code=303)


@router.post("/teams")
def team_create(
    request: Request,
    slug: str = Form(""),
    name: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("teams.manage")
    check_csrf_form(caller, csrf_token)
    try:
        with get_ctx(request).db.write() as s:
            teams.create_team(s, caller.tenant_id, slug[:63], name[:200], caller.actor)
    except DomainError as exc:
        return _teams(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/teams", status_code=303)


@router.post("/teams/{tid}/members")
def team_member(
    tid: str,
    request: Request,
    user_id: str = Form(""),
    action: str = Form("add"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("teams.manage")
    check_csrf_form(caller, csrf_token)
    team_id, uid = int_id(tid), opt_int(user_id)
    if uid is None:
        return _teams(request, caller, error_text(request, NotFound()), 404)
    with get_ctx(request).db.write() as s:
        if action == "remove":
            teams.remove_member(s, caller.tenant_id, team_id, uid, caller.actor)
        else:
            teams.add_member(s, caller.tenant_id, team_id, uid, caller.actor)
    return RedirectResponse("/admin/teams", status_code=303)


# --- canned replies --------------------------------------------------------------------------------


@router.get("/canned")
def canned_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("canned.manage")
    return _canned(request, caller)


def _canned(request: Request, caller: Caller, error: str = "", status_code: int = 200) -> Response:
    with get_ctx(request).db.read() as s:
        rows = canned.canned_replies(s, caller.tenant_id)
    return page(request, caller, "admin/inbox/canned.html", {"rows": rows, "error": error}, status_code)


@router.post("/canned")
def canned_save(
    request: Request,
    shortcut: str = Form(""),
    title: str = Form(""),
    body: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("canned.manage")
    check_csrf_form(caller, csrf_token)
    try:
        with get_ctx(request).db.write() as s:
            canned.save_canned_reply(s, caller, shortcut[:40], title[:200], body[:4096])
    except DomainError as exc:
        return _canned(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/canned", status_code=303)


@router.post("/canned/{rid}/delete")
def canned_delete(
    rid: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    caller.require("canned.manage")
    check_csrf_form(caller, csrf_token)
    with get_ctx(request).db.write() as s:
        canned.delete_canned_reply(s, caller, int_id(rid))
    return RedirectResponse("/admin/canned", status_code=303)


# --- bot flows -------------------------------------------------------------------------------------


@router.get("/bot")
def bot_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("bot.manage")
    return _bot(request, caller)


def _bot(
    request: Request,
    caller: Caller,
    error: str = "",
    status_code: int = 200,
    draft: str = "",
    fmt: str = "yaml",
) -> Response:
    with get_ctx(request).db.read() as s:
        rows = bot_flows.list_flows(s, caller.tenant_id)
        told = disclosure.for_tenant(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/inbox/bot.html",
        {
            "rows": rows,
            "error": error,
            "draft": draft,
            "fmt": fmt,
            "example": bot_flows.dump_definition(bot.DEMO_FLOW),
            "disclosure": told,
        },
        status_code,
    )


@router.post("/bot")
def bot_import(
    request: Request,
    definition: str = Form(""),
    fmt: str = Form("yaml"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Create a flow from YAML or JSON text (M2)."""
    caller.require("bot.manage")
    check_csrf_form(caller, csrf_token)
    fmt = "json" if fmt == "json" else "yaml"
    try:
        data = bot_flows.load_definition(definition, fmt)
        with get_ctx(request).db.write() as s:
            row = bot_flows.save_flow(s, caller.tenant_id, caller.actor, data)
    except DomainError as exc:
        return _bot(request, caller, error_text(request, exc), status_of(exc), definition[:200_000], fmt)
    return RedirectResponse(f"/admin/bot/{row.id}", status_code=303)


@router.post("/bot/disclosure")
def bot_disclosure(
    request: Request,
    enabled: str = Form(""),
    text_de: str = Form(""),
    text_en: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """The bot says it is automated: on or off, and the tenant's own words (EU AI Act Art. 50)."""
    caller.require("bot.manage")
    check_csrf_form(caller, csrf_token)
    try:
        with get_ctx(request).db.write() as s:
            disclosure.save(s, caller, enabled == "on", {"de": text_de, "en": text_en})
    except DomainError as exc:
        return _bot(request, caller, error_text(request, exc), 422)
    return RedirectResponse("/admin/bot", status_code=303)


@router.get("/bot/{fid}")
def bot_edit(fid: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("bot.manage")
    with get_ctx(request).db.read() as s:
        row = bot_flows.get_flow(s, caller.tenant_id, int_id(fid))
        text = bot_flows.dump_definition(row.definition)
    return page(request, caller, "admin/inbox/bot_edit.html", {"row": row, "text": text, "error": ""})


@router.post("/bot/{fid}")
def bot_save(
    fid: str,
    request: Request,
    definition: str = Form(""),
    active: str = Form(""),
    priority: str = Form("100"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("bot.manage")
    check_csrf_form(caller, csrf_token)
    flow_id = int_id(fid)
    ctx = get_ctx(request)
    try:
        data = bot_flows.load_definition(definition, "yaml")  # JSON is valid YAML too
        with ctx.db.write() as s:
            bot_flows.save_flow(
                s, caller.tenant_id, caller.actor, data, flow_id=flow_id, active=active == "1",
                priority=min(opt_int(priority) or 100, 10_000),
            )  # fmt: skip
    except DomainError as exc:
        with ctx.db.read() as s:
            row = bot_flows.get_flow(s, caller.tenant_id, flow_id)
        return page(
            request,
            caller,
            "admin/inbox/bot_edit.html",
            {"row": row, "text": definition[:200_000], "error": error_text(request, exc)},
            status_of(exc),
        )
    return RedirectResponse(f"/admin/bot/{flow_id}?notice=saved", status_code=303)


@router.get("/bot/{fid}/export")
def bot_export(fid: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Download a flow as YAML (default) or JSON (M2)."""
    caller.require("bot.manage")
    fmt = "json" if request.query_params.get("format") == "json" else "yaml"
    with get_ctx(request).db.read() as s:
        row = bot_flows.get_flow(s, caller.tenant_id, int_id(fid))
        body = bot_flows.dump_definition(row.definition, fmt)
    media = "application/json" if fmt == "json" else "application/yaml"
    return Response(
        body,
        media_type=f"{media}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="flow-{row.id}.{fmt}"'},
    )


# --- statistics ------------------------------------------------------------------------------------


@router.get("/stats")
def stats_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Charts: conversations per day, first response per team, bot containment (U3, S5)."""
    caller.require("stats.view")
    raw = request.query_params.get("days", "30")
    days = int(raw) if raw.isdigit() and 0 < int(raw) <= 366 else 30
    with get_ctx(request).db.write() as s:  # a write: looking at statistics is audited (S5)
        report = stats.inbox_stats(s, caller, days)
        satisfaction = csat.results(s, caller, utcnow() - timedelta(days=days))
        csat_cfg = csat.settings_for(s, caller.tenant_id)
    peak = max((n for _, n in report.days), default=0) or 1
    slowest = max((r.median_minutes or 0 for r in report.first_response), default=0) or 1
    return page(
        request,
        caller,
        "admin/inbox/stats.html",
        {
            "r": report, "peak": peak, "slowest": slowest, "days": days,
            "csat": satisfaction, "csat_cfg": csat_cfg,
        },
    )  # fmt: skip


@router.post("/stats/csat")
def csat_settings(
    request: Request,
    enabled: str = Form(""),
    question_de: str = Form(""),
    question_en: str = Form(""),
    template: str = Form(""),
    template_language: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Ask for a rating after a conversation is resolved: on or off, wording, template (M1)."""
    caller.require("settings.manage")
    check_csrf_form(caller, csrf_token)
    value = csat.Settings(
        enabled == "on", {"de": question_de, "en": question_en}, template[:512], template_language[:16]
    )
    try:
        with get_ctx(request).db.write() as s:
            csat.save_settings(s, caller, value)
    except DomainError as exc:
        return RedirectResponse(f"/admin/stats?error={exc.code}", status_code=303)
    return RedirectResponse("/admin/stats", status_code=303)


@router.post("/stats/works-council")
def works_council(
    request: Request, on: str = Form(""), csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """Switch works-council mode (S5)."""
    check_csrf_form(caller, csrf_token)
    with get_ctx(request).db.write() as s:
        stats.set_works_council(s, caller, on == "1")
    return RedirectResponse("/admin/stats", status_code=303)


# --- TOTP second factor ----------------------------------------------------------------------------


@router.get("/security/totp")
def totp_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Enrol an authenticator app as a second factor (S3)."""
    return _totp(request, caller)


def _totp(request: Request, caller: Caller, error: str = "", status_code: int = 200) -> Response:
    assert caller.user is not None
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        state = totp.enrolment(ctx, s, caller.user)
        required = staff_admin.must_set_up_2fa(s, caller.user)
    return page(
        request,
        caller,
        "admin/inbox/totp.html",
        {"t": state, "error": error, "required": required},
        status_code,
    )


@router.post("/security/totp")
def totp_confirm(
    request: Request,
    code: str = Form(""),
    action: str = Form("confirm"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    assert caller.user is not None
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:
            if action == "disable":
                totp.disable(ctx, s, caller.user, code[:12], caller.actor)
            else:
                totp.confirm(ctx, s, caller.user, code[:12], caller.actor)
    except DomainError as exc:
        return _totp(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/security/totp", status_code=303)
