"""Request dependencies: the installation, the caller's tenant and role, locale, templates."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from konsent.domain.errors import DomainError
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffUser
from konsent.i18n import LOCALES, negotiate, pick_locale, translations
from konsent.web import api_guard

SESSION_COOKIE = "konsent_session"
LOCALE_COOKIE = "konsent_lang"
CSRF_HEADER = "x-csrf-token"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class Unauthenticated(DomainError):
    code = "unauthenticated"
    message = "Please sign in."


class CsrfFailed(DomainError):
    code = "csrf_failed"
    message = "The form has expired. Please reload the page and try again."


def get_ctx(request: Request) -> Konsent:
    ctx: Konsent = request.app.state.ctx
    return ctx


def request_locale(request: Request, default: str = "de") -> str:
    """?lang=, then the language cookie, then Accept-Language."""
    chosen = request.query_params.get("lang") or request.cookies.get(LOCALE_COOKIE)
    if chosen and pick_locale(chosen, "") in LOCALES:
        return pick_locale(chosen)
    return negotiate(request.headers.get("accept-language"), default)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a staff member's session or an API token, always bound to one tenant."""

    tenant_id: int
    role: str
    actor: str  # for the audit log: "user:12" or "token:3"
    user: StaffUser | None = None
    csrf_token: str = ""
    scopes: list[str] | None = None  # an API token's scopes; None: all its role may do

    def require(self, permission: str) -> None:
        staff.require(self.role, permission)


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def session_caller(request: Request) -> Caller | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        found = staff.session_user(s, cookie)
        if found is None:
            return None
        sess, user = found
        return Caller(sess.tenant_id, user.role, f"user:{user.id}", user, sess.csrf_token)


def api_caller(request: Request) -> Caller:
    """A bearer token, or a staff session (then unsafe methods need the CSRF header)."""
    token = _bearer(request)
    ctx = get_ctx(request)
    if token:
        with ctx.db.write() as s:
            row = staff.token_tenant(s, token)
            if row is None:
                raise Unauthenticated()
            by_token = Caller(row.tenant_id, row.role, f"token:{row.id}", scopes=row.scopes)
        api_guard.limiter_for(request.app.state, ctx.settings).hit(row.id)
        api_guard.check_scope(by_token.scopes, request.method, request.url.path)
        return by_token
    caller = session_caller(request)
    if caller is None:
        raise Unauthenticated()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given, caller.csrf_token):
            raise CsrfFailed()
    return caller


def check_csrf_form(caller: Caller, form_token: str | None) -> None:
    if not form_token or not hmac.compare_digest(form_token, caller.csrf_token):
        raise CsrfFailed()


def gettext_for(locale: str) -> Callable[..., str]:
    tr = translations(locale)

    def _(msgid: str, **params: Any) -> str:
        text = tr.gettext(msgid)
        return text.format(**params) if params else text

    return _


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200, locale: str | None = None
) -> Response:
    """Render a template with `_` bound to the request's language."""
    locale = locale or request_locale(request)
    ctx = {"request": request, "_": gettext_for(locale), "locale": locale, "locales": LOCALES, **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
