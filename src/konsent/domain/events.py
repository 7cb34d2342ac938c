"""What channels turn webhooks into, and what flows consume: plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from konsent.domain.costs import Pricing


@dataclass(frozen=True)
class InboundMessage:
    """A message a contact sent us."""

    provider_id: str  # idempotency key of the provider (wamid, update_id, mid ...)
    address: str  # the contact's address on this channel (E.164, chat id, PSID, Threema ID ...)
    at: datetime
    text: str = ""
    kind: str = "text"  # text, button, media, start, or one of domain.received.KINDS
    payload: str | None = None  # button / list / postback id
    optin_code: str | None = None  # /start payload, m.me ref: an opt-in code carried out of band
    profile_name: str | None = None
    locale: str | None = None
    user_id: str | None = None  # WhatsApp business-scoped user id (BSUID)
    media_ref: str | None = None
    account_ref: str | None = None  # provider's id of our account (phone_number_id, page id ...)
    ack_ref: str | None = None  # what the provider wants acknowledged once stored (Telegram callback query)
    # What else the contact sent, as (field, value) pairs: a location's coordinates, a contact card's
    # fields, an order's items, a Flow's answers, an ad referral ... (domain.received says how to show it)
    details: tuple[tuple[str, str], ...] = ()
    ref_id: str | None = None  # the provider id this refers to: a reaction's, an edit's or a revoke's target


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status of a message we sent (CH4)."""

    provider_id: str
    status: str  # sent, delivered, read, failed
    at: datetime
    error_code: str | None = None
    error_title: str | None = None
    address: str | None = None
    account_ref: str | None = None
    ref: str | None = None  # our opaque reference of the send, as the provider echoed it (#14)
    # what the provider charges the message as (WhatsApp `pricing`), and the recipient's country
    pricing: Pricing | None = None
    country: str = ""


@dataclass(frozen=True)
class StatusWatermark:
    """Every message sent to this contact at or before `watermark` reached `status` (CH4).

    Messenger and Instagram report reads (and some deliveries) as a timestamp instead of
    naming the messages.
    """

    address: str
    status: str  # delivered, read
    watermark: datetime
    at: datetime
    provider_id: str = ""  # idempotency key, free of personal data
    account_ref: str | None = None


@dataclass(frozen=True)
class ReachabilityChange:
    """The contact blocked or unblocked us (Telegram my_chat_member, 131026 ...)."""

    address: str
    reachable: bool
    at: datetime
    provider_id: str = ""
    account_ref: str | None = None
    # the contact blocked us on the platform (Telegram "kicked"): a withdrawal of marketing (C4)
    blocked: bool = False


@dataclass(frozen=True)
class MarketingPreference:
    """The contact stopped or resumed marketing on the platform (WhatsApp user_preferences,
    Messenger/Instagram marketing-message opt-ins); `source` names which (C4, CH6)."""

    address: str
    stop: bool
    at: datetime
    provider_id: str = ""
    user_id: str | None = None
    account_ref: str | None = None
    source: str = "provider_preference"


@dataclass(frozen=True)
class UnknownEvent:
    """Something the provider sent that we do not handle: stored, acknowledged, ignored."""

    kind: str
    provider_id: str = ""
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateUpdate:
    """The provider changed a message template: its status, quality rating or category (T4, M1)."""

    name: str
    language: str
    field: str  # status / quality / category
    new: str
    at: datetime
    old: str = ""
    reason: str = ""
    provider_id: str = ""  # idempotency key, free of personal data
    account_ref: str | None = None


Event = (
    InboundMessage
    | StatusUpdate
    | StatusWatermark
    | ReachabilityChange
    | MarketingPreference
    | TemplateUpdate
    | UnknownEvent
)
