"""One table per provider from status / provider code to SendOutcome (#11 item 5, CH3)."""

from __future__ import annotations

import pytest

from konsent.channels.base import SendOutcome
from konsent.channels.messenger import MESSENGER_ERRORS
from konsent.channels.meta import GRAPH_ERRORS, HTTP_ERRORS
from konsent.channels.outcomes import Answer, Row, classify
from konsent.channels.telegram import TELEGRAM_ERRORS
from konsent.channels.threema import THREEMA_ERRORS

TABLES = {
    "graph": GRAPH_ERRORS,
    "http": HTTP_ERRORS,
    "messenger": MESSENGER_ERRORS,
    "telegram": TELEGRAM_ERRORS,
    "threema": THREEMA_ERRORS,
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_is_rows_of_data_ending_in_a_catch_all(name: str) -> None:
    table = TABLES[name]
    assert all(isinstance(r, Row) for r in table)
    last = table[-1]
    assert (last.statuses, last.min_status, last.codes, last.subcodes, last.flag) == (None,) * 5
    assert last.outcome is SendOutcome.PERMANENT


def test_the_first_matching_row_decides() -> None:
    """A 429 that also names an unreachable code is rate limiting: order is part of the table."""
    assert classify(GRAPH_ERRORS, Answer(429, code=131026)).outcome is SendOutcome.RETRY_AFTER
    assert classify(GRAPH_ERRORS, Answer(400, code=131026)).outcome is SendOutcome.UNREACHABLE
    closed = classify(MESSENGER_ERRORS, Answer(400, code=551, subcode=1545041))
    assert closed.outcome is SendOutcome.WINDOW_CLOSED
    assert classify(MESSENGER_ERRORS, Answer(400, code=551)).outcome is SendOutcome.UNREACHABLE


def test_a_retry_row_asks_the_provider_for_its_wait_with_the_rows_default() -> None:
    asked: list[float] = []
    result = classify(THREEMA_ERRORS, Answer(429, error_code="429"), lambda d: asked.append(d) or d)
    assert (result.outcome, result.retry_after_s, asked) == (SendOutcome.RETRY_AFTER, 10.0, [10.0])
    assert result.error_text == "rate limit reached"


def test_whatsapps_per_user_marketing_limit_is_never_retried_and_blames_nobody() -> None:
    """131049 (#16 item 5): even when Meta marks the answer transient or answers 5xx, the message
    is failed once, not retried, and the contact is neither unreachable nor opted out."""
    for status, flags in ((400, frozenset()), (500, frozenset({"is_transient"}))):
        result = classify(GRAPH_ERRORS, Answer(status=status, code=131049, flags=flags, error_code="131049"))
        assert result.outcome is SendOutcome.PERMANENT
        assert result.error_code == "131049"
