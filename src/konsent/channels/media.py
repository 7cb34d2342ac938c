"""Outbound media bodies for each provider's documented shape, and the checks before sending (CH3).

Every adapter that declares `media_kinds` builds its request here, so the provider
modules stay short and the rules (which kinds take a caption, how long it may be)
are read from the adapter's Capabilities, never from its name.
"""

from __future__ import annotations

from typing import Any

from konsent.channels.base import Capabilities, OutboundContent, SendOutcome, SendResult
from konsent.domain.media import media_problem

# Telegram: one Bot API method and parameter per kind; the file goes by URL (telegram.md §3).
TELEGRAM_METHODS = {
    "image": ("sendPhoto", "photo"),
    "document": ("sendDocument", "document"),
    "video": ("sendVideo", "video"),
    "audio": ("sendAudio", "audio"),
}
# Messenger / Instagram attachment types; a document is a `file`.
MESSENGER_TYPES = {"image": "image", "document": "file", "video": "video", "audio": "audio"}


def refusal(content: OutboundContent, caps: Capabilities) -> SendResult | None:
    """A PERMANENT result when this media message cannot go out on this channel, before any request."""
    kind = content.media_kind or ""
    problem = media_problem(content.media_url, kind, content.media_filename)
    if problem:
        return SendResult(SendOutcome.PERMANENT, error_code="invalid_media", error_text=problem)
    if kind not in caps.media_kinds:
        return SendResult(
            SendOutcome.PERMANENT, error_code="no_media", error_text=f"this channel sends no {kind} media"
        )
    if content.interactive or content.template:
        return SendResult(
            SendOutcome.PERMANENT, error_code="invalid_media", error_text="media goes without buttons"
        )
    if content.text and kind not in caps.captioned_kinds:
        return SendResult(
            SendOutcome.PERMANENT,
            error_code="caption_not_supported",
            error_text=f"this channel sends {kind} media without a caption",
        )
    if content.text and len(content.text) > caps.max_caption_len:
        return SendResult(
            SendOutcome.PERMANENT,
            error_code="caption_too_long",
            error_text=f"caption longer than {caps.max_caption_len} characters",
        )
    return None


def refuse(content: OutboundContent, caps: Capabilities) -> SendResult:
    """The refusal of a channel that declares no media at all (its text alone would be the caption)."""
    return refusal(content, caps) or SendResult(SendOutcome.PERMANENT, error_code="no_media")


def whatsapp(content: OutboundContent) -> dict[str, Any]:
    """`type: image|document|video|audio` with `{link, caption, filename}` (Cloud API media messages)."""
    kind = content.media_kind or ""
    media: dict[str, Any] = {"link": content.media_url}
    if content.text and kind != "audio":  # audio messages have no caption
        media["caption"] = content.text
    if kind == "document" and content.media_filename:
        media["filename"] = content.media_filename
    return {"type": kind, kind: media}


def telegram(chat_id: int, content: OutboundContent) -> tuple[str, dict[str, Any]]:
    """(Bot API method, JSON body): the file as an HTTP URL Telegram fetches, the text as `caption`."""
    method, param = TELEGRAM_METHODS[content.media_kind or ""]
    payload: dict[str, Any] = {"chat_id": chat_id, param: content.media_url}
    if content.text:
        payload["caption"] = content.text
    return method, payload


def messenger(content: OutboundContent) -> dict[str, Any]:
    """`message.attachment {type, payload: {url, is_reusable}}`; a message has text or an attachment."""
    return {
        "attachment": {
            "type": MESSENGER_TYPES[content.media_kind or ""],
            "payload": {"url": content.media_url, "is_reusable": True},
        }
    }
