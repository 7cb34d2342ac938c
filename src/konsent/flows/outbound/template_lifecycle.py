"""What the provider says about a registered template after approval: status, quality, category (T4, M1).

Meta pauses, disables or rejects templates, rates their quality and may re-categorise a UTILITY
template as MARKETING after approval. Each change is applied to the registry and kept as history;
a template that can no longer be sent pauses the broadcasts that use it, with the reason; a template
that is now MARKETING needs marketing consent at the next send (`templates.require_category_allows`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.events import TemplateUpdate
from konsent.flows import audit
from konsent.flows.outbound import broadcast
from konsent.store.tables import Broadcast, ChannelAccount, MessageTemplate, TemplateEvent

UNSENDABLE = frozenset({"PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION", "DELETED", "LIMIT_EXCEEDED"})
QUALITIES = frozenset({"GREEN", "YELLOW", "RED", "UNKNOWN"})


def apply_update(s: Session, account: ChannelAccount, ev: TemplateUpdate) -> list[int]:
    """Record the change, update the registry, pause affected broadcasts; their ids."""
    row = s.scalars(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == account.tenant_id,
            MessageTemplate.channel_account_id == account.id,
            MessageTemplate.name == ev.name,
            MessageTemplate.language == ev.language,
        )
    ).one_or_none()
    old = ev.old
    if row is not None:
        # the provider's own "previous" value where it sends one, else what the registry held
        if ev.field == "status":
            old, row.status = ev.old or row.status, ev.new[:20]
        elif ev.field == "category":
            old, row.category = ev.old or row.category, ev.new[:20]
        elif ev.field == "quality" and ev.new in QUALITIES:
            old, row.quality = ev.old or row.quality, ev.new
        row.version += 1
        row.updated_at = ev.at
    s.add(
        TemplateEvent(
            tenant_id=account.tenant_id, channel_account_id=account.id, template_id=row.id if row else None,
            name=ev.name, language=ev.language, field=ev.field, old=old[:40], new=ev.new[:40],
            reason=ev.reason[:300], at=ev.at,
        )
    )  # fmt: skip
    audit.record(
        s, account.tenant_id, "provider", f"template.{ev.field}", f"template:{row.id if row else ev.name}",
        old=old, new=ev.new, reason=ev.reason,
    )  # fmt: skip
    if ev.field == "status" and ev.new in UNSENDABLE:
        return _pause_broadcasts(s, account, ev)
    return []


def _pause_broadcasts(s: Session, account: ChannelAccount, ev: TemplateUpdate) -> list[int]:
    paused = []
    for b in s.scalars(
        select(Broadcast).where(
            Broadcast.tenant_id == account.tenant_id, Broadcast.state.in_(broadcast.ACTIVE)
        )
    ):
        content = b.content or {}
        uses = (
            content.get("template") == ev.name
            and (content.get("template_language") or ev.language) == ev.language
        )
        if uses and b.channel_account_id in (None, account.id):
            broadcast.pause(s, b, actor="provider")
            b.paused_reason = f"template {ev.name} ({ev.language}) {ev.new}: {ev.reason}".strip(" :")[:300]
            paused.append(b.id)
    return paused


def history(s: Session, tenant_id: int, template_id: int) -> list[TemplateEvent]:
    return list(
        s.scalars(
            select(TemplateEvent)
            .where(TemplateEvent.tenant_id == tenant_id, TemplateEvent.template_id == template_id)
            .order_by(TemplateEvent.at, TemplateEvent.id)
        )
    )
