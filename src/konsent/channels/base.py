"""The contract every channel adapter fulfils; flows only ever see this (CH1)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from konsent.domain.events import Event, InboundMessage


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do, as data: flows branch on these, never on the channel's name."""

    service_window_hours: int | None = None  # None: the channel has no customer-service window
    templates: bool = False
    buttons: bool = False
    max_buttons: int = 0
    max_text_len: int = 4096
    throughput_per_s: float = 50.0  # per channel account
    per_contact_interval_s: float = 0.0  # minimum spacing between two messages to one contact
    per_contact_burst: int = 1  # messages to one contact allowed at once before that spacing applies
    receives_inbound: bool = True
    address_is_phone: bool = True  # contacts' addresses are phone numbers (normalised to E.164 on import)
    processing_region: str = ""  # where the provider processes data (S7)
    safeguard: str = ""  # legal instrument for a third-country transfer (S7)
    media_kinds: frozenset[str] = frozenset()  # outbound media by link: image, document, video, audio
    max_caption_len: int = 0  # text sent along with media; 0: media goes without text
    captioned_kinds: frozenset[str] = frozenset()  # the media kinds that take a caption at all

    def can_send_media(self, kind: str, caption: str) -> bool:
        """Whether this channel sends media of `kind` carrying this caption in one message."""
        if kind not in self.media_kinds:
            return False
        if not caption:
            return True
        return kind in self.captioned_kinds and len(caption) <= self.max_caption_len


@dataclass(frozen=True)
class Button:
    id: str
    title: str


@dataclass(frozen=True)
class OutboundContent:
    """A message to send: text, optional buttons, or a template with variables.

    With `media_url` set it is a media message (`media_kind` one of
    domain.media.MEDIA_KINDS) and `text` is its caption.
    """

    text: str = ""
    buttons: tuple[Button, ...] = ()
    template: str | None = None
    template_language: str | None = None
    template_params: tuple[str, ...] = ()
    media_url: str | None = None
    media_kind: str | None = None
    media_filename: str | None = None  # documents only: the name the recipient sees

    @property
    def has_body(self) -> bool:
        """Something to send: text, a template or media."""
        return bool(self.text or self.template or self.media_url)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "buttons": [{"id": b.id, "title": b.title} for b in self.buttons],
            "template": self.template,
            "template_language": self.template_language,
            "template_params": list(self.template_params),
        }
        if self.media_url:  # only then: text bodies stay as they were
            out.update(
                media_url=self.media_url, media_kind=self.media_kind, media_filename=self.media_filename
            )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboundContent:
        return cls(
            text=data.get("text", ""),
            buttons=tuple(Button(b["id"], b["title"]) for b in data.get("buttons", [])),
            template=data.get("template"),
            template_language=data.get("template_language"),
            template_params=tuple(data.get("template_params", [])),
            media_url=data.get("media_url") or None,
            media_kind=data.get("media_kind") or None,
            media_filename=data.get("media_filename") or None,
        )


class SendOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY_AFTER = "retry_after"  # rate limited: snooze without spending an attempt
    TRANSIENT = "transient"  # retry with backoff
    UNKNOWN = "unknown"  # request went out, no answer: may or may not have been delivered
    PERMANENT = "permanent"
    WINDOW_CLOSED = "window_closed"  # needs a template
    UNREACHABLE = "unreachable"  # contact blocked us
    MARKETING_OPT_OUT = "marketing_opt_out"  # withdraw marketing purposes


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    provider_id: str | None = None
    retry_after_s: float | None = None
    error_code: str | None = None
    error_text: str = ""


@dataclass(frozen=True)
class SetupOutcome:
    """What a provider answered to a setup call such as registering the webhook URL."""

    ok: bool
    problem: str = ""  # refused, unreachable, invalid_settings
    detail: str = ""  # the provider's own words, as it sent them (never a secret)


@dataclass(frozen=True)
class AccountConfig:
    """A channel account as an adapter sees it: public settings plus decrypted secrets."""

    id: int
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes


class WebhookRejected(Exception):
    """Authentication of an inbound webhook failed: answer 401/403, store nothing."""

    def __init__(self, status: int = 403, reason: str = "signature mismatch") -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class TemplateFetch:
    """The provider's message templates as it lists them (Meta's `data` entries), or why not."""

    items: list[dict[str, Any]]
    error: str = ""  # "" / unsupported / no_account_id / refused / unreachable / bad_answer


@dataclass(frozen=True)
class SetupField:
    """One thing an admin enters to connect an account (shown in the admin's channel form)."""

    name: str
    label: str  # English msgid; the admin translates it
    secret: bool = False  # sealed with the tenant key, never shown again
    help: str = ""
    required: bool = True
    # a value the provider would refuse is refused before saving (U5): full match, case-insensitive
    pattern: str = ""
    pattern_hint: str = ""  # English msgid saying what is expected


class ChannelAdapter:
    """Base class of an adapter: verify, parse, send, link."""

    kind: ClassVar[str]
    label: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    setup_fields: ClassVar[tuple[SetupField, ...]] = ()
    registers_webhook: ClassVar[bool] = False  # konsent can point the provider at its webhook URL

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Raise WebhookRejected unless the request is authentic (CH2)."""
        raise NotImplementedError

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> str | None:
        """Answer a provider's GET verification, or None when the channel has none."""
        return None

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        """Turn every event of one delivery into events (CH2)."""
        raise NotImplementedError

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        """Hand one message to the provider and map its answer (CH3)."""
        raise NotImplementedError

    async def acknowledge(self, account: AccountConfig, event: InboundMessage) -> None:
        """Tell the provider an event with an `ack_ref` was stored (Telegram: stop the button's spinner).

        Called after the event is committed; raising only gets counted, the event stays stored.
        """
        return None

    async def register_webhook(self, account: AccountConfig, url: str) -> SetupOutcome:
        """Point the provider's webhook for this account at `url`, with the account's secret."""
        raise NotImplementedError

    async def fetch_media(self, account: AccountConfig, media_ref: str) -> tuple[bytes, str] | None:
        """Download an inbound attachment by its reference (bytes, content type), or None."""
        return None

    async def fetch_templates(self, account: AccountConfig) -> TemplateFetch:
        """The account's approved and pending message templates, where the provider lists them."""
        return TemplateFetch([], "unsupported")

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        """The link that opens the contact's messenger with the opt-in code (C2)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release HTTP sessions."""
