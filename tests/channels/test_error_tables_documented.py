"""One table of provider error codes per channel, as data, and its doc lists every code (#16 item 5, CH3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from konsent.channels.base import SendOutcome
from konsent.channels.messenger import MESSENGER_ERRORS
from konsent.channels.meta import GRAPH_ERRORS, HTTP_ERRORS
from konsent.channels.outcomes import Answer, Table, classify, documented_terms
from konsent.channels.telegram import TELEGRAM_ERRORS
from konsent.channels.threema import THREEMA_ERRORS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "channels"
TABLES: dict[str, Table] = {
    "whatsapp.md": GRAPH_ERRORS,
    "360dialog.md": HTTP_ERRORS,  # plus WhatsApp's Graph codes, documented in whatsapp.md
    "messenger.md": MESSENGER_ERRORS,
    "instagram.md": MESSENGER_ERRORS,
    "telegram.md": TELEGRAM_ERRORS,
    "threema.md": THREEMA_ERRORS,
}


@pytest.mark.parametrize("doc", sorted(TABLES))
def test_every_code_a_channels_error_table_decides_on_is_listed_in_its_doc(doc: str) -> None:
    text = (DOCS / doc).read_text(encoding="utf-8")
    missing = sorted(term for term in documented_terms(TABLES[doc]) if f"`{term}`" not in text)
    assert not missing, f"docs/channels/{doc} does not list {missing}"


def test_the_doc_check_sees_codes_subcodes_statuses_and_flags() -> None:
    terms = documented_terms(MESSENGER_ERRORS)
    assert {"551", "10", "2018278", "1545041", "613", "429", "5xx", "is_transient"} <= terms


@pytest.mark.parametrize(
    ("table", "answer", "outcome"),
    [
        (GRAPH_ERRORS, Answer(400, code=131049), SendOutcome.PERMANENT),  # not retried, nobody blamed
        (GRAPH_ERRORS, Answer(400, code=131047), SendOutcome.WINDOW_CLOSED),  # a template is needed
        (GRAPH_ERRORS, Answer(400, code=131026), SendOutcome.UNREACHABLE),
        (GRAPH_ERRORS, Answer(400, code=130429), SendOutcome.RETRY_AFTER),  # pacing, no attempt spent
        (GRAPH_ERRORS, Answer(400, code=131056), SendOutcome.RETRY_AFTER),
        (TELEGRAM_ERRORS, Answer(403, code=403), SendOutcome.UNREACHABLE),  # blocked the bot
        (MESSENGER_ERRORS, Answer(400, code=551), SendOutcome.UNREACHABLE),  # blocked the Page
        (MESSENGER_ERRORS, Answer(400, code=10, subcode=2018278), SendOutcome.WINDOW_CLOSED),
    ],
)
def test_the_codes_the_providers_changed_in_2026_have_their_outcome(
    table: Table, answer: Answer, outcome: SendOutcome
) -> None:
    assert classify(table, answer).outcome is outcome


def test_messengers_closed_window_tells_the_agent_about_the_human_agent_tag() -> None:
    result = classify(MESSENGER_ERRORS, Answer(400, code=10, subcode=2018278, text="(#10) outside window"))
    assert "HUMAN_AGENT" in result.error_text and "7 days" in result.error_text
