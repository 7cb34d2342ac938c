"""What every admin page shares: the signed-in caller, the page renderer, CSRF and error texts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request
from starlette.responses import Response

from konsent.domain.errors import DomainError, NoLegalBasis
from konsent.flows.organisation import staff
from konsent.web.deps import (
    Caller,
    Unauthenticated,
    gettext_for,
    render,
    request_locale,
    session_caller,
    templates,
)
from konsent.web.errors import message_of

# Paths a user with a one-time password may still open before choosing a new one.
_BEFORE_PASSWORD_CHANGE = ("/admin/password", "/admin/logout", "/admin/lang/")


def admin_caller(request: Request) -> Caller:
    """The signed-in staff member; a one-time password must be replaced before anything else (U1)."""
    caller = session_caller(request)
    if caller is None:
        raise Unauthenticated()
    if (
        caller.user is not None
        and caller.user.must_change_password
        and not request.url.path.startswith(_BEFORE_PASSWORD_CHANGE)
    ):
        raise HTTPException(status_code=303, headers={"location": "/admin/password"})
    return caller


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str  # English msgid
    permission: str
    order: int


# The admin's main navigation; other admin modules add their pages with `add_nav` at import.
NAV: list[NavItem] = [
    NavItem("/admin", "Dashboard", "contacts.read", 10),
    NavItem("/admin/contacts", "Contacts", "contacts.read", 20),
    NavItem("/admin/channels", "Channels", "settings.manage", 80),
    NavItem("/admin/ledger", "Ledger", "ledger.verify", 90),
]


def add_nav(href: str, label: str, permission: str, order: int = 50) -> None:
    """Show a page in the main navigation to everyone holding `permission`."""
    if all(item.href != href for item in NAV):
        NAV.append(NavItem(href, label, permission, order))
        NAV.sort(key=lambda item: item.order)


def page(
    request: Request, caller: Caller | None, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """Render an admin page with the caller, its CSRF token and a permission test."""
    role = caller.role if caller else None

    def can(permission: str) -> bool:
        try:
            return role is not None and staff.allowed(role, permission)
        except (KeyError, ValueError):  # unknown permission or role: deny
            return False

    base = {
        "me": caller,
        "csrf_token": caller.csrf_token if caller else "",
        "can": can,
        "path": request.url.path,
        "nav": [item for item in NAV if can(item.permission)],
    }
    return render(request, name, {**base, **context}, status_code=status_code)


# Reasons `may_send` gives, as msgids the admin translates (C5).
REFUSAL_REASONS = {
    "erased": "the contact was erased",
    "unreachable": "the contact blocked this channel",
    "no_conversation": "service messages only answer a conversation the contact started",
    "objected": "the contact objected to direct marketing",
    "no_consent": "no consent was given for this topic",
    "withdrawn": "the contact withdrew consent for this topic",
    "not_yet_valid": "consent was given after the send time",
    "outdated_text": "consent was given for an older version of the consent text",
}


def error_text(request: Request, exc: DomainError) -> str:
    """A domain error as a sentence in the admin's language."""
    _ = gettext_for(request_locale(request))
    if isinstance(exc, NoLegalBasis):
        code = str(exc.params.get("reason_code", ""))
        reason = _(REFUSAL_REASONS[code]) if code in REFUSAL_REASONS else str(exc.params.get("reason", ""))
        return _(
            "Refused: no legal basis for {purpose} — {reason}.",
            purpose=exc.params.get("purpose"),
            reason=reason,
        )
    return message_of(exc, request_locale(request))


def when(value: object) -> str:
    """A time as the admin reads it: UTC, to the second."""
    if not isinstance(value, datetime | str) or not value:  # also Jinja's Undefined
        return "—"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def safe_next(value: str | None) -> str:
    """Only redirect back into the admin (no open redirect)."""
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


_MISSING = re.compile(r"^entry (\d+) is missing$")


def chain_reason(reason: str) -> tuple[str, dict[str, Any]]:
    """A chain report's reason as msgid and parameters, so the page can translate it."""
    m = _MISSING.match(reason or "")
    if m:
        return "entry {seq} is missing", {"seq": int(m.group(1))}
    return reason, {}


templates.env.filters.setdefault("when", when)
templates.env.filters.setdefault("chain_reason", chain_reason)
