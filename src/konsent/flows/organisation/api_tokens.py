"""API tokens of a tenant: create with role and expiry, list with last use, revoke (S3, M4).

The clear token is shown once; only its SHA-256 is stored. A token made by a staff member
ends when that member is deactivated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.organisation import staff
from konsent.store.tables import ApiToken, StaffUser, Tenant
from konsent.store.types import utcnow

MAX_DAYS = 3650


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: str  # active / expired / revoked


def create(
    s: Session,
    tenant_id: int,
    actor: str,
    actor_role: str,
    name: str,
    role: str,
    expires_days: int | None,
    now: datetime | None = None,
    scopes: list[str] | None = None,
) -> str:
    """Make a token; nobody makes one with more rights than their own role's (S3); `scopes` narrow it
    further (M4)."""
    now = now or utcnow()
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput(detail="Give the token a name (at most 100 characters).")
    if role not in {r.value for r in staff.Role}:
        raise InvalidInput(detail="Unknown role.")
    if role == staff.Role.OWNER.value and actor_role != staff.Role.OWNER.value:
        raise InvalidInput(detail="Only an owner can give the owner role.")
    if expires_days is not None and not 0 < expires_days <= MAX_DAYS:
        raise InvalidInput(detail="A token expires after 1 to 3650 days, or never.")
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound()
    user_id = int(actor.split(":", 1)[1]) if actor.startswith("user:") else None
    token = staff.create_api_token(
        s,
        tenant,
        name,
        role,
        scopes,
        user_id=user_id,
        created_by=actor,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    s.flush()
    row = s.scalars(
        select(ApiToken).where(ApiToken.tenant_id == tenant_id).order_by(ApiToken.id.desc())
    ).first()
    audit.record(s, tenant_id, actor, "token.create", f"token:{row.id if row else 0}", role=role)
    return token


def listing(s: Session, tenant_id: int, now: datetime | None = None) -> list[TokenRow]:
    now = now or utcnow()
    rows = s.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id).order_by(ApiToken.id)).all()
    disabled = set(
        s.scalars(select(StaffUser.id).where(StaffUser.tenant_id == tenant_id, StaffUser.disabled.is_(True)))
    )
    out = []
    for r in rows:
        if r.revoked_at is not None or (r.user_id is not None and r.user_id in disabled):
            state = "revoked"
        elif r.expires_at is not None and r.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        out.append(
            TokenRow(
                r.id,
                r.name,
                r.role,
                r.created_at,
                r.created_by,
                r.expires_at,
                r.last_used_at,
                r.revoked_at,
                state,
            )
        )
    return out


def revoke(s: Session, tenant_id: int, actor: str, token_id: int) -> None:
    """End a token at once; its row stays for the record."""
    row = s.get(ApiToken, token_id) if 0 < token_id < 2**63 else None
    if row is None or row.tenant_id != tenant_id:
        raise NotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(s, tenant_id, actor, "token.revoke", f"token:{row.id}")
