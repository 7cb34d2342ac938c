"""Purposes, legal bases and the one send-time check `may_send` (C5, C6, invariant 1)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

SERVICE = "service"
NEWSLETTER_PREFIX = "newsletter:"
DATA_PREFIX = "data:"  # consent to keep data beyond the conversation (a bot-collected field, M2)
_TOPIC_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")  # \Z: `$` would accept a trailing newline


class LegalBasis(enum.StrEnum):
    """The GDPR article a message rests on."""

    CONSENT = "art6_1_a"  # consent, newsletters
    CONTRACT_OR_INTEREST = "art6_1_b_f"  # one-to-one answers in a conversation the contact started


class ConsentStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Purpose:
    """`service` or `newsletter:<topic>`; every outbound message names one.

    `data:<field>` is a consent purpose too, but for storing a field, not for sending (M2).
    """

    kind: str
    topic: str | None = None

    @classmethod
    def parse(cls, value: str) -> Purpose:
        """Parse a purpose string; raises ValueError with a readable reason."""
        if value == SERVICE:
            return cls(SERVICE)
        if value.startswith(NEWSLETTER_PREFIX):
            topic = value[len(NEWSLETTER_PREFIX) :]
            if _TOPIC_SLUG.match(topic):
                return cls("newsletter", topic)
            raise ValueError(f"invalid topic in purpose: {value!r}")
        if value.startswith(DATA_PREFIX):
            name = value[len(DATA_PREFIX) :]
            if _TOPIC_SLUG.match(name):
                return cls("data", name)
            raise ValueError(f"invalid field in purpose: {value!r}")
        raise ValueError(f"unknown purpose {value!r}; use 'service' or 'newsletter:<topic>'")

    @classmethod
    def newsletter(cls, topic: str) -> Purpose:
        return cls.parse(NEWSLETTER_PREFIX + topic)

    @property
    def is_marketing(self) -> bool:
        return self.kind == "newsletter"

    @property
    def is_data(self) -> bool:
        """A consent to store data, which never carries a message."""
        return self.kind == "data"

    def __str__(self) -> str:
        if self.kind == "data":
            return DATA_PREFIX + str(self.topic)
        return SERVICE if self.kind == SERVICE else NEWSLETTER_PREFIX + str(self.topic)


@dataclass(frozen=True)
class ConsentState:
    """The current state of one purpose for one contact, as the ledger last left it."""

    status: ConsentStatus
    text_version: int = 0
    changed_at: datetime | None = None


_STATUSES = {s.value: s for s in ConsentStatus}


def consent_state(status: str, text_version: int, changed_at: datetime | None) -> ConsentState:
    """A consent row's columns as the state `may_send` judges."""
    try:
        return ConsentState(_STATUSES[status], text_version, changed_at)
    except KeyError:
        raise ValueError(f"unknown consent status {status!r}") from None


class ContactFacts(Protocol):
    """The columns of a contact a send decision reads (an ORM object or a plain row)."""

    @property
    def has_contacted_us(self) -> bool: ...
    @property
    def erased_at(self) -> datetime | None: ...
    @property
    def wrapped_key(self) -> bytes | None: ...
    @property
    def unreachable(self) -> bool: ...
    @property
    def objected_marketing(self) -> bool: ...


def is_erased(contact: ContactFacts) -> bool:
    """Erased: marked so, or its key is gone; nothing can be sealed for or opened from it (D2)."""
    return contact.erased_at is not None or contact.wrapped_key is None


@dataclass(frozen=True)
class ContactSnapshot:
    """What `may_send` needs to know about a contact; built by `of`, judged here."""

    consents: Mapping[str, ConsentState] = field(default_factory=dict)
    has_contacted_us: bool = False  # an inbound message exists: the contact started a conversation
    erased: bool = False
    unreachable: bool = False
    objected_to_marketing: bool = False

    @classmethod
    def of(cls, contact: ContactFacts, consents: Mapping[str, ConsentState]) -> ContactSnapshot:
        """The one way every deciding path builds a snapshot (C5): one meaning of "erased"."""
        return cls(
            consents=consents,
            has_contacted_us=contact.has_contacted_us,
            erased=is_erased(contact),
            unreachable=contact.unreachable,
            objected_to_marketing=contact.objected_marketing,
        )


@dataclass(frozen=True)
class Decision:
    """The answer of `may_send`: allowed with a basis, or refused with a reason code."""

    allowed: bool
    basis: LegalBasis | None
    reason: str  # stable code: ok, erased, unreachable, no_consent, withdrawn, ...
    detail: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def may_send(contact: ContactSnapshot, purpose: Purpose, at: datetime, min_text_version: int = 0) -> Decision:
    """Decide whether a message for `purpose` may go to `contact` at `at` (C5, C6)."""
    if contact.erased:
        return Decision(False, None, "erased", "the contact was erased")
    if contact.unreachable:
        return Decision(False, None, "unreachable", "the contact blocked this channel")
    if purpose.is_data:
        return Decision(False, None, "not_a_message_purpose", "a data consent never carries a message")
    if not purpose.is_marketing:
        if contact.has_contacted_us:
            return Decision(True, LegalBasis.CONTRACT_OR_INTEREST, "ok")
        return Decision(
            False,
            None,
            "no_conversation",
            "service messages answer a conversation the contact started",
        )
    if contact.objected_to_marketing:
        return Decision(False, None, "objected", "the contact objected to direct marketing")
    state = contact.consents.get(str(purpose))
    if state is None:
        return Decision(False, None, "no_consent", "no consent was given for this topic")
    if state.status is ConsentStatus.WITHDRAWN:
        when = state.changed_at.date().isoformat() if state.changed_at else "earlier"
        return Decision(False, None, "withdrawn", f"consent withdrawn {when}")
    if state.changed_at is not None and state.changed_at > at:
        return Decision(False, None, "not_yet_valid", "consent was given after the send time")
    if state.text_version < min_text_version:
        return Decision(
            False,
            None,
            "outdated_text",
            f"consent given for text version {state.text_version}, campaign needs {min_text_version}",
        )
    return Decision(True, LegalBasis.CONSENT, "ok")
