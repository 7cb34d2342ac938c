"""What an agent may send in a conversation right now, and why not (M1, C5, #17).

The reply box is disabled with its reason instead of looking usable and failing on send:
the channel is switched off, there is no legal basis to write to the contact (erased, blocked
the channel, never wrote to us), or the customer-service window is closed (then an approved
template is the way, where the channel has templates). The reasons are English msgids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from konsent.domain.purposes import Purpose, may_send
from konsent.flows.contacts import snapshot
from konsent.store.tables import ChannelAccount, Contact


def N_(msgid: str) -> str:
    return msgid


CHANNEL_OFF = N_("This channel is switched off: nothing is sent until an admin switches it on again.")
ERASED = N_("The contact was erased: nothing can be sent to them.")
UNREACHABLE = N_("The contact blocked this channel: a reply would not reach them.")
NO_BASIS = N_("No legal basis to write to this contact: {detail}.")
WINDOW_TEMPLATE = N_(
    "The {hours}-hour window is closed: only an approved template may be sent until the contact writes again."
)
WINDOW_WAIT = N_(
    "The {hours}-hour window is closed and this channel has no templates:"
    " wait until the contact writes again."
)


@dataclass(frozen=True)
class ComposerState:
    """Whether free text (and files) can go out, whether a template can, and the reason if not."""

    can_reply: bool
    can_template: bool
    reason: str = ""  # msgid, with `hours` / `detail` as placeholders
    hours: int = 0
    detail: str = ""  # an English msgid too (the legal-basis decision's wording)


def composer_state(
    s: Session,
    contact: Contact,
    account: ChannelAccount,
    *,
    window_open: bool,
    window_hours: int | None,
    templates: bool,
    at: datetime,
) -> ComposerState:
    """The composer's state for this contact on this channel account at `at`."""
    if not account.active:
        return ComposerState(False, False, CHANNEL_OFF)
    decision = may_send(snapshot(s, contact), Purpose.parse("service"), at)
    if not decision:
        if decision.reason == "erased":
            return ComposerState(False, False, ERASED)
        if decision.reason == "unreachable":
            return ComposerState(False, False, UNREACHABLE)
        return ComposerState(False, False, NO_BASIS, detail=decision.detail)
    if not window_open:
        hours = window_hours or 24
        if templates:
            return ComposerState(False, True, WINDOW_TEMPLATE, hours=hours)
        return ComposerState(False, False, WINDOW_WAIT, hours=hours)
    return ComposerState(True, False)
