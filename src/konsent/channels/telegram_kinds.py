"""Telegram messages beyond text, /start and media (CH5): location, venue, contact, polls and the rest.

Shapes from ../shared/protocols/telegram.md and the Bot API's Message object. Anything a private chat
carries that konsent cannot show in detail is still kept, labelled with its Bot API field name.
"""

from __future__ import annotations

from typing import Any

from konsent.channels.whatsapp_kinds import Parsed
from konsent.domain.received import clip_details, coordinate, map_link

# Message fields that are metadata, not content: never the reason a message is "unsupported"
_META = {
    "message_id", "message_thread_id", "from", "sender_chat", "date", "chat", "forward_origin",
    "is_topic_message", "is_automatic_forward", "reply_to_message", "external_reply", "quote",
    "reply_to_story", "via_bot", "edit_date", "has_protected_content", "media_group_id",
    "author_signature", "entities", "caption_entities", "link_preview_options", "reply_markup",
    "has_media_spoiler", "show_caption_above_media", "effect_id", "business_connection_id",
    "sender_business_bot", "sender_boost_count", "is_from_offline", "paid_star_count",
}  # fmt: skip


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a Telegram field must be a string or number")
    return str(value).replace("\x00", "")[:limit]


def _location(loc: Any) -> list[tuple[str, object]]:
    if not isinstance(loc, dict):
        raise ValueError("location must be an object")
    lat, lng = coordinate(loc.get("latitude"), "latitude"), coordinate(loc.get("longitude"), "longitude")
    return [("latitude", lat), ("longitude", lng), ("map", map_link(lat, lng))]


def parse_other(msg: dict[str, Any]) -> Parsed:
    """A private-chat message that is neither text nor media nor /start."""
    if isinstance(msg.get("venue"), dict):
        venue = msg["venue"]
        pairs = [("name", _text(venue.get("title"), 300)), ("address", _text(venue.get("address"), 500))]
        return Parsed(
            "location", pairs[0][1] or pairs[1][1], clip_details([*pairs, *_location(venue.get("location"))])
        )
    if "location" in msg:
        return Parsed("location", "", clip_details(_location(msg["location"])))
    if isinstance(msg.get("contact"), dict):
        c = msg["contact"]
        name = " ".join(p for p in (_text(c.get("first_name"), 100), _text(c.get("last_name"), 100)) if p)
        pairs = [("name", name), ("phone", _text(c.get("phone_number"), 60))]
        return Parsed("contacts", name, clip_details(pairs))
    if isinstance(msg.get("poll"), dict):
        poll = msg["poll"]
        options = poll.get("options") if isinstance(poll.get("options"), list) else []
        pairs = [("title", _text(poll.get("question"), 300))]
        pairs += [("item", _text(o.get("text"), 100)) for o in options if isinstance(o, dict)]
        return Parsed("unsupported", "", clip_details([("type", "poll"), *pairs]))
    content = sorted(k for k in msg if k not in _META)
    return Parsed("unsupported", "", clip_details([("type", (content[0] if content else "empty")[:40])]))
