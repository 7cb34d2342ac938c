"""Opt-in codes: what the widget shows and the contact sends back (C2)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

# Crockford base32 without I, L, O, U: easy to read aloud and to type.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "KS"
CODE_LEN = 10  # 50 bits of randomness
_CODE_RE = re.compile(rf"(?<![A-Za-z0-9]){PREFIX}[{ALPHABET}]{{{CODE_LEN}}}(?![A-Za-z0-9])", re.I)


def new_code() -> str:
    """A fresh opt-in code, valid as a Telegram start payload and an m.me ref."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))


def find_code(text: str) -> str | None:
    """The opt-in code inside a message (prefilled texts carry words around it), or None."""
    m = _CODE_RE.search(text)
    return m.group(0).upper() if m else None


def code_digest(code: str) -> str:
    """Codes are bearer secrets: only their hash is stored."""
    return hashlib.sha256(code.upper().encode()).hexdigest()


def expires_at(requested_at: datetime, ttl_hours: int) -> datetime:
    return requested_at + timedelta(hours=ttl_hours)
