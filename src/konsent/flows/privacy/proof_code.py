"""Proof from the contact's own messenger before any self-service action (D1-D4, S8, #13).

A self-service link (portal or export) alone does nothing. The page first has a short
code sent to the contact's messenger; entering it opens a browser session of a few minutes
(an HttpOnly cookie) in which the contact may download, correct, object or erase. Staff
who read the conversation see the link and the code redacted (flows.privacy.redaction),
and even with the clear link they cannot receive the code: it goes to the contact's phone.

Codes and sessions are stored as keyed hashes only; a code expires after CODE_MINUTES,
allows MAX_ATTEMPTS tries and at most MAX_CODES codes are sent per link.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import DomainError
from konsent.flows.context import Konsent
from konsent.flows.privacy.rights import token_digest
from konsent.flows.texts import N_
from konsent.store.tables import Contact, PrivacyProof
from konsent.store.types import utcnow

CODE_MINUTES = 10
SESSION_MINUTES = 15
MAX_ATTEMPTS = 5
MAX_CODES = 3

CODE_MESSAGE = N_(
    "Your code for the privacy page: {code} It is valid for {minutes} minutes. If you did not ask "
    "for it, ignore this message: without the code nobody can use your link."
)


class ProofRequired(DomainError):
    code = "proof_required"
    message = "Please confirm with the code we sent to your messenger first."


class ProofRefused(DomainError):
    code = "proof_refused"
    message = "The code is wrong or has expired."


@dataclass(frozen=True)
class NewCode:
    code: str
    contact_id: int


def _row(s: Session, contact: Contact, token: str, lock: bool = False) -> PrivacyProof:
    link = token_digest(token)
    q = select(PrivacyProof).where(PrivacyProof.link_hash == link)
    row = s.scalars(q.with_for_update() if lock else q).one_or_none()
    if row is None:
        row = PrivacyProof(
            tenant_id=contact.tenant_id, contact_id=contact.id, link_hash=link, codes_sent=0, attempts=0
        )
        s.add(row)
        s.flush()
    if row.contact_id != contact.id or row.tenant_id != contact.tenant_id:
        raise ProofRefused()
    return row


def _hash(ctx: Konsent, s: Session, row: PrivacyProof, kind: str, value: str) -> str:
    return ctx.keys.keyed_hash(s, row.tenant_id, f"privacy-{kind}:{row.link_hash}:{value}")


def new_code(ctx: Konsent, s: Session, contact: Contact, token: str, at: datetime | None = None) -> NewCode:
    """A fresh code for this link (the previous one stops working); the caller sends it."""
    at = at or utcnow()
    row = _row(s, contact, token, lock=True)
    if row.codes_sent >= MAX_CODES:
        raise ProofRefused()
    code = "PR" + "".join(secrets.choice("0123456789") for _ in range(6))
    row.code_hash = _hash(ctx, s, row, "code", code)
    row.code_expires_at = at + timedelta(minutes=CODE_MINUTES)
    row.codes_sent += 1
    row.attempts = 0
    return NewCode(code, contact.id)


def verify_code(
    ctx: Konsent, s: Session, contact: Contact, token: str, code: str, at: datetime | None = None
) -> str:
    """Check the code the visitor typed; return the secret of a short session for this link."""
    at = at or utcnow()
    row = _row(s, contact, token, lock=True)
    code = code.strip().upper().replace(" ", "")
    if not code.startswith("PR"):
        code = "PR" + code
    ok = (
        row.code_hash is not None
        and row.code_expires_at is not None
        and row.code_expires_at >= at
        and row.attempts < MAX_ATTEMPTS
        and len(code) <= 16
        and hmac.compare_digest(row.code_hash, _hash(ctx, s, row, "code", code))
    )
    row.attempts += 1
    if not ok:
        return ""
    secret = secrets.token_urlsafe(32)
    row.code_hash = None  # a code opens one session
    row.session_hash = _hash(ctx, s, row, "session", secret)
    row.session_expires_at = at + timedelta(minutes=SESSION_MINUTES)
    return secret


def has_proof(
    ctx: Konsent, s: Session, contact: Contact, token: str, session: str, at: datetime | None = None
) -> bool:
    """Whether this browser proved, minutes ago, that it holds the contact's messenger."""
    at = at or utcnow()
    if not session:
        return False
    row = s.scalars(select(PrivacyProof).where(PrivacyProof.link_hash == token_digest(token))).one_or_none()
    return (
        row is not None
        and row.contact_id == contact.id
        and row.session_hash is not None
        and row.session_expires_at is not None
        and row.session_expires_at >= at
        and hmac.compare_digest(row.session_hash, _hash(ctx, s, row, "session", session))
    )


def require_proof(ctx: Konsent, s: Session, contact: Contact, token: str, session: str) -> None:
    if not has_proof(ctx, s, contact, token, session):
        raise ProofRequired()
