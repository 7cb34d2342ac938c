"""Segment definitions: who of a topic's consented audience a broadcast goes to (M5, M3).

A definition is data, not SQL: a JSON object whose criteria all have to hold (AND). It only
ever narrows the audience; the audience itself is always "active consent for the broadcast's
topic" (flows.outbound.segments applies the criteria inside that consent query), so no
definition can widen who may be written to. Unknown keys and malformed values are refused
with a reason a person can act on (InvalidInput -> 422).

Criteria (every one optional):
    topics                 also subscribed (active consent) to each of these topics
    replied_within_days    wrote to us within the last N days
    not_replied_for_days   has not written to us for at least N days (or never)
    read_last_broadcast    true: read the last broadcast on this topic; false: did not read it
    subscribed_since       consent to the broadcast's topic given on or after this date (YYYY-MM-DD)
    subscribed_before      ... given before this date
    locale                 the contact's language (two letters)
    active_within_days     any activity within the last N days
    inactive_for_days      no activity for at least N days
    has_contacted_us       true/false: the contact has written to us at least once
    label                  one of the contact's conversations carries this label
    has_field              the contact holds this field (collected by the bot with consent)
    contact_labels         the contact carries each of these labels
    attributes             typed attribute conditions: [{"name": key, "op", "value"}], op one of
                           eq ne lt le gt ge (value needed), set, unset
    segment                metadata only: {"id", "name"} of the saved segment it was copied from
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from konsent.domain.errors import InvalidInput

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
MAX_DAYS = 3650
DAY_KEYS = ("replied_within_days", "not_replied_for_days", "active_within_days", "inactive_for_days")
BOOL_KEYS = ("read_last_broadcast", "has_contacted_us")
DATE_KEYS = ("subscribed_since", "subscribed_before")
TEXT_KEYS = ("label", "has_field")
LIST_KEYS = ("topics", "contact_labels")
KEYS = (
    "topics",
    *DAY_KEYS,
    *BOOL_KEYS,
    *DATE_KEYS,
    "locale",
    *TEXT_KEYS,
    "contact_labels",
    "attributes",
    "segment",
)
ATTRIBUTE_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "set", "unset")
MAX_LIST = 20


def _days(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
        raise InvalidInput("{key} must be a whole number of days from 1 to {most}", key=key, most=MAX_DAYS)
    return value


def _date(key: str, value: Any) -> str:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidInput("{key} must be a date written as YYYY-MM-DD", key=key) from None


def _names(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
        raise InvalidInput("{key} must be a list of 1 to {most} names", key=key, most=MAX_LIST)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not 0 < len(item.strip()) <= 63:
            raise InvalidInput("{key} must be a list of 1 to {most} names", key=key, most=MAX_LIST)
        if item.strip() not in out:
            out.append(item.strip())
    return out


def _attribute(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - {"name", "op", "value"} or "name" not in item:
        raise InvalidInput(detail="an attribute condition is an object with name, op and value")
    name, op = item.get("name"), item.get("op", "eq")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 63:
        raise InvalidInput(detail="an attribute condition needs the attribute's name")
    if op not in ATTRIBUTE_OPS:
        raise InvalidInput("op must be one of {choices}", choices=", ".join(ATTRIBUTE_OPS))
    value = item.get("value")
    if op in ("set", "unset"):
        return {"name": name.strip(), "op": op}
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 200:
        raise InvalidInput(detail="an attribute condition's value is a text, a number or a date")
    return {"name": name.strip(), "op": op, "value": value}


def _meta(value: Any) -> dict[str, Any]:
    if (
        not isinstance(value, dict)
        or set(value) - {"id", "name"}
        or not isinstance(value.get("id"), int)
        or not isinstance(value.get("name"), str)
    ):
        raise InvalidInput(detail="segment must be an object with the saved segment's id and name")
    return {"id": value["id"], "name": value["name"][:200]}


def validate(definition: Any) -> dict[str, Any]:
    """A clean copy of a segment definition, or InvalidInput naming the first problem (M5)."""
    if definition is None:
        return {}
    if not isinstance(definition, dict):
        raise InvalidInput(detail="a segment definition is a JSON object of criteria")
    out: dict[str, Any] = {}
    for key, value in definition.items():
        if key not in KEYS:
            raise InvalidInput(
                "unknown segment filter {key}; use: {offered}", key=repr(key), offered=", ".join(KEYS)
            )
        if key in DAY_KEYS:
            out[key] = _days(key, value)
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise InvalidInput("{key} must be true or false", key=key)
            out[key] = value
        elif key in DATE_KEYS:
            out[key] = _date(key, value)
        elif key == "locale":
            if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2}", value.strip()):
                raise InvalidInput(detail="locale must be a two-letter language code")
            out[key] = value.strip()
        elif key in TEXT_KEYS:
            if not isinstance(value, str) or not 0 < len(value.strip()) <= 63:
                raise InvalidInput("{key} must be a name of at most 63 characters", key=key)
            out[key] = value.strip()
        elif key == "topics":
            topics = _names(key, value)
            bad = [t for t in topics if not _NAME.match(t)]
            if bad:
                raise InvalidInput("unknown topic {topic}", topic=repr(bad[0]))
            out[key] = topics
        elif key == "contact_labels":
            out[key] = _names(key, value)
        elif key == "attributes":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
                raise InvalidInput("{key} must be a list of 1 to {most} conditions", key=key, most=MAX_LIST)
            out[key] = [_attribute(item) for item in value]
        else:
            out[key] = _meta(value)
    if "subscribed_since" in out and out["subscribed_since"] >= out.get("subscribed_before", "9999-12-31"):
        raise InvalidInput(detail="subscribed_since must be before subscribed_before")
    return out


def criteria(definition: dict[str, Any]) -> dict[str, Any]:
    """The criteria alone, without the metadata of where the definition came from."""
    return {k: v for k, v in definition.items() if k != "segment"}


# One readable line per criterion, for the broadcast's proof ("who was chosen and why").
_EXPLAIN = {
    "topics": "also subscribed to: {value}",
    "replied_within_days": "wrote to us within the last {value} days",
    "not_replied_for_days": "has not written to us for at least {value} days",
    "read_last_broadcast": "read the last broadcast on this topic: {value}",
    "subscribed_since": "subscribed on or after {value}",
    "subscribed_before": "subscribed before {value}",
    "locale": "language: {value}",
    "active_within_days": "active within the last {value} days",
    "inactive_for_days": "inactive for at least {value} days",
    "has_contacted_us": "has written to us: {value}",
    "label": "a conversation carries the label {value}",
    "has_field": "holds the field {value}",
    "contact_labels": "carries the labels: {value}",
    "attributes": "attributes: {value}",
}


def explain(definition: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(msgid, params) per criterion, in a stable order, for people reading a proof."""
    out: list[tuple[str, dict[str, str]]] = []
    for key in KEYS:
        if key not in definition or key == "segment":
            continue
        value = definition[key]
        if key == "attributes":
            shown = "; ".join(f"{a['name']} {a['op']} {a.get('value', '')}".strip() for a in value)
        elif isinstance(value, list):
            shown = ", ".join(value)
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = str(value)
        out.append((_EXPLAIN[key], {"value": shown}))
    return out
