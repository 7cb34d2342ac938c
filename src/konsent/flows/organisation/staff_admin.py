"""Managing a tenant's staff: invitations and reset links, roles, deactivation, 2FA rules (S3, U5).

A one-time link (invitation or password reset) is shown once; only its hash is kept.
Deactivating a member ends their sessions and the API tokens they made in the same
transaction, so nothing they hold works a moment later.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.organisation import staff, totp
from konsent.store.tables import ApiToken, StaffInvite, StaffSession, StaffTotp, StaffUser, Tenant
from konsent.store.tenant_settings import merge_settings
from konsent.store.types import utcnow

LINK_TTL_HOURS = 72
INVITE, RESET = "invite", "reset"
ROLES = tuple(r.value for r in staff.Role)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(s: Session, tenant_id: int, user_id: int) -> StaffUser:
    user = s.get(StaffUser, user_id) if 0 < user_id < 2**63 else None
    if user is None or user.tenant_id != tenant_id:
        raise NotFound()
    return user


def _owners_left(s: Session, tenant_id: int, without: int) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(StaffUser)
            .where(
                StaffUser.tenant_id == tenant_id,
                StaffUser.role == staff.Role.OWNER.value,
                StaffUser.disabled.is_(False),
                StaffUser.id != without,
            )
        )
        or 0
    )


def _check_actor_may_grant(actor_role: str, role: str) -> None:
    # only an owner makes or touches owners: an admin cannot promote anyone above themselves
    if role == staff.Role.OWNER.value and actor_role != staff.Role.OWNER.value:
        raise InvalidInput(detail="Only an owner can give the owner role.")


def _new_link(s: Session, user: StaffUser, purpose: str, actor: str, now: datetime) -> str:
    s.execute(
        update(StaffInvite)
        .where(StaffInvite.user_id == user.id, StaffInvite.used_at.is_(None))
        .values(used_at=now)  # an older link of this user stops working
    )
    token = secrets.token_urlsafe(32)
    s.add(
        StaffInvite(
            tenant_id=user.tenant_id,
            user_id=user.id,
            token_hash=_digest(token),
            purpose=purpose,
            created_by=actor,
            created_at=now,
            expires_at=now + timedelta(hours=LINK_TTL_HOURS),
        )
    )
    return token


@dataclass(frozen=True)
class Link:
    """A one-time link's secret part, shown once, and who it is for."""

    token: str
    user_id: int
    email: str
    purpose: str


def invite(
    s: Session,
    tenant_id: int,
    actor: str,
    actor_role: str,
    email: str,
    role: str,
    name: str = "",
    locale: str = "de",
    now: datetime | None = None,
) -> Link:
    """Create a staff account without a password and a one-time link to choose one (S3)."""
    now = now or utcnow()
    if role not in ROLES:
        raise InvalidInput(detail="Unknown role.")
    _check_actor_may_grant(actor_role, role)
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    # a random password nobody knows: the account works only once the link was used
    user = staff.create_user(
        s, tenant, email, secrets.token_urlsafe(32), role, name=name.strip()[:200], locale=locale
    )
    token = _new_link(s, user, INVITE, actor, now)
    audit.record(s, tenant_id, actor, "staff.invite", f"user:{user.id}", role=role)
    return Link(token, user.id, user.email, INVITE)


def reset_password(s: Session, tenant_id: int, actor: str, actor_role: str, user_id: int) -> Link:
    """Replace a member's password with a one-time link; their sessions end now (S3)."""
    user = _user(s, tenant_id, user_id)
    _check_actor_may_grant(actor_role, user.role)
    user.password_hash = staff._hasher.hash(secrets.token_urlsafe(32))
    _end_sessions(s, user)
    token = _new_link(s, user, RESET, actor, utcnow())
    audit.record(s, tenant_id, actor, "staff.password_reset", f"user:{user.id}")
    return Link(token, user.id, user.email, RESET)


def reset_second_factor(s: Session, tenant_id: int, actor: str, actor_role: str, user_id: int) -> None:
    """Remove a member's authenticator (lost phone); they set up a new one at next sign-in."""
    user = _user(s, tenant_id, user_id)
    _check_actor_may_grant(actor_role, user.role)
    s.execute(delete(StaffTotp).where(StaffTotp.user_id == user.id))
    _end_sessions(s, user)
    audit.record(s, tenant_id, actor, "staff.totp_reset", f"user:{user.id}")


@dataclass(frozen=True)
class LinkTarget:
    user_id: int
    tenant_slug: str
    email: str
    purpose: str


def open_link(s: Session, token: str, now: datetime | None = None) -> LinkTarget:
    """Who a one-time link is for; NotFound when unknown, used or expired."""
    now = now or utcnow()
    row = s.scalars(select(StaffInvite).where(StaffInvite.token_hash == _digest(token))).one_or_none()
    if row is None or row.used_at is not None or row.expires_at < now:
        raise NotFound(message="This link is not valid (any more). Ask your administrator for a new one.")
    user = s.get(StaffUser, row.user_id)
    tenant = s.get(Tenant, row.tenant_id)
    if user is None or tenant is None or user.disabled:
        raise NotFound(message="This link is not valid (any more). Ask your administrator for a new one.")
    return LinkTarget(user.id, tenant.slug, user.email, row.purpose)


def use_link(s: Session, token: str, password: str, repeat: str, now: datetime | None = None) -> StaffUser:
    """Choose a password through a one-time link; the link is spent (S3)."""
    now = now or utcnow()
    target = open_link(s, token, now)
    if password != repeat:
        raise InvalidInput(detail="The two new passwords differ.")
    user = s.get(StaffUser, target.user_id)
    assert user is not None
    staff.set_password(s, user, password)
    user.failed_logins, user.locked_until = 0, None
    s.execute(update(StaffInvite).where(StaffInvite.token_hash == _digest(token)).values(used_at=now))
    audit.record(s, user.tenant_id, f"user:{user.id}", f"staff.{target.purpose}_used", f"user:{user.id}")
    return user


def _end_sessions(s: Session, user: StaffUser) -> None:
    s.execute(
        delete(StaffSession).where(StaffSession.tenant_id == user.tenant_id, StaffSession.user_id == user.id)
    )


def set_role(s: Session, tenant_id: int, actor: str, actor_role: str, user_id: int, role: str) -> None:
    """Change a member's role; the last active owner keeps theirs."""
    if role not in ROLES:
        raise InvalidInput(detail="Unknown role.")
    user = _user(s, tenant_id, user_id)
    _check_actor_may_grant(actor_role, user.role)
    _check_actor_may_grant(actor_role, role)
    if user.role == staff.Role.OWNER.value and role != user.role and _owners_left(s, tenant_id, user.id) == 0:
        raise Conflict(detail="The organisation needs at least one active owner.")
    old, user.role = user.role, role
    audit.record(s, tenant_id, actor, "staff.role", f"user:{user.id}", old=old, new=role)


def deactivate(s: Session, tenant_id: int, actor: str, actor_role: str, user_id: int) -> int:
    """Switch a member off: sessions, open links and their API tokens end at once; returns the
    number of tokens revoked (S3)."""
    user = _user(s, tenant_id, user_id)
    _check_actor_may_grant(actor_role, user.role)
    if actor == f"user:{user.id}":
        raise InvalidInput(detail="You cannot deactivate yourself.")
    if user.role == staff.Role.OWNER.value and _owners_left(s, tenant_id, user.id) == 0:
        raise Conflict(detail="The organisation needs at least one active owner.")
    now = utcnow()
    user.disabled = True
    _end_sessions(s, user)
    s.execute(
        update(StaffInvite)
        .where(StaffInvite.user_id == user.id, StaffInvite.used_at.is_(None))
        .values(used_at=now)
    )
    revoked = s.execute(
        update(ApiToken)
        .where(ApiToken.tenant_id == tenant_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    audit.record(s, tenant_id, actor, "staff.deactivate", f"user:{user.id}", tokens_revoked=int(revoked or 0))
    return int(revoked or 0)


def reactivate(s: Session, tenant_id: int, actor: str, actor_role: str, user_id: int) -> None:
    """Switch a member on again; revoked tokens stay revoked."""
    user = _user(s, tenant_id, user_id)
    _check_actor_may_grant(actor_role, user.role)
    user.disabled = False
    user.failed_logins, user.locked_until = 0, None
    audit.record(s, tenant_id, actor, "staff.reactivate", f"user:{user.id}")


# ---------------------------------------------------------------- two factors per role


def roles_requiring_2fa(tenant: Tenant | None) -> set[str]:
    raw = (tenant.settings or {}).get("require_2fa", []) if tenant is not None else []
    return {r for r in raw if r in ROLES} if isinstance(raw, list) else set()


def required_roles(s: Session, tenant_id: int) -> set[str]:
    """The roles of this tenant that must sign in with a second factor."""
    return roles_requiring_2fa(s.get(Tenant, tenant_id))


def set_roles_requiring_2fa(s: Session, tenant_id: int, actor: str, roles: list[str]) -> None:
    """Which roles must sign in with an authenticator code (S3); audited."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInput(detail="Unknown role.")
    merge_settings(s, tenant_id, {"require_2fa": sorted(set(roles))})
    audit.record(s, tenant_id, actor, "tenant.require_2fa", f"tenant:{tenant_id}", roles=sorted(set(roles)))


def must_set_up_2fa(s: Session, user: StaffUser) -> bool:
    """True when the member's role requires a second factor they have not set up yet."""
    return user.role in roles_requiring_2fa(s.get(Tenant, user.tenant_id)) and not totp.is_active(s, user)


# ---------------------------------------------------------------- listing


@dataclass(frozen=True)
class Member:
    id: int
    email: str
    name: str
    role: str
    active: bool
    second_factor: bool
    invited: bool  # has not chosen a password yet
    last_login_at: datetime | None
    time_zone: str | None


def members(s: Session, tenant_id: int) -> list[Member]:
    users = s.scalars(select(StaffUser).where(StaffUser.tenant_id == tenant_id).order_by(StaffUser.id)).all()
    with_totp = set(
        s.scalars(
            select(StaffTotp.user_id).where(
                StaffTotp.tenant_id == tenant_id, StaffTotp.confirmed_at.is_not(None)
            )
        )
    )
    pending = set(
        s.scalars(
            select(StaffInvite.user_id).where(
                StaffInvite.tenant_id == tenant_id,
                StaffInvite.purpose == INVITE,
                StaffInvite.used_at.is_(None),
            )
        )
    )
    return [
        Member(
            u.id,
            u.email,
            u.name,
            u.role,
            not u.disabled,
            u.id in with_totp,
            u.id in pending,
            u.last_login_at,
            u.time_zone,
        )
        for u in users
    ]
