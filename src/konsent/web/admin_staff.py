"""Admin pages for people and access: staff, invitations, API tokens, own settings (S3, U5).

The one-time links and new tokens are shown once on the page that made them; with SMTP
configured, the link is also e-mailed to the invited person (in a worker thread).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows.organisation import api_tokens, localtime, mailer, staff_admin
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, gettext_for, render, request_locale
from konsent.web.errors import status_of

router = APIRouter()
add_nav("/admin/staff", "Staff", "settings.manage", 70)
add_nav("/admin/tokens", "API tokens", "settings.manage", 72)

_ACTIONS = ("role", "deactivate", "reactivate", "reset-password", "reset-2fa")


async def _form(request: Request, caller: Caller) -> dict[str, str]:
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    return {k: v[:2000] for k, v in form.items() if isinstance(v, str)}


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def _link_url(request: Request, token: str) -> str:
    return f"{get_ctx(request).settings.base_url.rstrip('/')}/admin/invite/{token}"


# ---------------------------------------------------------------- staff


def _staff_page(
    request: Request,
    caller: Caller,
    *,
    error: str = "",
    status_code: int = 200,
    link: dict[str, object] | None = None,
) -> Response:
    caller.require("settings.manage")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        people = staff_admin.members(s, caller.tenant_id)
        required = staff_admin.required_roles(s, caller.tenant_id)
        zone = localtime.tenant_zone_of(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/staff.html",
        {
            "people": people,
            "roles": staff_admin.ROLES,
            "required": required,
            "tenant_zone": zone,
            "zones": localtime.zone_names(),
            "error": error,
            "link": link,
            "smtp": mailer.configured(ctx.settings),
        },
        status_code,
    )


@router.get("/staff")
def staff_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _staff_page(request, caller)


@router.post("/staff/invite")
async def staff_invite(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Invite a member by a one-time link; shown once, e-mailed when SMTP is set up (S3)."""
    form = await _form(request, caller)
    caller.require("settings.manage")
    ctx = get_ctx(request)

    def run() -> staff_admin.Link:
        with ctx.db.write() as s:
            return staff_admin.invite(
                s,
                caller.tenant_id,
                caller.actor,
                caller.role,
                form.get("email", "")[:254],
                form.get("role", ""),
                name=form.get("name", ""),
                locale=request_locale(request),
            )

    try:
        link = await run_in_threadpool(run)
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: _staff_page(request, caller, error=message, status_code=status)
        )
    return await _show_link(request, caller, link)


async def _show_link(request: Request, caller: Caller, link: staff_admin.Link) -> Response:
    ctx = get_ctx(request)
    url = _link_url(request, link.token)
    mailed = False
    if mailer.configured(ctx.settings):
        _ = gettext_for(request_locale(request))
        subject = (
            _("Your access to konsent")
            if link.purpose == staff_admin.INVITE
            else _("Choose a new konsent password")
        )
        body = _(
            "Open this link within 72 hours to choose your password. It works once.\n\n{url}\n",
            url=url,
        )
        mailed = await mailer.send_async(ctx.settings, link.email, subject, body)
    shown = {"url": url, "email": link.email, "purpose": link.purpose, "mailed": mailed}
    return await run_in_threadpool(lambda: _staff_page(request, caller, link=shown))


@router.post("/staff/{user_id}/{action}")
async def staff_action(
    user_id: str, action: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Change a role, deactivate or reactivate, reset password or second factor (S3)."""
    form = await _form(request, caller)
    caller.require("settings.manage")
    if action not in _ACTIONS:
        raise NotFound()
    uid = _id(user_id)
    ctx = get_ctx(request)

    def run() -> staff_admin.Link | None:
        with ctx.db.write() as s:
            args = (s, caller.tenant_id, caller.actor, caller.role, uid)
            if action == "role":
                staff_admin.set_role(*args, form.get("role", ""))
            elif action == "deactivate":
                staff_admin.deactivate(*args)
            elif action == "reactivate":
                staff_admin.reactivate(*args)
            elif action == "reset-2fa":
                staff_admin.reset_second_factor(*args)
            else:
                return staff_admin.reset_password(*args)
            return None

    try:
        link = await run_in_threadpool(run)
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: _staff_page(request, caller, error=message, status_code=status)
        )
    if link is not None:
        return await _show_link(request, caller, link)
    return RedirectResponse("/admin/staff", status_code=303)


@router.post("/staff-settings")
async def staff_settings(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The organisation's time zone and the roles that must use a second factor (S3, U5)."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    roles = [str(r) for r in form.getlist("require_2fa")][:10]
    zone = str(form.get("time_zone") or "")[:64]
    ctx = get_ctx(request)

    def run() -> None:
        with ctx.db.write() as s:
            localtime.set_tenant_zone(s, caller.tenant_id, caller.actor, zone)
            staff_admin.set_roles_requiring_2fa(s, caller.tenant_id, caller.actor, roles)

    try:
        await run_in_threadpool(run)
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: _staff_page(request, caller, error=message, status_code=status)
        )
    return RedirectResponse("/admin/staff", status_code=303)


# ---------------------------------------------------------------- one-time links (no session)


@router.get("/invite/{token}")
def invite_form(token: str, request: Request) -> Response:
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        target = staff_admin.open_link(s, token[:100])
    return render(request, "admin/invite.html", {"target": target, "token": token, "error": "", "me": None})


@router.post("/invite/{token}")
async def invite_use(token: str, request: Request) -> Response:
    """Choose a password through the link; then sign in as usual (with 2FA where required)."""
    form = await request.form()
    password = str(form.get("new") or "")[:1024]
    repeat = str(form.get("repeat") or "")[:1024]
    ctx = get_ctx(request)

    def run() -> str:
        with ctx.db.write() as s:
            target = staff_admin.open_link(s, token[:100])
            staff_admin.use_link(s, token[:100], password, repeat)
            return target.tenant_slug

    try:
        slug = await run_in_threadpool(run)
    except NotFound:
        raise
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        with ctx.db.read() as s:
            target = staff_admin.open_link(s, token[:100])
        return render(
            request,
            "admin/invite.html",
            {"target": target, "token": token, "error": message, "me": None},
            status,
        )
    return RedirectResponse(f"/admin/login?tenant={slug}", status_code=303)


# ---------------------------------------------------------------- API tokens


def _tokens_page(
    request: Request, caller: Caller, *, error: str = "", status_code: int = 200, new_token: str = ""
) -> Response:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        rows = api_tokens.listing(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/tokens.html",
        {"tokens": rows, "roles": staff_admin.ROLES, "error": error, "new_token": new_token},
        status_code,
    )


@router.get("/tokens")
def tokens_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _tokens_page(request, caller)


@router.post("/tokens")
async def token_create(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """A new token with a role and an expiry; its value is shown once (S3, M4)."""
    form = await _form(request, caller)
    caller.require("settings.manage")
    raw_days = form.get("expires_days", "").strip()
    ctx = get_ctx(request)

    def run() -> str:
        days = int(raw_days) if raw_days.isdigit() and len(raw_days) < 6 else (None if not raw_days else -1)
        with ctx.db.write() as s:
            return api_tokens.create(
                s,
                caller.tenant_id,
                caller.actor,
                caller.role,
                form.get("name", ""),
                form.get("role", ""),
                days,
            )

    try:
        token = await run_in_threadpool(run)
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: _tokens_page(request, caller, error=message, status_code=status)
        )
    return await run_in_threadpool(lambda: _tokens_page(request, caller, new_token=token))


@router.post("/tokens/{token_id}/revoke")
async def token_revoke(token_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    await _form(request, caller)
    caller.require("settings.manage")
    tid = _id(token_id)
    ctx = get_ctx(request)

    def run() -> None:
        with ctx.db.write() as s:
            api_tokens.revoke(s, caller.tenant_id, caller.actor, tid)

    await run_in_threadpool(run)
    return RedirectResponse("/admin/tokens", status_code=303)


# ---------------------------------------------------------------- own settings


@router.get("/me")
def me_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _me(request, caller)


def _me(request: Request, caller: Caller, error: str = "", status_code: int = 200) -> Response:
    with get_ctx(request).db.read() as s:
        tenant_zone = localtime.tenant_zone_of(s, caller.tenant_id)
    own = caller.user.time_zone if caller.user is not None else None
    return page(
        request,
        caller,
        "admin/me.html",
        {"own_zone": own or "", "tenant_zone": tenant_zone, "zones": localtime.zone_names(), "error": error},
        status_code,
    )


@router.post("/me")
async def me_save(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """A staff member's own time zone; empty follows the organisation's (U5)."""
    form = await _form(request, caller)
    if caller.user is None:
        raise NotFound()
    uid = caller.user.id
    ctx = get_ctx(request)

    def run() -> None:
        with ctx.db.write() as s:
            localtime.set_staff_zone(s, caller.tenant_id, uid, form.get("time_zone", "")[:64])

    try:
        await run_in_threadpool(run)
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(lambda: _me(request, caller, message, status))
    return RedirectResponse("/admin/me?saved=1", status_code=303)
