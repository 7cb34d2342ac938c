"""Consent proof for one contact and verification of a tenant's ledger (C3, invariant 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.ledger import ChainReport, verify_chain
from konsent.flows.contacts import Contact, consent_rows
from konsent.store.chain import AUDIT, CONSENT, chain_head, iter_chain
from konsent.store.tables import ConsentText, LedgerEntry, Tenant
from konsent.store.types import utcnow


def verify_ledger(s: Session, tenant_id: int, chain: str = CONSENT) -> ChainReport:
    """Recompute the whole chain; the report names the first broken entry."""
    if chain not in (CONSENT, AUDIT):
        raise ValueError(chain)
    if chain == AUDIT:
        from konsent.flows.privacy.retention import verify_audit

        return verify_audit(s, tenant_id)
    return verify_chain(iter_chain(s, tenant_id, chain), head=chain_head(s, tenant_id, chain))


def ledger_entries(s: Session, contact: Contact) -> list[LedgerEntry]:
    return list(
        s.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.tenant_id == contact.tenant_id, LedgerEntry.contact_id == contact.id)
            .order_by(LedgerEntry.seq)
        ).all()
    )


def proof_document(s: Session, contact: Contact, generated_at: datetime | None = None) -> dict[str, Any]:
    """Everything an authority needs to check this contact's consents, as JSON-ready data."""
    tenant = s.get(Tenant, contact.tenant_id)
    assert tenant is not None
    entries = ledger_entries(s, contact)
    hashes = {e.payload.get("consent_text_hash") for e in entries} - {None}
    texts = {
        ct.text_hash: {"version": ct.version, "locale": ct.locale, "text": ct.text}
        for ct in s.scalars(
            select(ConsentText).where(ConsentText.tenant_id == tenant.id, ConsentText.text_hash.in_(hashes))
        ).all()
    }
    report = verify_ledger(s, tenant.id)
    return {
        "format": "konsent-consent-proof/1",
        "generated_at": (generated_at or utcnow()).isoformat(),
        "controller": {"name": tenant.name, "privacy_url": tenant.privacy_url},
        "contact": {"id": contact.id, "created_at": contact.created_at.isoformat()},
        "current_state": [
            {
                "purpose": r.purpose,
                "status": r.status,
                "text_version": r.text_version,
                "changed_at": r.changed_at.isoformat(),
            }
            for r in consent_rows(s, contact)
        ],
        "ledger": [
            {
                "seq": e.seq,
                "purpose": e.purpose,
                "action": e.action,
                "recorded_at": e.created_at.isoformat(),
                "payload": e.payload,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
        "consent_texts": texts,
        "chain_verification": {
            "ok": report.ok,
            "checked_entries": report.checked,
            "first_broken_seq": report.first_broken_seq,
            "reason": report.reason,
        },
        "how_to_verify": (
            "Each entry's hash is SHA-256 over the previous entry's hash, a newline and the payload "
            "serialised as JSON with sorted keys and no spaces. The consent text's hash is SHA-256 "
            "of its UTF-8 text."
        ),
    }
