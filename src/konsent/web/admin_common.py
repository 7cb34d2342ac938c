"""What every admin page shares: the signed-in caller, the page renderer, CSRF and error texts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request
from jinja2 import pass_context
from starlette.responses import Response

from konsent.domain.errors import DomainError, NoLegalBasis
from konsent.flows.organisation import localtime, names, staff, staff_admin
from konsent.web.deps import (
    Caller,
    Unauthenticated,
    get_ctx,
    gettext_for,
    render,
    request_locale,
    session_caller,
    templates,
)
from konsent.web.errors import message_of

# Paths a user with a one-time password may still open before choosing a new one.
_BEFORE_PASSWORD_CHANGE = ("/admin/password", "/admin/logout", "/admin/lang/")
# ... and, where the role requires a second factor, before setting one up (S3).
_BEFORE_SECOND_FACTOR = ("/admin/security/totp", "/admin/logout", "/admin/lang/", "/admin/password")


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
    if caller.user is not None and not request.url.path.startswith(_BEFORE_SECOND_FACTOR):
        with get_ctx(request).db.read() as s:
            if staff_admin.must_set_up_2fa(s, caller.user):
                raise HTTPException(status_code=303, headers={"location": "/admin/security/totp"})
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

    labels = _LazyLabels(request, caller)
    base = {
        "me": caller,
        "csrf_token": caller.csrf_token if caller else "",
        "can": can,
        "path": request.url.path,
        "nav": [item for item in NAV if can(item.permission)],
        "tz": _zone(request, caller),
        "topic_label": labels.topic,
        "actor_label": labels.actor,
    }
    return render(request, name, {**base, **context}, status_code=status_code)


def _zone(request: Request, caller: Caller | None) -> str:
    """The zone this page shows times in: the staff member's own, else the organisation's (U5)."""
    if caller is None:
        return "UTC"
    with get_ctx(request).db.read() as s:
        return localtime.zone_for(s, caller.tenant_id, caller.user)


class _LazyLabels:
    """Topic and staff names for the page, read only if the page asks for one (U5)."""

    def __init__(self, request: Request, caller: Caller | None) -> None:
        self._request, self._caller = request, caller
        self._labels: names.Labels | None = None

    def _load(self) -> names.Labels:
        if self._labels is None:
            if self._caller is None:
                self._labels = names.Labels()
            else:
                with get_ctx(self._request).db.read() as s:
                    self._labels = names.load_labels(s, self._caller.tenant_id)
        return self._labels

    def topic(self, purpose: object) -> str:
        return self._load().topic(str(purpose), request_locale(self._request))

    def actor(self, actor: object) -> str:
        return self._load().actor(str(actor))


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


@pass_context
def when(context: Any, value: object) -> str:
    """A time as the admin reads it: in the page's zone (`tz`, else UTC), with the zone shown (U5)."""
    if not isinstance(value, datetime | str) or not value:  # also Jinja's Undefined
        return "—"
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        at = value
    zone = context.get("tz") if context is not None else None
    return localtime.show(at, zone if isinstance(zone, str) and zone else "UTC")


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
