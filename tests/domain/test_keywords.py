"""The keyword matcher: STOP and its variants withdraw, ordinary sentences do not (C4, issue 2 step 5)."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from konsent.domain.keywords import Intent, KeywordMatch, match_keyword, normalize

TOPICS = {
    "angebote": ["Angebote", "Offers"],
    "produktnews": ["Produktneuheiten", "Product news"],
}
STOP_WORDS = ["STOP", "Stop", "stop", "stopp", "STOPP", "ABMELDEN", "abmelden", "abbestellen", "UNSUBSCRIBE"]

# Around a keyword: white space, punctuation and emoji (including ZWJ sequences and variation selectors).
NOISE = [
    *" \t\n\r\u00a0\u2003.,;:!?¡¿-–—…\"'«»()[]*#/\\",
    "🛑",
    "✋️",
    "👋🏽",
    "😡",
    "❌",
    "🙅\u200d♀️",
    "\u200d",
    "\ufe0f",
    "⛔",
]
noise = st.lists(st.sampled_from(NOISE), max_size=8).map("".join)


@pytest.mark.parametrize("word", STOP_WORDS)
def test_stop_variants_withdraw_everything(word: str) -> None:
    """C4: the keyword alone withdraws every topic."""
    assert match_keyword(word, TOPICS) == KeywordMatch(Intent.WITHDRAW)


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(STOP_WORDS), before=noise, after=noise)
@example(word="STOP", before="", after="!!!")
@example(word="Stop", before="🛑 ", after=" 🛑")
@example(word="abbestellen", before="  ", after=" 🙏")
def test_stop_with_whitespace_punctuation_and_emoji_still_withdraws(
    word: str, before: str, after: str
) -> None:
    """C4: "  STOP!!! 🛑" is the same as "STOP"."""
    assert match_keyword(before + word + after, TOPICS) == KeywordMatch(Intent.WITHDRAW)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("STOP Angebote", "angebote"),
        ("stop angebote", "angebote"),
        ("Stopp ANGEBOTE!", "angebote"),
        ("STOP Offers", "angebote"),
        ("STOP angebote", "angebote"),
        ("abmelden Produktneuheiten", "produktnews"),
        ("UNSUBSCRIBE product news 👋", "produktnews"),
        ("STOP produktnews", "produktnews"),
    ],
)
def test_stop_with_topic_name_or_slug_withdraws_that_topic_only(text: str, slug: str) -> None:
    """Issue 2 step 5: "STOP <topic>" withdraws one topic."""
    assert match_keyword(text, TOPICS) == KeywordMatch(Intent.WITHDRAW, slug)


@pytest.mark.parametrize(
    "text",
    [
        "Stop, where is my order?",
        "stop sending me the wrong size",
        "Bitte nicht stoppen",
        "STOP STOP",
        "STOP Wetter",  # not a topic: a human reads it
        "Ich will mich abmelden, aber erst nächste Woche",
        "stopper",
        "unsubscribed",
        "",
        "   ",
        "🛑",
    ],
)
def test_sentences_containing_stop_are_not_a_withdrawal(text: str) -> None:
    """Only a message that consists of the keyword withdraws; sentences reach a human (C4)."""
    assert match_keyword(text, TOPICS) is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("DATEN", Intent.ACCESS),
        ("Meine Daten?", Intent.ACCESS),
        ("LÖSCHEN", Intent.ERASE),
        ("info", Intent.INFO),
    ],
)
def test_other_keywords_are_recognised(text: str, intent: Intent) -> None:
    m = match_keyword(text, TOPICS)
    assert m is not None and m.intent is intent and m.topic is None


def test_topic_suffix_only_applies_to_withdrawal() -> None:
    assert match_keyword("DATEN Angebote", TOPICS) is None


def test_tenant_keywords_loaded_from_json_settings_still_withdraw() -> None:
    """Tenant keyword tables come from JSON settings, so their intents are plain strings."""
    table = {"withdraw": ["halt", "stop"], "access": ["auskunft"]}
    m = match_keyword("HALT!", TOPICS, table)
    assert m is not None and m.intent is Intent.WITHDRAW and m.topic is None
    assert match_keyword("halt angebote", TOPICS, table) == KeywordMatch(Intent.WITHDRAW, "angebote")
    m = match_keyword("Auskunft", TOPICS, table)
    assert m is not None and m.intent is Intent.ACCESS


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes_the_matcher(text: str) -> None:
    m = match_keyword(text, TOPICS)
    assert m is None or isinstance(m.intent, Intent)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20))
def test_extra_words_after_stop_are_never_a_full_withdrawal(word: str) -> None:
    """ "STOP <anything that is not a topic>" never withdraws everything.

    A "word" that NFKC folds into no letter or digit at all (U+FE70, an isolated Arabic vowel
    sign, becomes a space and a combining mark) adds no word: "STOP ﹰ" is plain STOP."""
    assume(normalize(word))
    m = match_keyword(f"STOP {word}", TOPICS)
    assert m is None or (m.intent is Intent.WITHDRAW and m.topic in TOPICS)
