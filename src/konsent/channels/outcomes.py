"""From a provider's failed answer to a `SendOutcome`, by a table per provider (CH3, #11).

A provider module reads its answer into an `Answer` (HTTP status, the provider's own
error code and subcode, a few named flags, the code and text to record) and hands it to
`classify` with its table. The table is data: an ordered tuple of `Row`s, the first one
that matches decides. Every condition a row names must hold; a row naming none matches
everything (the last row of every table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from konsent.channels.base import SendOutcome, SendResult


@dataclass(frozen=True)
class Answer:
    """A failed provider answer as its adapter read it."""

    status: int  # the status that counts (HTTP, or the provider's own where it has one)
    code: int | None = None  # the provider's error code (None: it gave none)
    subcode: int | None = None
    flags: frozenset[str] = frozenset()  # named facts of the answer, e.g. is_transient
    error_code: str = ""  # what is recorded as the error code
    text: str = ""  # the provider's words (already shortened)


@dataclass(frozen=True)
class Row:
    """One line of a provider's table: conditions (all must hold) → outcome."""

    outcome: SendOutcome
    statuses: frozenset[int] | None = None
    min_status: int | None = None  # any status at or above (e.g. 500)
    codes: frozenset[int | None] | None = None
    subcodes: frozenset[int] | None = None
    flag: str | None = None
    retry_s: float | None = None  # default wait when the answer names none (RETRY_AFTER rows)
    error_code: str | None = None  # record this code instead of the answer's
    error_text: str | None = None  # record this text instead of the answer's

    def matches(self, a: Answer) -> bool:
        return (
            (self.statuses is None or a.status in self.statuses)
            and (self.min_status is None or a.status >= self.min_status)
            and (self.codes is None or a.code in self.codes)
            and (self.subcodes is None or a.subcode in self.subcodes)
            and (self.flag is None or self.flag in a.flags)
        )


Table = tuple[Row, ...]


def classify(table: Table, answer: Answer, retry_after: Callable[[float], float] | None = None) -> SendResult:
    """The outcome of the first matching row; `retry_after(default)` reads the provider's wait."""
    row = next((r for r in table if r.matches(answer)), None)
    if row is None:  # a table always ends in a catch-all; be safe anyway
        row = Row(SendOutcome.PERMANENT)
    wait = None
    if row.outcome is SendOutcome.RETRY_AFTER:
        default = row.retry_s if row.retry_s is not None else 1.0
        wait = retry_after(default) if retry_after is not None else default
    return SendResult(
        row.outcome,
        retry_after_s=wait,
        error_code=row.error_code if row.error_code is not None else answer.error_code,
        error_text=row.error_text if row.error_text is not None else answer.text,
    )


def codes(*values: int | None) -> frozenset[int | None]:
    return frozenset(values)


def documented_terms(table: Table) -> set[str]:
    """Every code a table decides on, as its channel's doc must list it (`131049`, `403`, `5xx`,
    `is_transient`): the docs are checked against the data (#16 item 5)."""
    out: set[str] = set()
    every_5xx = set(range(500, 600))
    for row in table:
        for values in (row.codes, row.subcodes, row.statuses):
            found = {v for v in values or () if v is not None}
            if every_5xx <= found:  # a row naming each server error (Telegram's own error_code)
                found -= every_5xx
                out.add("5xx")
            out.update(str(v) for v in found)
        if row.min_status is not None:
            out.add("5xx" if row.min_status == 500 else f">={row.min_status}")
        if row.flag:
            out.add(row.flag)
    return out


__all__ = ["Answer", "Row", "Table", "classify", "codes", "documented_terms"]
