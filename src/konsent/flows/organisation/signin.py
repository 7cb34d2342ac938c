"""Staff sign-in: password, authenticator code, trusted browsers, sign-out, password change (S3, U1).

Owns the sign-in use cases the admin pages call; the rules themselves live in `staff`, `totp` and
`trusted_devices`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff, tenants, totp, trusted_devices
from konsent.store.tables import StaffSession, StaffUser, Tenant
from konsent.store.types import utcnow


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    must_change_password: bool
    device_cookie: str = ""  # marks this browser as trusted by the user (flows.organisation.trusted_devices)


def sign_in(
    ctx: Konsent,
    s: Session,
    tenant_slug: str,
    email: str,
    password: str,
    now: datetime | None = None,
    totp_code: str = "",
    device_cookie: str = "",
) -> SignedIn | None:
    """Check tenant, e-mail, password and, where set up, the authenticator code (S3); start a session.

    A locked account still admits a browser the user signed in with before (`device_cookie`)."""
    try:
        tenant = tenants.tenant_by_slug(s, tenant_slug.strip().lower())
    except NotFound:
        staff.burn_password_check(password)  # an unknown tenant must not answer faster
        return None
    user = staff.authenticate(
        s,
        tenant,
        email,
        password,
        now,
        second_factor=lambda u: totp.verify(ctx, s, u, totp_code, now),
        trusted_device=lambda u: bool(device_cookie) and trusted_devices.is_trusted(ctx, s, u, device_cookie),
    )
    if user is None:
        return None
    user.last_login_at = now or utcnow()
    new = staff.start_session(s, user, ctx.settings.session_ttl_hours)
    audit.record(s, tenant.id, f"user:{user.id}", "staff.login", f"user:{user.id}")
    return SignedIn(new.cookie, user.must_change_password, trusted_devices.new_device_cookie(ctx, s, user))


def trusted_browser(ctx: Konsent, tenant_slug: str, email: str, device_cookie: str) -> bool:
    """Whether this browser signed in to this account before (it then skips the per-account limit)."""
    if not device_cookie:
        return False
    with ctx.db.read() as s:
        tenant = s.scalars(select(Tenant).where(Tenant.slug == tenant_slug.strip().lower())).one_or_none()
        if tenant is None:
            return False
        user = s.scalars(
            select(StaffUser).where(
                StaffUser.tenant_id == tenant.id, StaffUser.email == email.strip().lower()
            )
        ).one_or_none()
        return user is not None and trusted_devices.is_trusted(ctx, s, user, device_cookie)


def sign_out(s: Session, cookie: str) -> None:
    staff.end_session(s, cookie)


WRONG_CURRENT_PASSWORD = "The current password is wrong."  # noqa: S105 (a message, not a password)


def change_password(
    s: Session, tenant_id: int, user_id: int, cookie: str, current: str, new: str, repeat: str
) -> str | None:
    """A staff member sets a new password; the demo's one-time password must be replaced (U1).

    Returns an error msgid when the current password is wrong instead of raising, so that
    the failed attempt still counts towards the lock-out (the transaction commits).
    Other sessions of the user end; the one in use stays.
    """
    user = s.get(StaffUser, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound()
    if new != repeat:
        raise InvalidInput(detail="The two new passwords differ.")
    if new == current:
        raise InvalidInput(detail="The new password must differ from the current one.")
    if len(new) < 10:
        raise InvalidInput(detail="passwords need at least 10 characters")
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    if staff.authenticate(s, tenant, user.email, current) is None:
        return WRONG_CURRENT_PASSWORD
    staff.set_password(s, user, new)
    keep = hashlib.sha256(cookie.encode()).hexdigest()
    s.execute(
        delete(StaffSession).where(
            StaffSession.tenant_id == tenant_id, StaffSession.user_id == user.id, StaffSession.id != keep
        )
    )
    audit.record(s, tenant_id, f"user:{user.id}", "staff.password_change", f"user:{user.id}")
    return None
