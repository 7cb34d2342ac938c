"""Staff accounts, sessions, CSRF tokens, API tokens and roles (S3)."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput, PermissionDenied
from konsent.store.tables import ApiToken, StaffSession, StaffUser, Tenant
from konsent.store.types import utcnow

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("konsent-timing-equaliser")
MAX_FAILURES = 5
LOCK_MINUTES = 15


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"
    DPO = "dpo"
    VIEWER = "viewer"


# What each role may do; routes ask for a permission, never for a role name.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "contacts.read": frozenset({Role.OWNER, Role.ADMIN, Role.AGENT, Role.DPO, Role.VIEWER}),
    "contacts.personal": frozenset({Role.OWNER, Role.ADMIN, Role.AGENT, Role.DPO}),
    # every contact of the tenant; agents see only contacts with a conversation in their teams
    "contacts.all_teams": frozenset({Role.OWNER, Role.ADMIN, Role.DPO, Role.VIEWER}),
    # labels and attribute values on a contact (M5); the definitions need settings.manage
    "contacts.edit": frozenset({Role.OWNER, Role.ADMIN, Role.AGENT, Role.DPO}),
    # CSV export of many contacts at once (M5, S4): never agents or viewers
    "contacts.export": frozenset({Role.OWNER, Role.ADMIN, Role.DPO}),
    "messages.send": frozenset({Role.OWNER, Role.ADMIN, Role.AGENT}),
    "consent.proof": frozenset({Role.OWNER, Role.ADMIN, Role.DPO}),
    "ledger.verify": frozenset({Role.OWNER, Role.ADMIN, Role.DPO}),
    "settings.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # inbox and chatbot (M1, M2): agents work the inbox, limited to their teams' conversations
    "inbox.use": frozenset({Role.OWNER, Role.ADMIN, Role.AGENT}),
    "inbox.all_teams": frozenset({Role.OWNER, Role.ADMIN}),
    "teams.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "bot.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "canned.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "stats.view": frozenset({Role.OWNER, Role.ADMIN, Role.VIEWER}),
}


def allowed(role: str, permission: str) -> bool:
    return Role(role) in PERMISSIONS[permission]


def require(role: str, permission: str) -> None:
    if not allowed(role, permission):
        raise PermissionDenied()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    s: Session,
    tenant: Tenant,
    email: str,
    password: str,
    role: str,
    *,
    name: str = "",
    locale: str = "de",
    must_change_password: bool = False,
) -> StaffUser:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput(detail="a valid e-mail address is needed")
    if len(password) < 10:
        raise InvalidInput(detail="passwords need at least 10 characters")
    Role(role)
    if s.scalars(select(StaffUser).where(StaffUser.tenant_id == tenant.id, StaffUser.email == email)).first():
        raise Conflict(detail="a user with this e-mail exists already")
    user = StaffUser(
        tenant_id=tenant.id,
        email=email,
        name=name,
        password_hash=_hasher.hash(password),
        role=role,
        locale=locale,
        must_change_password=must_change_password,
    )
    s.add(user)
    s.flush()
    return user


def burn_password_check(password: str) -> None:
    """Spend the cost of one password check, so a miss answers as slowly as a wrong password."""
    with contextlib.suppress(VerificationError):
        _hasher.verify(_DUMMY_HASH, password)


def count_failure(s: Session, user_id: int, now: datetime) -> None:
    """One more failed sign-in, counted in one atomic UPDATE (no lost updates under parallel
    requests on either database); the fifth in a row locks the account for a while."""
    bumped = StaffUser.failed_logins + 1
    s.execute(
        update(StaffUser)
        .where(StaffUser.id == user_id)
        .values(
            failed_logins=case((bumped >= MAX_FAILURES, 0), else_=bumped),
            locked_until=case(
                (bumped >= MAX_FAILURES, now + timedelta(minutes=LOCK_MINUTES)), else_=StaffUser.locked_until
            ),
        ),
        execution_options={"synchronize_session": False},
    )


def clear_failures_unless_locked(s: Session, user_id: int, now: datetime) -> bool:
    """Reset the failure count after a right password, in one statement that also checks the
    lock: False if a parallel failure locked the account meanwhile (the sign-in is refused)."""
    done = s.execute(
        update(StaffUser)
        .where(
            StaffUser.id == user_id,
            or_(StaffUser.locked_until.is_(None), StaffUser.locked_until <= now),
        )
        .values(failed_logins=0, locked_until=None)
        .returning(StaffUser.id),
        execution_options={"synchronize_session": False},
    ).first()
    return done is not None


def authenticate(
    s: Session,
    tenant: Tenant,
    email: str,
    password: str,
    now: datetime | None = None,
    second_factor: Callable[[StaffUser], bool] | None = None,
    trusted_device: Callable[[StaffUser], bool] | None = None,
) -> StaffUser | None:
    """Check a password and, if given, a second factor; after repeated failures of either the
    account is locked for a while (throttling, S3).

    The lock holds for every browser except those the user signed in with before
    (`trusted_device`): someone who only knows the e-mail address can lock out strangers,
    never the user at their own browser. Failures from a trusted browser do not count
    towards the lock; the per-client rate limit bounds them.
    """
    now = now or utcnow()
    user = s.scalars(
        select(StaffUser).where(StaffUser.tenant_id == tenant.id, StaffUser.email == email.strip().lower())
    ).one_or_none()
    if user is None or user.disabled:
        burn_password_check(password)  # same cost whether or not the user exists
        return None
    trusted = trusted_device is not None and trusted_device(user)
    if not trusted and user.locked_until and user.locked_until > now:
        burn_password_check(password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        if not trusted:
            count_failure(s, user.id, now)
        return None
    if second_factor is not None and not second_factor(user):
        if not trusted:
            count_failure(s, user.id, now)
        return None
    if not trusted and not clear_failures_unless_locked(s, user.id, now):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def set_password(s: Session, user: StaffUser, password: str) -> None:
    if len(password) < 10:
        raise InvalidInput(detail="passwords need at least 10 characters")
    user.password_hash = _hasher.hash(password)
    user.must_change_password = False


@dataclass(frozen=True)
class NewSession:
    cookie: str
    csrf_token: str


def start_session(s: Session, user: StaffUser, ttl_hours: int) -> NewSession:
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    s.add(
        StaffSession(
            id=_digest(cookie),
            tenant_id=user.tenant_id,
            user_id=user.id,
            csrf_token=csrf,
            expires_at=utcnow() + timedelta(hours=ttl_hours),
        )
    )
    return NewSession(cookie, csrf)


def session_user(s: Session, cookie: str) -> tuple[StaffSession, StaffUser] | None:
    sess = s.get(StaffSession, _digest(cookie))
    if sess is None or sess.expires_at < utcnow():
        return None
    user = s.get(StaffUser, sess.user_id)
    if user is None or user.disabled or user.tenant_id != sess.tenant_id:
        return None
    return sess, user


def end_session(s: Session, cookie: str) -> None:
    s.execute(delete(StaffSession).where(StaffSession.id == _digest(cookie)))


def create_api_token(
    s: Session,
    tenant: Tenant,
    name: str,
    role: str = "admin",
    scopes: list[str] | None = None,
    *,
    user_id: int | None = None,
    created_by: str = "",
    expires_at: datetime | None = None,
) -> str:
    """A new API token for this tenant; only its hash is stored, the clear value is shown once.

    `scopes` (`<area>:read|write`) narrow it below its role; None leaves it all the role may do (M4).
    """
    Role(role)
    if scopes is not None:
        bad = [x for x in scopes if x.partition(":")[2] not in ("read", "write")]
        if bad:
            raise InvalidInput("scopes look like contacts:read or contacts:write, not {scope}", scope=bad[0])
    token = "ks_" + secrets.token_urlsafe(32)
    s.add(
        ApiToken(
            tenant_id=tenant.id,
            name=name,
            token_hash=_digest(token),
            role=role,
            scopes=sorted(set(scopes)) if scopes is not None else None,
            user_id=user_id,
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    return token


def token_tenant(s: Session, token: str) -> ApiToken | None:
    """The token's row if it may be used now: not revoked, not expired, its maker still active (S3)."""
    row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _digest(token))).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.user_id is not None:
        maker = s.get(StaffUser, row.user_id)
        if maker is None or maker.disabled or maker.tenant_id != row.tenant_id:
            return None
    row.last_used_at = now
    return row


class StaffMember(Protocol):
    """Who acts: web.deps.Caller fits."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def user(self) -> StaffUser | None: ...


def assignable(s: Session, tenant_id: int) -> list[StaffUser]:
    """Who can be assigned or put in a team: owners, admins and agents, not disabled."""
    return [
        u
        for u in s.scalars(
            select(StaffUser).where(StaffUser.tenant_id == tenant_id).order_by(StaffUser.email)
        )
        if u.role in ("owner", "admin", "agent") and not u.disabled
    ]
