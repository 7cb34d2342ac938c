"""Telling people they talk to an automated system, and letting them reach a person (EU AI Act Art. 50).

From 2 August 2026 providers must make sure people are told when they interact with an AI system;
konsent's bot says so in its first message of every session (text per tenant and language, on by
default) and hands over to a person whenever the contact asks for one.
"""

from __future__ import annotations

import re
import unicodedata


def N_(msgid: str) -> str:
    return msgid


DISCLOSURE = N_(
    "You are chatting with an automated assistant. Write “human” at any time to talk to a person."
)
HANDOVER = N_("I am passing you to a person. Someone from our team will answer you here.")

# a short message made of one of these words (or the phrase around it) asks for a person
HUMAN_WORDS = frozenset(
    {"mensch", "menschen", "human", "agent", "person", "mitarbeiter", "mitarbeiterin", "operator"}
)
MAX_WORDS = 6


def wants_human(text: str) -> bool:
    """True when a short message asks for a person: 'Mensch', 'Ich will einen Menschen', 'human please'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = re.findall(r"\w+", folded)
    return 0 < len(words) <= MAX_WORDS and any(w in HUMAN_WORDS for w in words)
