"""Input hygiene shared by every door: JSON depth, NUL, lone surrogates, integer ranges (#13 finding 8).

Standard library only. Webhook parsers load JSON through `loads_json`; every event a
parser returns passes `checked_event` before anything is stored; the web layer's
`InputHygiene` middleware applies `text_problem` / `json_problem` to every other request.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from typing import Any

MAX_DEPTH = 64  # no provider payload nests deeper than about 10
INT64 = 2**63
_OPENERS = (b"[", b"{")
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET_RE = re.compile(rb"[\[\]{}]")
_SUSPICIOUS_ESCAPE_RE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_LONG_INT_RE = re.compile(rb"[:\[,]\s*-?\d{19,}")


class InputProblem(ValueError):
    """Input a door refuses with a 4xx and this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    depth = deepest = 0
    for m in _BRACKET_RE.finditer(_STRING_RE.sub(b'""', raw)):
        if m.group() in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def too_deep(raw: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Cheap: only a body with more openers than the limit is scanned at all."""
    return raw.count(b"[") + raw.count(b"{") > max_depth and json_depth(raw) > max_depth


def loads_json(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads that refuses deep nesting before parsing (ValueError, never RecursionError)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if too_deep(data, max_depth):
        raise InputProblem("too_deep", "JSON nested too deeply")
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise InputProblem("too_deep", "JSON nested too deeply") from exc


def text_problem(value: str) -> str:
    """ "" when the text is storable; else why not (NUL or a lone surrogate)."""
    if "\x00" in value:
        return "nul"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "surrogate"
    return ""


def clean_text(value: str) -> str:
    """The text without NUL and with lone surrogates replaced (for free text from providers)."""
    if not text_problem(value):
        return value
    value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")


def json_problem(raw: bytes, max_depth: int = MAX_DEPTH) -> str:
    """Why a JSON request body must be refused ("" when it may be parsed): depth, NUL, surrogates, ints."""
    if too_deep(raw, max_depth):
        return "too_deep"
    if _LONG_INT_RE.search(raw) or _SUSPICIOUS_ESCAPE_RE.search(raw):  # rare: then look closely
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return ""  # the app's own parser answers malformed JSON
        return _walk_problem(data)
    return ""


def int_out_of_range(value: int) -> bool:
    """Beyond a database BIGINT (the widest integer column)."""
    return not -INT64 <= value < INT64


def _walk_problem(data: Any) -> str:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, int) and int_out_of_range(item):
            return "integer_out_of_range"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


# --- events from provider webhooks -------------------------------------------------------------

# Identifier fields: refused when malformed (the delivery is answered 400); lengths fit the columns.
_ID_LIMITS = {
    "provider_id": 200,
    "address": 256,
    "status": 16,
    "kind": 64,
    "optin_code": 64,
    "locale": 16,
    "user_id": 200,
    "account_ref": 200,
    "ack_ref": 200,
    "error_code": 100,
}
# Free text: cleaned and shortened, never refused (a provider must not retry a message for days).
_TEXT_LIMITS = {"text": 4096, "payload": 1000, "profile_name": 128, "media_ref": 2000, "error_title": 300}


_FIELDS: dict[type, tuple[str, ...]] = {}
_REQUIRED_IDS = frozenset({"provider_id", "status", "kind"})


def _bad_time(value: Any) -> bool:
    return not isinstance(value, datetime) or value.tzinfo is None or not 1970 <= value.year <= 2200


def checked_event(ev: Any) -> Any:
    """The event with storable strings, or InputProblem: wrong types, NUL, over-long ids, bad times."""
    names = _FIELDS.get(type(ev))
    if names is None:
        names = _FIELDS[type(ev)] = tuple(f.name for f in dataclasses.fields(ev))
    changes: dict[str, Any] = {}
    for name in names:
        value = getattr(ev, name)
        limit = _ID_LIMITS.get(name)
        if limit is not None:
            if value is None and name not in _REQUIRED_IDS:
                continue
            if not isinstance(value, str):
                raise InputProblem("bad_type", f"{name} must be a string")
            if len(value) > limit or text_problem(value):
                if name != "kind":
                    raise InputProblem("bad_id", f"{name} is not a valid identifier")
                changes[name] = clean_text(value)[:limit] or "unknown"  # our label of an ignored event
        elif name in _TEXT_LIMITS:
            if value is None:
                continue
            if not isinstance(value, str):
                raise InputProblem("bad_type", f"{name} must be a string")
            cleaned = clean_text(value)[: _TEXT_LIMITS[name]]
            if cleaned != value:
                changes[name] = cleaned
        elif name in ("at", "watermark") and _bad_time(value):
            raise InputProblem("bad_time", f"{name} is not a valid time")
    return dataclasses.replace(ev, **changes) if changes else ev


__all__ = [
    "INT64",
    "MAX_DEPTH",
    "InputProblem",
    "checked_event",
    "clean_text",
    "int_out_of_range",
    "json_depth",
    "json_problem",
    "loads_json",
    "text_problem",
    "too_deep",
]
