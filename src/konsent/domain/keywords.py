"""Keyword matching in German and English: STOP, DATEN, LÖSCHEN, INFO (C4, D1, D2, T3)."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Intent(enum.StrEnum):
    WITHDRAW = "withdraw"
    ACCESS = "access"
    ERASE = "erase"
    INFO = "info"


DEFAULT_KEYWORDS: Mapping[Intent, tuple[str, ...]] = {
    Intent.WITHDRAW: ("stop", "stopp", "abmelden", "abbestellen", "unsubscribe", "austragen"),
    Intent.ACCESS: ("daten", "meine daten", "my data"),
    Intent.ERASE: ("löschen", "loeschen", "delete"),
    Intent.INFO: ("info", "datenschutz", "privacy"),
}


@dataclass(frozen=True)
class KeywordMatch:
    """A recognised keyword; `topic` is set when the contact named one topic."""

    intent: Intent
    topic: str | None = None


def normalize(text: str) -> str:
    """Fold case, drop punctuation, symbols and emoji, and collapse white space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] in ("L", "N"):
            kept.append(ch)
        elif cat[0] == "Z" or ch in "\t\n\r":
            kept.append(" ")
        else:
            kept.append(" ")  # punctuation, symbols, emoji separate words but never count
    return " ".join("".join(kept).split())


def match_keyword(
    text: str,
    topics: Mapping[str, Iterable[str]] | None = None,
    keywords: Mapping[Intent, Iterable[str]] | None = None,
) -> KeywordMatch | None:
    """Return the keyword the whole message consists of, or None.

    `topics` maps a topic slug to the names a contact may use for it; "STOP news"
    withdraws only that topic. A message with any other words is not a keyword,
    so "stop sending me the wrong size" reaches a human instead.
    """
    words = normalize(text)
    if not words:
        return None
    table = keywords if keywords is not None else DEFAULT_KEYWORDS
    for key, variants in table.items():
        # Tenant tables come from JSON settings: their intents arrive as plain strings.
        try:
            intent = Intent(key)
        except ValueError:
            continue
        for variant in variants:
            kw = normalize(variant)
            if not kw:
                continue
            if words == kw:
                return KeywordMatch(intent)
            if intent is Intent.WITHDRAW and topics and words.startswith(kw + " "):
                rest = words[len(kw) + 1 :]
                for slug, names in topics.items():
                    if rest in {normalize(n) for n in (slug, *names)}:
                        return KeywordMatch(intent, slug)
    return None
