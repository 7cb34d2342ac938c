"""Contact labels and typed attributes as pure rules: types, values, retention, search folding (M5, L1).

A tenant defines attributes (text, number, date, choice) each with a purpose and a retention
rule; a value is checked and brought into one canonical form here before it is sealed. Name
search works on keyed trigrams of the folded name (lower case, accents removed), built here.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from konsent.domain.errors import InvalidInput

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_LABEL = 40
MAX_TEXT = 500
MAX_OPTIONS = 50
MAX_OPTION = 80
MAX_PURPOSE = 300
MAX_DAYS = 3650
MIN_SEARCH = 3


class AttributeType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"


class Retention(enum.StrEnum):
    """When a contact's value of an attribute is deleted by the retention run (L1)."""

    UNTIL_ERASURE = "until_erasure"  # kept as long as the contact is
    AFTER_LAST_CONTACT = "after_last_contact"  # N days after the contact's last activity
    AFTER_SET = "after_set"  # N days after the value was set or last changed


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute definition as the rules need it."""

    key: str
    type: AttributeType
    options: tuple[str, ...]
    retention: Retention
    retention_days: int | None


def check_label(name: str) -> str:
    """A label name, trimmed; 4xx for an empty or too long one."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A label needs a name.")
    if len(name) > MAX_LABEL:
        raise InvalidInput("A label has at most {limit} characters.", limit=MAX_LABEL)
    return name


def check_definition(
    key: str,
    type_: str,
    options: Sequence[str],
    purpose: str,
    retention: str,
    retention_days: int | None,
) -> AttributeSpec:
    """Validate an attribute definition; every problem is a clear 4xx (M5, L1)."""
    if not KEY_RE.fullmatch(key):
        raise InvalidInput(
            "An attribute key is 1 to 63 lower-case letters, digits or _ and starts with a letter."
        )
    try:
        kind = AttributeType(type_)
    except ValueError:
        raise InvalidInput("Unknown attribute type {type}.", type=type_[:40]) from None
    opts = tuple(dict.fromkeys(o.strip() for o in options if o.strip()))
    if kind is AttributeType.CHOICE:
        if not opts:
            raise InvalidInput("A choice attribute needs at least one option.")
        if len(opts) > MAX_OPTIONS or any(len(o) > MAX_OPTION for o in opts):
            raise InvalidInput(
                "At most {count} options of at most {limit} characters each.",
                count=MAX_OPTIONS,
                limit=MAX_OPTION,
            )
    elif opts:
        raise InvalidInput("Only a choice attribute has options.")
    if not purpose.strip():
        raise InvalidInput("Say for which purpose this attribute is kept.")
    if len(purpose) > MAX_PURPOSE:
        raise InvalidInput("A purpose has at most {limit} characters.", limit=MAX_PURPOSE)
    try:
        rule = Retention(retention)
    except ValueError:
        raise InvalidInput("Unknown retention rule {rule}.", rule=retention[:40]) from None
    if rule is Retention.UNTIL_ERASURE:
        retention_days = None
    elif retention_days is None or not 1 <= retention_days <= MAX_DAYS:
        raise InvalidInput("A retention period is between 1 and {limit} days.", limit=MAX_DAYS)
    return AttributeSpec(key, kind, opts, rule, retention_days)


def parse_value(spec: AttributeSpec, raw: str) -> str:
    """The canonical form of a value of this attribute; 4xx for a value of the wrong type (M5)."""
    value = raw.strip()
    if spec.type is AttributeType.TEXT:
        if len(value) > MAX_TEXT:
            raise InvalidInput("{key}: at most {limit} characters.", key=spec.key, limit=MAX_TEXT)
        if "\x00" in value:
            raise InvalidInput("{key}: not a text.", key=spec.key)
        return value
    if spec.type is AttributeType.NUMBER:
        try:
            number = Decimal(value.replace(",", ".") if value.count(",") == 1 and "." not in value else value)
        except InvalidOperation:
            raise InvalidInput("{key}: not a number.", key=spec.key) from None
        if not number.is_finite() or abs(number) >= Decimal(10) ** 15 or len(value) > 40:
            raise InvalidInput("{key}: not a number.", key=spec.key)
        text = format(number.normalize(), "f")
        return "0" if text in ("-0", "") else text
    if spec.type is AttributeType.DATE:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", value)  # 31.12.2026 as a German office types it
        if m:
            try:
                return date(int(m[3]), int(m[2]), int(m[1])).isoformat()
            except ValueError:
                pass
        raise InvalidInput("{key}: not a date like 2026-12-31.", key=spec.key)
    for option in spec.options:  # "gold" chooses "Gold"
        if fold(option) == fold(value):
            return option
    raise InvalidInput("{key}: not one of the options.", key=spec.key)


def number_of(canonical: str) -> Decimal:
    return Decimal(canonical)


def index_form(canonical: str) -> str:
    """What the blind index of a value is taken of: equal for values a person calls equal."""
    return fold(canonical)


def expiry(spec: AttributeSpec, set_at: datetime, last_contact_at: datetime | None) -> datetime | None:
    """When a value falls due under its attribute's rule; None: kept until erasure (L1)."""
    if spec.retention is Retention.UNTIL_ERASURE or spec.retention_days is None:
        return None
    period = timedelta(days=spec.retention_days)
    if spec.retention is Retention.AFTER_SET:
        return set_at + period
    return max(last_contact_at or set_at, set_at) + period


# --- search folding ------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case, accents removed, ß as ss, whitespace collapsed: 'Jürgen  Weiß' → 'jurgen weiss'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.split())


def trigrams(text: str) -> set[str]:
    """Every three-character window of the folded text (spaces included)."""
    f = fold(text)
    return {f[i : i + 3] for i in range(len(f) - 2)}


def search_grams(term: str) -> set[str]:
    """The trigrams a name search needs to all match; 4xx below three characters."""
    grams = trigrams(term)
    if not grams:
        raise InvalidInput("Search for at least {count} characters.", count=MIN_SEARCH)
    return grams
