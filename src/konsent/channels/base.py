"""The contract every channel adapter fulfils; flows only ever see this (CH1)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from konsent.domain import interactive
from konsent.domain.events import Event, InboundMessage
from konsent.domain.interactive import Button, LinkButton, ListRow

__all__ = ["Button", "LinkButton", "ListRow"]  # the interactive parts live in domain, shared by all paths

# How konsent's opaque send references begin (`OutboundContent.ref`): an echo carrying anything else
# (another app's metadata) is not ours.
REF_PREFIX = "ko1-"


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do, as data: flows branch on these, never on the channel's name."""

    service_window_hours: int | None = None  # None: the channel has no customer-service window
    templates: bool = False
    buttons: bool = False  # reply buttons (domain.interactive: at most 3 on any channel)
    max_buttons: int = 0
    max_list_rows: int = 0  # a list of choices shown natively (0: none; sent as numbered text)
    max_list_title: int = 0  # the longest row title the channel shows
    list_descriptions: bool = False  # rows may carry a description
    link_buttons: bool = False  # a button that opens an https address
    max_link_text: int = 0  # the longest text above a link button
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
    # The provider echoes `OutboundContent.ref` back in a webhook (status or message echo), so a send
    # of unknown outcome is reconciled instead of resent (#14).
    echoes_ref: bool = False
    # The provider charges per message by country and category (WhatsApp's per-message pricing):
    # such accounts are estimated and count against budgets (CH6, flows.outbound.costs).
    priced_per_message: bool = False

    def can_send_media(self, kind: str, caption: str) -> bool:
        """Whether this channel sends media of `kind` carrying this caption in one message."""
        if kind not in self.media_kinds:
            return False
        if not caption:
            return True
        return kind in self.captioned_kinds and len(caption) <= self.max_caption_len


@dataclass(frozen=True)
class OutboundContent:
    """A message to send: text with optional reply buttons, a list or a link button; or a template.

    With `media_url` set it is a media message (`media_kind` one of
    domain.media.MEDIA_KINDS) and `text` is its caption.
    """

    text: str = ""
    buttons: tuple[Button, ...] = ()
    rows: tuple[ListRow, ...] = ()  # a list message: rows to pick one from ...
    list_button: str = ""  # ... behind a button with this label
    link: LinkButton | None = None  # a call-to-action button that opens an https address
    template: str | None = None
    template_language: str | None = None
    template_params: tuple[str, ...] = ()
    media_url: str | None = None
    media_kind: str | None = None
    media_filename: str | None = None  # documents only: the name the recipient sees
    # The option titles a numbered-text fallback listed, in order: stored so that staff read the
    # contact's "2" as the option it names (CH5, #17). Only for the inbox: never sent.
    numbered: tuple[str, ...] = ()
    # An opaque reference of the outbox row (no personal data), set by the worker for each send;
    # channels with `echoes_ref` pass it to the provider, which echoes it back (#14). Never stored.
    ref: str | None = None
    # The template's category as the registry holds it at claim time (Meta may re-categorise after
    # approval), set by the worker; WhatsApp routes MARKETING to /marketing_messages. Never stored.
    template_category: str | None = None

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
        if self.rows or self.list_button:
            out["list_button"] = self.list_button
            out["rows"] = [{"id": r.id, "title": r.title, "description": r.description} for r in self.rows]
        if self.link is not None:
            out["link"] = {"title": self.link.title, "url": self.link.url}
        if self.numbered:
            out["numbered"] = list(self.numbered)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboundContent:
        link = data.get("link")
        return cls(
            text=data.get("text", ""),
            buttons=tuple(Button(b["id"], b["title"]) for b in data.get("buttons", [])),
            template=data.get("template"),
            template_language=data.get("template_language"),
            template_params=tuple(data.get("template_params", [])),
            media_url=data.get("media_url") or None,
            media_kind=data.get("media_kind") or None,
            media_filename=data.get("media_filename") or None,
            rows=tuple(
                ListRow(str(r["id"]), str(r["title"]), str(r.get("description") or ""))
                for r in data.get("rows") or []
            ),
            list_button=str(data.get("list_button") or ""),
            link=LinkButton(str(link["title"]), str(link["url"])) if isinstance(link, Mapping) else None,
            numbered=tuple(str(n) for n in data.get("numbered") or ()),
        )

    @property
    def interactive(self) -> bool:
        """Reply buttons, a list or a link button."""
        return bool(self.buttons or self.rows or self.link)


def fit(content: OutboundContent, caps: Capabilities) -> OutboundContent:
    """The content as this channel can show it: interactive parts it lacks become numbered text.

    Declared capabilities decide, never the channel's name (CH5); `problems` has checked the content.
    """
    if not content.interactive:
        return content
    if content.buttons and caps.buttons and len(content.buttons) <= caps.max_buttons:
        return content
    rows = content.rows
    if (
        rows
        and len(rows) <= caps.max_list_rows
        and all(len(r.title) <= caps.max_list_title for r in rows)
        and (caps.list_descriptions or not any(r.description for r in rows))
    ):
        return content
    if content.link is not None and caps.link_buttons and len(content.text) <= caps.max_link_text:
        return content
    text = interactive.fallback_text(content.text, content.buttons, rows, content.link)
    offered = tuple(b.title for b in content.buttons) or tuple(r.title for r in rows)
    return OutboundContent(text=text, ref=content.ref, numbered=offered)


class SendOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY_AFTER = "retry_after"  # rate limited: snooze without spending an attempt
    TRANSIENT = "transient"  # retry with backoff
    UNKNOWN = "unknown"  # request went out, no answer: may or may not have been delivered
    PERMANENT = "permanent"
    WINDOW_CLOSED = "window_closed"  # needs a template
    UNREACHABLE = "unreachable"  # contact blocked us
    MARKETING_OPT_OUT = "marketing_opt_out"  # withdraw marketing purposes


_TAG_RE = re.compile(r"<[^>]{0,500}>")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
MAX_PROVIDER_TEXT = 400


def clean_text(text: object, limit: int = MAX_PROVIDER_TEXT) -> str:
    """A provider's words fit to show an admin: no markup, no control characters, one short line."""
    plain = _TAG_RE.sub(" ", str(text or ""))
    plain = " ".join(_CONTROL_RE.sub(" ", plain).replace("<", " ").replace(">", " ").split())
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    provider_id: str | None = None
    retry_after_s: float | None = None
    error_code: str | None = None
    error_text: str = ""

    def __post_init__(self) -> None:
        if self.error_text:  # shown to admins on the message and in exports: never raw provider output
            object.__setattr__(self, "error_text", clean_text(self.error_text))


@dataclass(frozen=True)
class SetupOutcome:
    """What a provider answered to a setup call such as registering the webhook URL."""

    ok: bool
    problem: str = ""  # refused, unreachable, invalid_settings
    detail: str = ""  # the provider's own words, cleaned (`clean_text`; never a secret)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", clean_text(self.detail))


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


class NeedsPrefetch(ValueError):
    """`parse` needs something from the provider first (a sender's key): await `prefetch`, parse again.

    A ValueError, so a caller that cannot prefetch answers 400 and the provider retries.
    """


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

    async def prefetch(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Fetch, asynchronously, what `parse` said it lacks (NeedsPrefetch); parse runs again after."""
        return None

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
