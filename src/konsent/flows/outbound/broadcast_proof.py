"""A broadcast's proof and export: who was chosen and why, and what became of each message (M5, C5).

The proof says the rule every recipient passed (active consent for the topic, at least the
minimum consent-text version, not erased, reachable, no objection to marketing; checked again
when each message was handed to the provider), the copy of the segment definition the broadcast
was sent with, and per contact (by id, no personal data) the outcome of its message. Reading it
is an access to data about contacts and is audited (S4).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain import segments as rules
from konsent.flows import audit
from konsent.flows.outbound import broadcast_stats
from konsent.flows.outbound.broadcast_compose import get_broadcast
from konsent.flows.outbound.pressure import rules_for
from konsent.store.tables import Message, OutboxRow, Tenant

CONSENT_RULE = (
    "active consent for the topic's purpose, given for at least the minimum consent-text version; "
    "the contact is not erased, not unreachable and has not objected to marketing; "
    "checked when the broadcast was queued and again when each message was handed to the provider"
)
COLUMNS = ("contact_id", "message_id", "status", "reason", "queued_at", "updated_at")


def _recipients(s: Session, tenant_id: int, broadcast_id: int) -> list[dict[str, Any]]:
    rows = s.execute(
        select(
            OutboxRow.contact_id,
            Message.id,
            Message.status,
            Message.status_reason,
            Message.created_at,
            Message.updated_at,
        )
        .join(Message, Message.id == OutboxRow.message_id)
        .where(OutboxRow.broadcast_id == broadcast_id, Message.tenant_id == tenant_id)
        .order_by(OutboxRow.contact_id, Message.id)
    ).all()
    return [
        {
            "contact_id": cid,
            "message_id": mid,
            "status": status,
            "reason": reason,
            "queued_at": created.isoformat(),
            "updated_at": updated.isoformat(),
        }
        for cid, mid, status, reason, created, updated in rows
    ]


def proof(s: Session, tenant_id: int, broadcast_id: int, actor: str) -> dict[str, Any]:
    """The broadcast's proof as one JSON document; audited."""
    b = get_broadcast(s, tenant_id, broadcast_id)
    definition = b.segment or {}
    recipients = _recipients(s, tenant_id, broadcast_id)
    audit.record(s, tenant_id, actor, "broadcast.proof", f"broadcast:{b.id}", recipients=len(recipients))
    return {
        "broadcast": broadcast_stats.describe(b),
        "chosen_by": {
            "consent": {
                "purpose": b.purpose,
                "min_text_version": b.min_text_version,
                "channel_account_id": b.channel_account_id,
                "rule": CONSENT_RULE,
            },
            "segment": {
                "definition": definition,
                "saved_segment": definition.get("segment"),
                "criteria": [msgid.format(**params) for msgid, params in rules.explain(definition)],
                "evaluated": "when queued, inside the consent rule above: a segment only narrows it",
            },
            "contact_pressure": rules_for(s.get(Tenant, tenant_id)).as_dict(),
        },
        "queuing": {
            "started_at": b.started_at.isoformat() if b.started_at else None,
            "queued_at": b.queued_at.isoformat() if b.queued_at else None,
            "looked_at": b.audience,
            "queued": b.queued,
            "skipped": dict(b.skipped or {}),
        },
        "stats": broadcast_stats.stats(s, b).as_dict(),
        "recipients": recipients,
    }


def export_csv(s: Session, tenant_id: int, broadcast_id: int, actor: str) -> str:
    """One row per message of the broadcast (contact id, outcome and reason); audited."""
    b = get_broadcast(s, tenant_id, broadcast_id)
    recipients = _recipients(s, tenant_id, broadcast_id)
    audit.record(s, tenant_id, actor, "broadcast.export", f"broadcast:{b.id}", recipients=len(recipients))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(recipients)
    return out.getvalue()
