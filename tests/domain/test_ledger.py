"""Hash-chain maths: any change to any entry is found and named by its seq (C3, invariant 3)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from konsent.domain.ledger import GENESIS, ChainEntry, canonical, entry_hash, text_hash, verify_chain


def build(payloads: list[dict[str, Any]]) -> list[ChainEntry]:
    prev = GENESIS
    out = []
    for i, p in enumerate(payloads, start=1):
        h = entry_hash(prev, p)
        out.append(ChainEntry(i, p, prev, h))
        prev = h
    return out


def payload(i: int) -> dict[str, Any]:
    return {"contact_id": i, "purpose": "newsletter:angebote", "action": "granted", "ip_hash": "ab" * 8}


json_values = st.one_of(st.text(max_size=10), st.integers(-(10**6), 10**6), st.booleans(), st.none())
payloads = st.lists(
    st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4), min_size=1, max_size=8
)


def test_intact_chain_verifies() -> None:
    r = verify_chain(build([payload(i) for i in range(5)]))
    assert r.ok and r.checked == 5 and r.first_broken_seq is None


def test_empty_chain_verifies() -> None:
    assert verify_chain([]).ok


@settings(max_examples=300, deadline=None)
@given(data=st.data(), ps=payloads)
def test_changing_any_field_of_any_entry_names_that_entry(
    data: st.DataObject, ps: list[dict[str, Any]]
) -> None:
    chain = build(ps)
    k = data.draw(st.integers(0, len(chain) - 1))
    e = chain[k]
    what = data.draw(st.sampled_from(["payload_value", "payload_key", "prev_hash", "hash"]))
    if what == "payload_value":
        p = dict(e.payload)
        key = data.draw(st.sampled_from(sorted(p))) if p else "added"
        p[key] = data.draw(json_values.filter(lambda v: v != e.payload.get(key) or key not in e.payload))
        tampered = dataclasses.replace(e, payload=p)
    elif what == "payload_key":
        tampered = dataclasses.replace(e, payload={**e.payload, "tampered": True})
    elif what == "prev_hash":
        tampered = dataclasses.replace(e, prev_hash="f" * 64 if e.prev_hash != "f" * 64 else "e" * 64)
    else:
        tampered = dataclasses.replace(e, hash="f" * 64 if e.hash != "f" * 64 else "e" * 64)
    chain[k] = tampered
    r = verify_chain(chain)
    assert not r.ok
    assert r.first_broken_seq == e.seq
    assert r.checked == k


def test_recomputed_entry_breaks_the_link_of_the_next() -> None:
    """An attacker who edits entry 2 and fixes its hash is caught at entry 3."""
    chain = build([payload(i) for i in range(4)])
    p = {**chain[1].payload, "action": "withdrawn"}
    chain[1] = ChainEntry(2, p, chain[1].prev_hash, entry_hash(chain[1].prev_hash, p))
    r = verify_chain(chain)
    assert not r.ok and r.first_broken_seq == 3 and "link" in r.reason


def test_deleted_entry_is_reported_missing() -> None:
    chain = build([payload(i) for i in range(4)])
    del chain[1]
    r = verify_chain(chain)
    assert not r.ok and r.first_broken_seq == 3 and "entry 2 is missing" in r.reason


def test_canonical_form_is_stable_and_key_order_free() -> None:
    at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    a = canonical({"b": 1, "a": "ü", "at": at})
    b = canonical({"at": at, "a": "ü", "b": 1})
    assert a == b == b'{"a":"\\u00fc","at":"2026-11-24T12:00:00+00:00","b":1}'


def test_text_hash_changes_with_any_character() -> None:
    assert text_hash("Ja, ich möchte") != text_hash("Ja, ich möchte.")
    assert len(text_hash("x")) == 64


def test_removing_the_newest_entries_is_caught_against_the_recorded_head() -> None:
    """Without the head pointer a shortened chain would still look intact."""
    chain = build([payload(i) for i in range(4)])
    head = (4, chain[-1].hash)
    assert verify_chain(chain, head=head).ok
    r = verify_chain(chain[:2], head=head)
    assert not r.ok and r.first_broken_seq == 3 and "entry 3 is missing" in r.reason
    r = verify_chain([], head=head)
    assert not r.ok and r.first_broken_seq == 1


def test_head_that_does_not_match_the_last_entry_is_reported() -> None:
    chain = build([payload(i) for i in range(2)])
    r = verify_chain(chain, head=(2, "0" * 64))
    assert not r.ok and r.first_broken_seq == 2
    assert verify_chain([], head=(0, GENESIS)).ok
