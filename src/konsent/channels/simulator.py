"""The built-in simulator channel: a web page plays the contact's phone (CH1).

It is a channel like the others: inbound deliveries are signed with the
account's secret and verified, outbound sends go to the simulator's mailbox
(the stand-in for a provider) and come back as status webhooks when the
phone page shows them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlencode

from konsent.channels import media, register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    SetupField,
    WebhookRejected,
    WebhookRequest,
)
from konsent.domain.events import Event, InboundMessage, StatusUpdate, UnknownEvent
from konsent.domain.inputs import loads_json
from konsent.domain.media import MAX_CAPTION, MEDIA_KINDS

SIGNATURE_HEADER = "x-simulator-signature"


class Mailbox(Protocol):
    """The simulator's provider side: where sent messages wait for the phone page."""

    def deliver(self, account_id: int, address: str, content: OutboundContent) -> str: ...


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def page_key(account: AccountConfig) -> str:
    """The key that opens this account's phone page: `<id>.<MAC>`; "" without a signing secret.

    Account ids are small numbers anyone can count through; the MAC makes a simulator link
    unguessable, so a page reveals a tenant only to whom the tenant gave the link (S2, S8)."""
    secret = account.secrets.get("webhook_secret", "")
    if not secret:
        return ""
    mac = hmac.new(secret.encode(), f"simulator-page:{account.id}".encode(), hashlib.sha256).hexdigest()
    return f"{account.id}.{mac[:32]}"


def _ts(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(float(str(value)[:32]), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


@register
class SimulatorChannel(ChannelAdapter):
    kind = "simulator"
    label = "Simulator"
    capabilities = Capabilities(
        service_window_hours=None,
        buttons=True,
        max_buttons=3,
        max_list_rows=10,  # the phone page shows lists, link buttons and reply buttons like WhatsApp
        max_list_title=24,
        list_descriptions=True,
        link_buttons=True,
        max_link_text=1024,
        max_text_len=4096,
        throughput_per_s=1000.0,
        processing_region="this installation",
        safeguard="no transfer",
        # Media by link like the real channels, so media broadcasts can be tried in the demo;
        # the phone page shows a link to the file, it never loads it by itself.
        media_kinds=frozenset(MEDIA_KINDS),
        max_caption_len=MAX_CAPTION,
        captioned_kinds=frozenset(MEDIA_KINDS),
        echoes_ref=True,  # the mailbox reports "sent" with the reference, like WhatsApp's status webhook
    )
    setup_fields = (SetupField("webhook_secret", "Signing secret", secret=True, required=False),)

    def __init__(self, mailbox_factory: Callable[[], Mailbox] | None = None) -> None:
        self._mailbox_factory = mailbox_factory
        # One delivery at a time per phone, in the order the worker hands them over, so a bot's
        # greeting and its question arrive in that order (the other adapters keep order by their
        # per-contact spacing); different phones still go in parallel.
        self._per_phone: dict[tuple[int, str], tuple[asyncio.Lock, list[int]]] = {}

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        secret = account.secrets.get("webhook_secret", "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not secret or not hmac.compare_digest(sign(secret, request.body), given):
            raise WebhookRejected(401, "simulator signature mismatch")

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        data = loads_json(body)
        if not isinstance(data, dict):
            raise ValueError("simulator delivery must be a JSON object")
        events: list[Event] = []
        for m in data.get("messages") or []:
            events.append(
                InboundMessage(
                    provider_id=str(m["id"]),
                    address=str(m["from"]),
                    at=_ts(m.get("timestamp")),
                    text=str(m.get("text", ""))[:4096],
                    kind="button" if m.get("button") else "text",
                    payload=m.get("button"),
                    profile_name=m.get("name"),
                    locale=m.get("locale"),
                )
            )
        for s in data.get("statuses") or []:
            events.append(
                StatusUpdate(
                    provider_id=str(s["id"]),
                    status=str(s["status"]),
                    at=_ts(s.get("timestamp")),
                    ref=str(s["ref"])[:64] if s.get("ref") else None,
                )
            )
        for key in data:
            if key not in ("messages", "statuses"):
                events.append(UnknownEvent(kind=str(key)[:64]))
        return events

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        if content.media_url and not self.capabilities.can_send_media(content.media_kind or "", content.text):
            return media.refuse(content, self.capabilities)  # never the caption alone
        if self._mailbox_factory is None:
            return SendResult(
                SendOutcome.PERMANENT, error_code="no_mailbox", error_text="simulator not wired"
            )
        key = (account.id, address)
        lock, users = self._per_phone.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                # The mailbox writes to the database: in a thread, so the worker's loop keeps sending.
                provider_id = await asyncio.to_thread(
                    self._mailbox_factory().deliver, account.id, address, content
                )
        finally:
            users[0] -= 1
            if not users[0]:
                del self._per_phone[key]  # nobody waits: no lock outlives its event loop
        return SendResult(SendOutcome.SENT, provider_id=provider_id)

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        base = str(account.settings.get("base_url", "")).rstrip("/")
        return f"{base}/simulator?" + urlencode({"account": page_key(account), "text": prefill})
