"""Pure chatbot rules: answers, flow checks, business hours, branching (M2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from konsent.domain import flowsteps as fs
from konsent.domain.purposes import ContactSnapshot, Purpose, may_send
from konsent.flows.inbox.bot import DEMO_FLOW

TUESDAY_10_BERLIN = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SUNDAY_10_BERLIN = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "text", "ok", "value"),
    [
        ("email", " Erika@Example.COM ", True, "Erika@example.com"),
        ("email", "erika@", False, ""),
        ("email", "not an address", False, ""),
        ("number", "12 345-67", True, "1234567"),
        ("number", "12a", False, ""),
        ("text", "  Erika  ", True, "Erika"),
        ("text", "   ", False, ""),
        ("text", "x" * 201, False, ""),
    ],
)
def test_answers_are_validated_before_anything_is_stored(kind: str, text: str, ok: bool, value: str) -> None:
    """M2: e-mail, number and text answers are checked; a bad answer is not a value."""
    got = fs.validate_answer(kind, text)
    assert got.ok is ok
    assert got.value == value


def test_data_consent_purpose_parses_but_never_carries_a_message() -> None:
    """M2: `data:<field>` is a consent purpose of its own; may_send refuses it for messages."""
    p = Purpose.parse("data:name")
    assert p.is_data and not p.is_marketing and str(p) == "data:name"
    decision = may_send(ContactSnapshot(has_contacted_us=True), p, TUESDAY_10_BERLIN)
    assert not decision and decision.reason == "not_a_message_purpose"
    with pytest.raises(ValueError):
        Purpose.parse("data:Bad Name")


def test_flow_check_names_the_broken_step() -> None:
    """M2: an import that points to a missing step, or asks for a marketing consent, is refused."""
    bad = {"name": "x", "steps": [{"id": "a", "type": "message", "text": "hi", "next": "nowhere"}]}
    with pytest.raises(fs.FlowError, match="step a: goes to 'nowhere'"):
        fs.parse_flow(bad)
    marketing = {
        "name": "x",
        "steps": [
            {
                "id": "a",
                "type": "consent",
                "text": "ok?",
                "purpose": "newsletter:angebote",
                "yes": "a",
                "no": "a",
            }
        ],
    }
    with pytest.raises(fs.FlowError, match="data consents"):
        fs.parse_flow(marketing)
    with pytest.raises(fs.FlowError, match="keywords"):
        fs.parse_flow({"name": "x", "trigger": {"type": "keyword"}, "steps": [{"id": "a", "type": "end"}]})


def test_demo_flow_asks_consent_before_keeping_the_name() -> None:
    """M2: the name is stored only after the contact said yes to `data:name`."""
    flow = fs.parse_flow(DEMO_FLOW)
    first = fs.start(flow, fs.Situation("de"), TUESDAY_10_BERLIN)
    assert first.waiting == "concern"
    assert [b[0] for b in first.actions[-1].buttons] == ["sales", "support"]  # type: ignore[union-attr]
    picked = fs.advance(flow, "concern", fs.Situation("de"), "2", None)
    assert fs.RouteToTeam("support") in picked.actions
    assert picked.vars == {"concern": "support"} and picked.waiting == "ask_consent"
    declined = fs.advance(flow, "ask_consent", fs.Situation("de", vars=picked.vars), "nein", None)
    assert declined.finished == "handover"
    assert not any(isinstance(a, (fs.GrantConsent, fs.StoreField)) for a in declined.actions)
    agreed = fs.advance(flow, "ask_consent", fs.Situation("de"), "", "yes")
    assert isinstance(agreed.actions[0], fs.GrantConsent) and agreed.actions[0].purpose == "data:name"
    named = fs.advance(flow, "ask_name", fs.Situation("de", frozenset({"data:name"})), "Erika", None)
    assert fs.StoreField("name", "Erika", "data:name") in named.actions
    assert named.finished == "handover"
    # Without the consent the same answer is not stored.
    unnamed = fs.advance(flow, "ask_name", fs.Situation("de"), "Erika", None)
    assert not any(isinstance(a, fs.StoreField) for a in unnamed.actions)


def test_invalid_choice_repeats_the_question() -> None:
    flow = fs.parse_flow(DEMO_FLOW)
    again = fs.advance(flow, "concern", fs.Situation("en"), "banana", None)
    assert again.waiting == "concern"
    assert again.actions[0] == fs.Send("Please pick one of the answers.")


def test_branch_follows_the_choice_and_business_hours_answer_out_of_hours() -> None:
    """M2: branch on an answer; outside business hours the out-of-hours reply is sent."""
    flow = fs.parse_flow(
        {
            "name": "hours",
            "trigger": {"type": "keyword", "keywords": ["termin"]},
            "business_hours": {
                "timezone": "Europe/Berlin",
                "days": {"mon": "09:00-17:00", "tue": ["09:00-12:00", "13:00-17:00"]},
                "out_of_hours": {"de": "Wir sind gerade nicht da.", "en": "We are closed."},
            },
            "steps": [
                {"id": "b", "type": "branch", "var": "kind", "cases": {"vip": "vip"}, "default": "std"},
                {"id": "vip", "type": "end", "text": "VIP"},
                {"id": "std", "type": "end", "text": "Standard"},
            ],
        }
    )
    assert fs.triggers(flow, "Termin bitte", None, False)
    assert not fs.triggers(flow, "kein termin", None, True)
    assert fs.is_open(flow.hours, TUESDAY_10_BERLIN)
    assert not fs.is_open(flow.hours, SUNDAY_10_BERLIN)
    closed = fs.start(flow, fs.Situation("en"), SUNDAY_10_BERLIN)
    assert closed.actions == [fs.Send("We are closed.")] and closed.finished == "handover"
    vip = fs.start(flow, fs.Situation("de", vars={"kind": "vip"}), TUESDAY_10_BERLIN)
    assert vip.actions == [fs.Send("VIP")] and vip.finished == "done"
    assert fs.start(flow, fs.Situation("de"), TUESDAY_10_BERLIN).actions == [fs.Send("Standard")]


def test_a_flow_looping_without_questions_stops_and_hands_over() -> None:
    flow = fs.parse_flow(
        {"name": "loop", "steps": [{"id": "a", "type": "route", "team": "sales", "next": "a"}]}
    )
    assert fs.start(flow, fs.Situation("de"), TUESDAY_10_BERLIN).finished == "handover"


def test_the_documented_flow_example_is_a_valid_flow() -> None:
    """M2: docs/CHATBOT.md's example stays in step with the engine."""
    from pathlib import Path

    import yaml

    doc = (Path(__file__).parents[2] / "docs/CHATBOT.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    flow = fs.parse_flow(yaml.safe_load(example))
    assert flow.hours is not None and flow.steps["name"].purpose == "data:name"
