"""`may_send`, the one send-time rule, and purpose parsing (C5, C6, invariant 1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsent.domain.purposes import (
    ConsentState,
    ConsentStatus,
    ContactSnapshot,
    LegalBasis,
    Purpose,
    consent_state,
    may_send,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TOPIC = "newsletter:angebote"

states = st.one_of(
    st.none(),
    st.builds(
        ConsentState,
        status=st.sampled_from(list(ConsentStatus)),
        text_version=st.integers(0, 5),
        changed_at=st.one_of(
            st.none(),
            st.datetimes(
                min_value=datetime(2026, 1, 1),
                max_value=datetime(2026, 11, 24, 11, 59),
                timezones=st.just(UTC),
            ),
        ),
    ),
)
flags = st.booleans()


def snap(state: ConsentState | None, **flags: bool) -> ContactSnapshot:
    return ContactSnapshot(consents={TOPIC: state} if state else {}, **flags)


@settings(max_examples=400, deadline=None)
@given(
    state=states,
    has_contacted_us=flags,
    erased=flags,
    unreachable=flags,
    objected=flags,
    min_version=st.integers(0, 5),
)
def test_newsletter_allowed_iff_active_consent_and_nothing_speaks_against_it(
    state: ConsentState | None,
    has_contacted_us: bool,
    erased: bool,
    unreachable: bool,
    objected: bool,
    min_version: int,
) -> None:
    """C5/C6: marketing needs an active, not withdrawn consent to a recent enough text, for a
    contact that is reachable, not erased and has not objected. Writing to us is not consent."""
    contact = snap(
        state,
        has_contacted_us=has_contacted_us,
        erased=erased,
        unreachable=unreachable,
        objected_to_marketing=objected,
    )
    d = may_send(contact, Purpose.parse(TOPIC), NOW, min_version)
    expected = (
        state is not None
        and state.status is ConsentStatus.ACTIVE
        and state.text_version >= min_version
        and not erased
        and not unreachable
        and not objected
    )
    assert bool(d) is expected
    if expected:
        assert d.basis is LegalBasis.CONSENT and d.reason == "ok"
    else:
        assert d.basis is None and d.reason != "ok" and d.detail


@settings(max_examples=200, deadline=None)
@given(state=states, has_contacted_us=flags, erased=flags, unreachable=flags, objected=flags)
def test_service_allowed_iff_contact_wrote_first_and_is_reachable(
    state: ConsentState | None, has_contacted_us: bool, erased: bool, unreachable: bool, objected: bool
) -> None:
    """Issue 2 step 6: service answers rest on the conversation the contact started, not on consent."""
    contact = snap(
        state,
        has_contacted_us=has_contacted_us,
        erased=erased,
        unreachable=unreachable,
        objected_to_marketing=objected,
    )
    d = may_send(contact, Purpose.parse("service"), NOW)
    assert bool(d) is (has_contacted_us and not erased and not unreachable)
    if d:
        assert d.basis is LegalBasis.CONTRACT_OR_INTEREST


def test_consent_for_one_topic_does_not_cover_another() -> None:
    contact = snap(ConsentState(ConsentStatus.ACTIVE, 1, NOW - timedelta(days=1)))
    d = may_send(contact, Purpose.newsletter("produktnews"), NOW)
    assert not d and d.reason == "no_consent"


def test_withdrawn_consent_names_the_date_in_the_reason() -> None:
    contact = snap(ConsentState(ConsentStatus.WITHDRAWN, 1, datetime(2026, 11, 20, 9, tzinfo=UTC)))
    d = may_send(contact, Purpose.parse(TOPIC), NOW)
    assert not d and d.reason == "withdrawn" and "2026-11-20" in d.detail


def test_consent_given_after_the_send_time_does_not_cover_it() -> None:
    contact = snap(ConsentState(ConsentStatus.ACTIVE, 1, NOW + timedelta(minutes=1)))
    assert may_send(contact, Purpose.parse(TOPIC), NOW).reason == "not_yet_valid"


def test_outdated_consent_text_version_is_refused_with_both_versions() -> None:
    """C6: a campaign that needs text version 3 may not use a consent to version 2."""
    contact = snap(ConsentState(ConsentStatus.ACTIVE, 2, NOW - timedelta(days=1)))
    d = may_send(contact, Purpose.parse(TOPIC), NOW, min_text_version=3)
    assert not d and d.reason == "outdated_text" and "2" in d.detail and "3" in d.detail


def test_writing_to_us_is_no_consent_to_newsletters() -> None:
    """Issue 2 step 6: a contact who asked about an order gets no newsletter."""
    d = may_send(ContactSnapshot(has_contacted_us=True), Purpose.parse(TOPIC), NOW)
    assert not d and d.reason == "no_consent"


@pytest.mark.parametrize("value", ["service", "newsletter:angebote", "newsletter:a", "newsletter:x_1-2"])
def test_purpose_round_trips(value: str) -> None:
    assert str(Purpose.parse(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Service",
        "service ",
        "newsletter",
        "newsletter:",
        "newsletter:Angebote",
        "newsletter:-x",
        "newsletter:a b",
        "newsletter:" + "a" * 64,
        "newsletter:angebote\n",
        "marketing:angebote",
        "newsletter:ä",
        "newsletter:../x",
    ],
)
def test_purpose_parse_rejects_garbage_with_a_reason(value: str) -> None:
    with pytest.raises(ValueError, match="purpose"):
        Purpose.parse(value)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(max_size=70).map(lambda s: "newsletter:" + s)))
def test_purpose_parse_either_rejects_or_round_trips(value: str) -> None:
    """Whatever is accepted is stored and shown exactly as given; nothing else gets through."""
    try:
        p = Purpose.parse(value)
    except ValueError:
        return
    assert str(p) == value
    assert p.is_marketing is value.startswith("newsletter:")


@dataclass
class _Row:
    has_contacted_us: bool = True
    erased_at: datetime | None = None
    wrapped_key: bytes | None = b"key"
    unreachable: bool = False
    objected_marketing: bool = False


@pytest.mark.parametrize(
    ("erased_at", "wrapped_key", "erased"),
    [(None, b"key", False), (NOW, b"key", True), (None, None, True), (NOW, None, True)],
)
def test_a_contact_is_erased_when_marked_so_or_when_its_key_is_gone(erased_at, wrapped_key, erased) -> None:
    """One definition of "erased" (D2): a contact without its key can be neither written to nor read."""
    snap = ContactSnapshot.of(_Row(erased_at=erased_at, wrapped_key=wrapped_key), {})
    assert snap.erased is erased
    assert may_send(snap, Purpose.parse("service"), NOW).reason == ("erased" if erased else "ok")


def test_snapshot_of_carries_every_fact_and_the_consents() -> None:
    consents = {TOPIC: consent_state("active", 2, NOW - timedelta(days=1))}
    snap = ContactSnapshot.of(
        _Row(has_contacted_us=False, unreachable=True, objected_marketing=True), consents
    )
    assert snap == ContactSnapshot(
        consents=consents, has_contacted_us=False, erased=False, unreachable=True, objected_to_marketing=True
    )
    assert consents[TOPIC] == ConsentState(ConsentStatus.ACTIVE, 2, NOW - timedelta(days=1))
    with pytest.raises(ValueError):
        consent_state("maybe", 1, None)
