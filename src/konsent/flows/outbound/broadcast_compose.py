"""Composing a broadcast: the draft with its content, audience rules and segment copy (M3, M5).

Split from `broadcast` (which re-exports these names); the life of a broadcast after composing,
queuing and its state changes, stays there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain import interactive
from konsent.domain.content import require_valid
from konsent.domain.errors import InvalidInput, NotFound
from konsent.domain.interactive import Interactive
from konsent.domain.purposes import Purpose
from konsent.flows.context import Konsent
from konsent.flows.organisation.tenants import get_account, topics
from konsent.flows.outbound import personalise, segments, templates
from konsent.store.tables import Broadcast
from konsent.store.types import utcnow


def content_values(content: dict[str, Any]) -> list[str]:
    return [content.get("text") or "", *(content.get("template_params") or [])]


def create_broadcast(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    *,
    name: str,
    topic: str,
    text: str = "",
    template: str | None = None,
    template_language: str | None = None,
    template_params: list[str] | None = None,
    min_text_version: int = 0,
    segment: dict[str, Any] | None = None,
    segment_id: int | None = None,
    channel_account_id: int | None = None,
    author: str = "",
    media_url: str | None = None,
    media_kind: str | None = None,
    media_filename: str | None = None,
    choices: Interactive | None = None,
) -> Broadcast:
    """Compose a broadcast as a draft; nothing is queued yet (M3).

    With `media_url` it is a media broadcast (an https link to the company's image,
    document, video or audio) and the text is its caption. `choices`: up to 3 reply buttons
    or one link button under the text (numbered text where a channel has none; CH5).
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput(detail="a broadcast needs a name of at most 200 characters")
    if topic not in {t.slug for t in topics(s, tenant_id)}:
        raise InvalidInput("unknown topic {topic}", topic=repr(topic))
    text = text.strip()
    template = (template or "").strip() or None
    params = [str(p) for p in (template_params or [])]
    media_url = (media_url or "").strip() or None
    media_kind = (media_kind or "").strip() or None
    media_filename = (media_filename or "").strip() or None
    language = (template_language or "").strip() or None
    content = OutboundContent(
        text=text,
        template=template,
        template_language=language,
        template_params=tuple(params),
        media_url=media_url,
        media_kind=media_kind,
        media_filename=media_filename,
        **(choices or Interactive()).parts(),
    )
    if content.rows or content.list_button:
        raise InvalidInput(interactive.BROADCAST_CHOICES)
    require_valid(content)  # the rules every sending path shares (M3, CH3)
    personalise.check_variables(s, tenant_id, [text], "the text")
    personalise.check_variables(s, tenant_id, params, "a template variable")
    if min_text_version < 0:
        raise InvalidInput(detail="the minimum consent-text version cannot be negative")
    if channel_account_id is not None:
        acc = get_account(s, tenant_id, channel_account_id)
        require_valid(content, ctx.adapter(acc.kind).capabilities)
    if template is not None and language is not None:
        # Only a template the registry holds as approved, with exactly its variables (M3, CH3).
        templates.require_approved_for_broadcast(s, tenant_id, channel_account_id, template, language, params)
    b = Broadcast(
        tenant_id=tenant_id,
        name=name,
        purpose=str(Purpose.newsletter(topic)),
        content={
            "text": text,
            "template": template,
            "template_language": language,
            "template_params": params,
            **(
                {"media_url": media_url, "media_kind": media_kind, "media_filename": media_filename}
                if media_url
                else {}
            ),
            **{k: v for k, v in content.as_dict().items() if k in ("buttons", "link")},
        },
        min_text_version=min_text_version,
        # a copy of the definition, evaluated inside the topic's consent when queued (M5)
        segment=segments.for_broadcast(s, tenant_id, segment, segment_id),
        channel_account_id=channel_account_id,
        state="draft",
        checkpoint=0,
        audience=0,
        queued=0,
        skipped={},
        author=author,
        created_at=utcnow(),
    )
    s.add(b)
    s.flush()
    return b


def get_broadcast(s: Session, tenant_id: int, broadcast_id: int, lock: bool = False) -> Broadcast:
    """A broadcast of this tenant, or NotFound (invariant 4)."""
    q = select(Broadcast).where(Broadcast.tenant_id == tenant_id, Broadcast.id == broadcast_id)
    b = s.scalars(q.with_for_update() if lock else q).one_or_none()
    if b is None:
        raise NotFound()
    return b


def list_broadcasts(s: Session, tenant_id: int, limit: int = 100) -> list[Broadcast]:
    return list(
        s.scalars(
            select(Broadcast)
            .where(Broadcast.tenant_id == tenant_id)
            .order_by(Broadcast.id.desc())
            .limit(limit)
        ).all()
    )
