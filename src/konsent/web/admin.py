"""Admin UI under /admin: sign-in, password change, language, dashboard (S3, U1, U2).

Contact pages live in `admin_contacts`, ledger and channel setup in `admin_setup`.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError
from konsent.flows import dashboard as first_page
from konsent.flows.inbox import charts
from konsent.flows.organisation import channel_health, company, signin, staff
from konsent.flows.outbound import cost_views
from konsent.i18n import LOCALES
from konsent.web import (
    admin_channel_edit,
    admin_contact_data,
    admin_contacts,
    admin_setup,
    admin_staff,
    ratelimit,
)
from konsent.web.admin_common import admin_caller, error_text, page, safe_next
from konsent.web.deps import (
    LOCALE_COOKIE,
    SESSION_COOKIE,
    Caller,
    CsrfFailed,
    check_csrf_form,
    get_ctx,
    gettext_for,
    request_locale,
    session_caller,
)
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin", include_in_schema=False)

# Before a session exists, the login form is protected by a double-submit cookie.
LOGIN_CSRF_COOKIE = "konsent_login_csrf"
# A browser the user signed in with: the account's lock-out does not shut it out (S3, #13).
DEVICE_COOKIE = "konsent_device"
DEVICE_COOKIE_DAYS = 180
_MAX = 254


def _set_cookie(resp: Response, request: Request, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=get_ctx(request).settings.cookies_secure,
        path="/",
    )


def _login_page(
    request: Request, status_code: int = 200, error: str = "", tenant: str = "", email: str = ""
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = page(
        request,
        None,
        "admin/login.html",
        {"login_csrf": token, "error": error, "tenant": tenant, "email": email},
        status_code,
    )
    _set_cookie(resp, request, LOGIN_CSRF_COOKIE, token, 3600)
    return resp


@router.get("/login")
def login_form(request: Request) -> Response:
    if session_caller(request) is not None:
        return RedirectResponse("/admin", status_code=303)
    return _login_page(request, tenant=request.query_params.get("tenant", "")[:64])


@router.post("/login")
def login(
    request: Request,
    tenant: str = Form(""),
    email: str = Form(""),
    password: str = Form(""),
    totp_code: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Sign in with tenant, e-mail, password and the authenticator code where set up; repeated
    failures lock the account (S3)."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        raise CsrfFailed()
    tenant, email = tenant[:64], email[:_MAX]
    ctx = get_ctx(request)
    device = request.cookies.get(DEVICE_COOKIE, "")[:200]
    limits = ratelimit.limiter(request)
    wait = limits.hit("signin", ratelimit.client_key(request))
    if wait is None and not signin.trusted_browser(ctx, tenant, email, device):
        wait = limits.hit("signin-account", ratelimit.account_key(tenant, email))
    if wait is not None:
        _ = gettext_for(request_locale(request))
        msg = _("Too many sign-in attempts. Please wait {seconds} seconds and try again.").format(
            seconds=wait
        )
        resp = _login_page(request, 429, msg, tenant, email)
        resp.headers["retry-after"] = str(wait)
        return resp
    with ctx.db.write() as s:
        done = signin.sign_in(
            ctx, s, tenant, email, password[:1024], totp_code=totp_code[:16], device_cookie=device
        )
    if done is None:
        _ = gettext_for(request_locale(request))
        msg = _(
            "Sign-in failed. Check organisation, e-mail, password and, if you set one up, the "
            "authenticator code. After 5 failures the account is locked for 15 minutes."
        )
        return _login_page(request, 401, msg, tenant, email)
    target = "/admin/password" if done.must_change_password else "/admin"
    resp = RedirectResponse(target, status_code=303)
    ttl = ctx.settings.session_ttl_hours * 3600
    _set_cookie(resp, request, SESSION_COOKIE, done.cookie, ttl)
    _set_cookie(resp, request, DEVICE_COOKIE, done.device_cookie, DEVICE_COOKIE_DAYS * 86400)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)) -> Response:
    check_csrf_form(caller, csrf_token)
    with get_ctx(request).db.write() as s:
        signin.sign_out(s, request.cookies.get(SESSION_COOKIE, ""))
    resp = RedirectResponse("/admin/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/password")
def password_form(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return page(request, caller, "admin/password.html", {"error": ""})


@router.post("/password")
def password_change(
    request: Request,
    current: str = Form(""),
    new: str = Form(""),
    repeat: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    assert caller.user is not None
    cookie = request.cookies.get(SESSION_COOKIE, "")
    try:
        with get_ctx(request).db.write() as s:
            wrong = signin.change_password(
                s, caller.tenant_id, caller.user.id, cookie, current[:1024], new[:1024], repeat[:1024]
            )
    except DomainError as exc:
        return page(
            request, caller, "admin/password.html", {"error": error_text(request, exc)}, status_of(exc)
        )
    if wrong:
        _ = gettext_for(request_locale(request))
        return page(request, caller, "admin/password.html", {"error": _(wrong)}, 422)
    return RedirectResponse("/admin?notice=password", status_code=303)


@router.get("/lang/{locale}")
def switch_language(locale: str, request: Request) -> Response:
    """Remember the chosen language in a cookie and go back to the page (U2)."""
    resp = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    if locale in LOCALES:
        _set_cookie(resp, request, LOCALE_COOKIE, locale, 365 * 86400)
    return resp


@router.get("")
def dashboard(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        board = first_page.dashboard(s, caller.tenant_id)
        drawn = charts.dashboard_charts(s, caller.tenant_id)
        tenant = company.get_tenant(s, caller.tenant_id)
        steps = company.checklist(s, tenant)  # shown until the setup is complete (U5)
        slug = tenant.slug
        cost_lines, cost_currency = cost_views.month_lines(s, caller.tenant_id)  # CH6
        channels = (
            channel_health.summary(s, caller.tenant_id, datetime.now(UTC))
            if caller_can(caller, "settings.manage")
            else []
        )
    locale = request_locale(request)
    topic_names = {
        slug: names.get(locale) or names.get("de") or slug for slug, names, _ in board.active_by_topic
    }
    return page(
        request,
        caller,
        "admin/dashboard.html",
        {
            "board": board,
            "notice": request.query_params.get("notice"),
            "charts": drawn,
            "topic_names": topic_names,
            "setup_steps": steps,
            "tenant_slug": slug,
            "channels": channels,
            "cost_lines": cost_lines,
            "cost_currency": cost_currency,
        },
    )


def caller_can(caller: Caller, permission: str) -> bool:
    return staff.allowed(caller.role, permission)


@router.get("/")
def dashboard_slash() -> Response:
    return RedirectResponse("/admin", status_code=307)


router.include_router(admin_contacts.router)
router.include_router(admin_contact_data.router)  # labels, attributes, one Save, CSV export (M5)
router.include_router(admin_setup.router)
router.include_router(admin_channel_edit.router)  # after admin_setup: its /channels/{id}/webhook wins
router.include_router(admin_staff.router)
