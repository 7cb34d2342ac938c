"""What konsent says to contacts on its own; msgids are English, catalogs give German (U2)."""

from __future__ import annotations


def N_(msgid: str) -> str:
    """Mark a msgid for extraction; it is translated when sent, in the contact's language."""
    return msgid


CONFIRMED = N_(
    "Thank you! Your subscription is confirmed for: {topics}. You can withdraw at any time by "
    "sending STOP, or STOP and a topic name for one topic. Withdrawal does not affect the "
    "lawfulness of processing before it."
)
CODE_USED = N_("This code has already been used. Your subscription is unchanged.")
CODE_EXPIRED = N_("Sorry, this code has expired. Please sign up again on our website.")
CODE_UNKNOWN = N_("Sorry, we do not know this code. Please check it or sign up again on our website.")
WITHDRAWN = N_("You have unsubscribed from: {topics}. You will get no more messages about this.")
NOTHING_TO_WITHDRAW = N_("You have no active subscriptions with us.")
PREFILL = N_("Sign me up for news from {tenant}. Code: {code}")
TICK_A_TOPIC = N_("Please tick at least one topic.")
UNKNOWN_TOPIC = N_("Unknown topic: {topic}")
