"""Hash-chain maths for the consent ledger and the audit log (C3, S4, invariant 3)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


def canonical(payload: Mapping[str, Any]) -> bytes:
    """Serialise an entry the same way on every machine: sorted keys, ISO times, UTF-8."""

    def default(value: Any) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"not serialisable in a ledger entry: {type(value).__name__}")

    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=default).encode()


def entry_hash(prev_hash: str, payload: Mapping[str, Any]) -> str:
    """The hash of one entry: SHA-256 over the previous hash and the canonical payload."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(payload)).hexdigest()


@dataclass(frozen=True)
class ChainEntry:
    seq: int
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying a chain: ok, or the first entry that does not fit."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def verify_chain(entries: Iterable[ChainEntry], head: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain in order and name the first entry whose link or content was changed.

    `head` is the (seq, hash) the chain's head pointer records; without it, deleting the
    newest entries would go unnoticed.
    """
    prev = GENESIS
    expected_seq = 1
    checked = 0
    for e in entries:
        if e.seq != expected_seq:
            return ChainReport(False, checked, e.seq, f"entry {expected_seq} is missing")
        if e.prev_hash != prev:
            return ChainReport(False, checked, e.seq, "link to the previous entry is broken")
        if entry_hash(prev, e.payload) != e.hash:
            return ChainReport(False, checked, e.seq, "entry content was changed")
        prev = e.hash
        expected_seq += 1
        checked += 1
    if head is not None and (head[0] != checked or head[1] != prev):
        if head[0] > checked:
            return ChainReport(False, checked, checked + 1, f"entry {checked + 1} is missing")
        return ChainReport(False, checked, checked or None, "the chain does not end at its recorded head")
    return ChainReport(True, checked)


def text_hash(text: str) -> str:
    """Version hash of a consent text exactly as shown to the contact."""
    return hashlib.sha256(text.encode()).hexdigest()
