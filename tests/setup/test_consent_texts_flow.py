"""Consent texts per language, versioned and immutable, with a diff (#12 item 3), both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput
from konsent.flows.organisation import consent_texts, tenants
from konsent.flows.privacy import proof
from konsent.store.tables import ConsentText, LedgerEntry
from tests.setup.support import SLUG, TEXT_DE_1, TEXT_DE_2, make_company, subscribe


def _publish(ctx, locale: str, text: str) -> ConsentText:
    with ctx.db.write() as s:
        ct = consent_texts.publish(s, tenants.tenant_by_slug(s, SLUG), locale, text, actor="test")
        s.expunge(ct)
        return ct


def _count(ctx) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ConsentText)) or 0)


def test_editing_a_text_makes_a_new_version_and_the_old_one_stays_exactly_as_given(ctx):
    make_company(ctx)
    v2 = _publish(ctx, "de", TEXT_DE_2)
    with ctx.db.read() as s:
        tid = tenants.tenant_by_slug(s, SLUG).id
        v1 = consent_texts.get_version(s, tid, "de", 1)
        assert (v1.text, v1.current) == (TEXT_DE_1, False)
        assert v1.text_hash == proof_hash(TEXT_DE_1)
        assert (v2.version, v2.current, consent_texts.current(s, tid, "de").version) == (2, True, 2)


def proof_hash(text: str) -> str:
    from konsent.domain.ledger import text_hash

    return text_hash(text)


def test_an_unchanged_text_keeps_the_current_version(ctx):
    make_company(ctx)
    assert _publish(ctx, "de", "  " + TEXT_DE_1 + "\n").version == 1
    assert _count(ctx) == 1


def test_the_proof_of_an_old_consent_still_names_the_text_it_was_given_for(ctx):
    co = make_company(ctx)
    cid = subscribe(ctx, co, "+49 151 0000021", ["bohnen"])
    _publish(ctx, "de", TEXT_DE_2)
    with ctx.db.read() as s:
        granted = s.scalars(select(LedgerEntry).where(LedgerEntry.contact_id == cid)).first()
        assert granted is not None
        old = consent_texts.get_version(s, co.tenant_id, "de", granted.payload["consent_text_version"])
        assert old.text == TEXT_DE_1 and old.text_hash == granted.payload["consent_text_hash"]
        assert proof.verify_ledger(s, co.tenant_id).ok


@pytest.mark.parametrize(
    ("locale", "text"), [("de", ""), ("de", "   \n"), ("fr", "Oui."), ("de", "x" * 5001)]
)
def test_bad_consent_text_is_refused_and_nothing_changes(ctx, locale, text):
    make_company(ctx)
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        consent_texts.publish(s, tenants.tenant_by_slug(s, SLUG), locale, text)
    with ctx.db.read() as s:
        assert consent_texts.current(s, tenants.tenant_by_slug(s, SLUG).id, "de").version == 1
    assert _count(ctx) == 1


def test_languages_are_versioned_separately(ctx):
    make_company(ctx)
    en = _publish(ctx, "en", "Yes, I want messages from Kaffee GmbH.")
    assert en.version == 1
    with ctx.db.read() as s:
        assert consent_texts.current(s, en.tenant_id, "de").version == 1


def test_the_diff_shows_what_changed_between_two_versions(ctx):
    make_company(ctx)
    _publish(ctx, "de", TEXT_DE_2)
    with ctx.db.read() as s:
        tid = tenants.tenant_by_slug(s, SLUG).id
        lines = consent_texts.diff(s, tid, "de", 1, 2)
        unified = consent_texts.unified_diff(s, tid, "de", 1, 2)
    assert [x.text for x in lines if x.kind == "removed"] == [
        "Ja, ich möchte Nachrichten der Kaffee GmbH erhalten."
    ]
    assert [x.text for x in lines if x.kind == "added"] == [
        "Ja, ich möchte Nachrichten der Kaffee GmbH und ihrer Röstereien erhalten."
    ]
    assert [x.text for x in lines if x.kind == "same"] == ["Widerruf jederzeit mit STOP."]
    assert "+Ja, ich möchte Nachrichten der Kaffee GmbH und ihrer Röstereien erhalten." in unified
