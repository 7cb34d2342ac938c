"""Messenger and Instagram messages beyond text, quick replies and media (CH5).

Locations and fallback links, Instagram story replies and mentions, shares, reactions and their removal,
deleted and unsupported messages: each is kept and shown, none dropped. Shapes from
../shared/protocols/messenger-instagram.md and Meta's Messenger Platform webhook reference.
"""

from __future__ import annotations

from typing import Any

from konsent.channels import meta
from konsent.channels.whatsapp_kinds import Parsed
from konsent.domain.received import clip_details, coordinate, map_link

MEDIA = frozenset({"image", "video", "audio", "file"})


def fields(parsed: Parsed) -> dict[str, Any]:
    """The InboundMessage fields a parsed kind fills."""
    return {"text": parsed.text, "kind": parsed.kind, "details": parsed.details, "ref_id": parsed.ref_id}


def _attachment(raw: Any, text: str) -> Parsed | None:
    att = meta.as_dict(raw, "attachment")
    kind = att.get("type")
    payload = meta.as_dict(att.get("payload") or {}, "payload")
    if kind == "location":
        coords = meta.as_dict(payload.get("coordinates") or {}, "coordinates")
        lat, lng = coordinate(coords.get("lat"), "lat"), coordinate(coords.get("long"), "long")
        title = meta.text_of(att.get("title") or payload.get("title"), 300)
        return Parsed(
            "location",
            title,
            clip_details(
                [("name", title), ("latitude", lat), ("longitude", lng), ("map", map_link(lat, lng))]
            ),
        )
    if kind == "story_mention":
        return Parsed(
            "story",
            text,
            clip_details([("type", "story_mention"), ("story_url", meta.text_of(payload.get("url"), 2000))]),
        )
    if kind in MEDIA:
        return None  # media: kept as a reference, fetched on demand (as before)
    url = meta.text_of(payload.get("url"), 2000)
    title = meta.text_of(att.get("title") or payload.get("title"), 300)
    return Parsed(
        "unsupported", text, clip_details([("type", meta.kind_label(kind)), ("title", title), ("url", url)])
    )


def parse_message(msg: dict[str, Any], attachments: list[Any]) -> Parsed | None:
    """A message that is more than text, a quick reply or plain media; None for those."""
    text = meta.text_of(msg.get("text"))
    reply_to = meta.as_dict(msg.get("reply_to") or {}, "reply_to")
    if isinstance(reply_to.get("story"), dict):
        story = reply_to["story"]
        details = clip_details([("type", "story_reply"), ("story_url", meta.text_of(story.get("url"), 2000))])
        return Parsed("story", text, details)
    for raw in attachments:
        try:
            parsed = _attachment(raw, text)
        except (ValueError, TypeError):  # kept, not refused: a 400 would lose the whole batch (CH5)
            return Parsed("unsupported", text, clip_details([("type", "attachment")]))
        if parsed is not None:
            return parsed
    return None


def reaction(r: dict[str, Any]) -> Parsed:
    target = meta.ident(r.get("mid"), "reaction mid")
    if r.get("action") == "unreact":
        return Parsed("reaction", "", clip_details([("removed", "✓")]), target)
    emoji = meta.text_of(r.get("emoji") or r.get("reaction"), 32)
    return Parsed("reaction", emoji, clip_details([("emoji", emoji)]), target)


def deleted_or_unsupported(msg: dict[str, Any], mid: str) -> Parsed:
    if msg.get("is_deleted"):
        return Parsed("revoke", "", (), mid)
    return Parsed("unsupported", "", clip_details([("type", "is_unsupported")]))
