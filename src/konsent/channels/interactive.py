"""Outbound interactive bodies in each provider's documented shape: reply buttons, lists, link buttons.

Every adapter builds its request here, like `channels.media`, so the provider modules stay
short. What a channel can show is its Capabilities; what it cannot was already turned into
numbered text by `base.fit` when the message was queued (CH5).
"""

from __future__ import annotations

from typing import Any

from konsent.channels.base import OutboundContent


def whatsapp(content: OutboundContent) -> dict[str, Any]:
    """`interactive` of a reply-button, list or cta_url message (whatsapp-cloud.md §5.2)."""
    body = {"text": content.text[:1024]}
    if content.rows:
        rows = []
        for r in content.rows[:10]:
            row = {"id": r.id[:200], "title": r.title[:24]}
            if r.description:
                row["description"] = r.description[:72]
            rows.append(row)
        action: dict[str, Any] = {"button": content.list_button[:20], "sections": [{"rows": rows}]}
        return {"type": "list", "body": body, "action": action}
    if content.link is not None:
        params = {"display_text": content.link.title[:20], "url": content.link.url}
        return {"type": "cta_url", "body": body, "action": {"name": "cta_url", "parameters": params}}
    buttons = [
        {"type": "reply", "reply": {"id": b.id[:256], "title": b.title[:20]}} for b in content.buttons[:3]
    ]
    return {"type": "button", "body": body, "action": {"buttons": buttons}}


def telegram_markup(content: OutboundContent) -> dict[str, Any] | None:
    """`reply_markup.inline_keyboard`: one row per button or list row, or one URL button (telegram.md §3)."""
    if content.link is not None:
        return {"inline_keyboard": [[{"text": content.link.title, "url": content.link.url}]]}
    choices = [(b.id, b.title) for b in content.buttons] or [(r.id, r.title) for r in content.rows]
    if not choices:
        return None
    return {"inline_keyboard": [[{"text": title, "callback_data": ident}] for ident, title in choices]}


def messenger(content: OutboundContent, max_quick_replies: int) -> dict[str, Any]:
    """`message` of the Send API: text with quick replies (buttons, list rows) or a button template
    with a `web_url` button (messenger-instagram.md §3; Meta "Button template": text up to 640)."""
    if content.link is not None:
        button = {"type": "web_url", "url": content.link.url, "title": content.link.title[:20]}
        payload = {"template_type": "button", "text": content.text[:640], "buttons": [button]}
        return {"attachment": {"type": "template", "payload": payload}}
    message: dict[str, Any] = {"text": content.text}
    choices = [(b.id, b.title) for b in content.buttons] or [(r.id, r.title) for r in content.rows]
    if choices:
        message["quick_replies"] = [
            {"content_type": "text", "title": title[:20], "payload": ident[:1000]}
            for ident, title in choices[:max_quick_replies]
        ]
    return message
