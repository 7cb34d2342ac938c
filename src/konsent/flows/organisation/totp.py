"""Optional TOTP second factor for staff (RFC 6238 via pyotp; S3).

The secret is sealed with the tenant key. It becomes active only after the
staff member confirmed one code from their app; a code is accepted once (no replay).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.store.tables import StaffTotp, StaffUser, Tenant
from konsent.store.types import utcnow

ISSUER = "konsent"
PERIOD = 30


@dataclass(frozen=True)
class Enrolment:
    active: bool
    secret: str  # shown only while the enrolment is not yet confirmed
    uri: str
    qr_svg: str


def _aad(user: StaffUser) -> str:
    return f"totp:{user.id}"


def _secret(ctx: Konsent, s: Session, row: StaffTotp, user: StaffUser) -> str:
    return ctx.keys.open_for_tenant(s, user.tenant_id, row.secret_sealed, _aad(user))


def is_active(s: Session, user: StaffUser) -> bool:
    """Whether this staff member signs in with a second factor (2FA required per role, S3)."""
    row = s.get(StaffTotp, user.id)
    return row is not None and row.confirmed_at is not None


def enrolment(ctx: Konsent, s: Session, user: StaffUser) -> Enrolment:
    """The state of the second factor; starts a new, unconfirmed secret when there is none."""
    row = s.get(StaffTotp, user.id)
    if row is None:
        row = StaffTotp(
            user_id=user.id,
            tenant_id=user.tenant_id,
            secret_sealed=ctx.keys.seal_for_tenant(s, user.tenant_id, pyotp.random_base32(), _aad(user)),
            last_step=0,
        )
        s.add(row)
        s.flush()
    if row.confirmed_at is not None:
        return Enrolment(True, "", "", "")
    secret = _secret(ctx, s, row, user)
    tenant = s.get(Tenant, user.tenant_id)
    uri = pyotp.TOTP(secret, interval=PERIOD).provisioning_uri(
        name=user.email, issuer_name=f"{ISSUER} {tenant.slug if tenant else ''}".strip()
    )
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=4, xmldecl=False, svgns=True)
    return Enrolment(False, secret, uri, buf.getvalue().decode())


def _check(ctx: Konsent, s: Session, row: StaffTotp, user: StaffUser, code: str, now: datetime) -> bool:
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(_secret(ctx, s, row, user), interval=PERIOD)
    step = int(now.timestamp()) // PERIOD
    for candidate in (step, step - 1, step + 1):  # one step of clock drift either way
        if candidate > row.last_step and totp.at(candidate * PERIOD) == code:
            row.last_step = candidate
            return True
    return False


def confirm(
    ctx: Konsent, s: Session, user: StaffUser, code: str, actor: str, now: datetime | None = None
) -> None:
    """Activate the second factor with a first code from the app (S3)."""
    now = now or utcnow()
    row = s.get(StaffTotp, user.id)
    if row is None or row.confirmed_at is not None or not _check(ctx, s, row, user, code, now):
        raise InvalidInput(detail="the code is not valid; check the time on your phone and try again")
    row.confirmed_at = now
    audit.record(s, user.tenant_id, actor, "staff.totp_enabled", f"user:{user.id}")


def verify(ctx: Konsent, s: Session, user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """Check a sign-in code; each code works once. True when no second factor is set up."""
    row = s.get(StaffTotp, user.id)
    if row is None or row.confirmed_at is None:
        return True
    return _check(ctx, s, row, user, code, now or utcnow())


def disable(
    ctx: Konsent, s: Session, user: StaffUser, code: str, actor: str, now: datetime | None = None
) -> None:
    """Turn the second factor off; needs a current code."""
    row = s.get(StaffTotp, user.id)
    if row is None or row.confirmed_at is None:
        return
    if not _check(ctx, s, row, user, code, now or utcnow()):
        raise InvalidInput(detail="the code is not valid; check the time on your phone and try again")
    s.delete(row)
    audit.record(s, user.tenant_id, actor, "staff.totp_disabled", f"user:{user.id}")
