"""Contact search over sealed data: name fragment, number, label, attribute; tenant-scoped; no plaintext
in the index; the index follows renames and erasure (M5, S1, S2, D2)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from konsent.domain.attributes import fold, trigrams
from konsent.domain.errors import InvalidInput
from konsent.flows.contact_data import attributes, index, labels, profile
from konsent.flows.contact_data.search import Query, search
from konsent.flows.organisation import names
from konsent.flows.privacy import rights
from konsent.store.tables import Contact, ContactAttribute, ContactSearchGram, Tenant
from tests.contact_data.util import make_contact, other_tenant
from tests.helpers import demo_tenant

ACTOR = "staff:1"


@pytest.fixture
def people(ctx, demo):
    """Three contacts of the demo tenant and a namesake in another tenant."""
    tid, other = demo_tenant(ctx).id, other_tenant(ctx)
    ids = {
        "jurgen": make_contact(ctx, tid, "+4915111111111", "Jürgen Weiß"),
        "juri": make_contact(ctx, tid, "+4915122222222", "Juri Gagarin"),
        "erika": make_contact(ctx, tid, "+4915133333333", "Erika Mustermann"),
        "namesake": make_contact(ctx, other, "+4915111111111", "Jürgen Weiß"),
    }
    return tid, other, ids


def _find(ctx, tid, only=None, **q):
    with ctx.db.write() as s:
        return [c.id for c in search(ctx, s, tid, Query(**q), only=only)]


def test_a_name_fragment_finds_exactly_the_tenants_contacts_whose_name_contains_it(ctx, people):
    tid, other, ids = people
    assert _find(ctx, tid, text="jürg") == [ids["jurgen"]]
    assert _find(ctx, tid, text="JURGEN") == [ids["jurgen"]]  # case and accents folded
    assert _find(ctx, tid, text="weiss") == [ids["jurgen"]]  # ß as ss
    assert _find(ctx, tid, text="mann") == [ids["erika"]]
    assert _find(ctx, tid, text="xyz") == []
    assert _find(ctx, other, text="jürgen") == [ids["namesake"]]  # and only theirs


def test_every_trigram_must_match_and_candidates_are_confirmed_by_their_real_name(ctx, people):
    """'annan' has only trigrams of 'Anna Nanna' (ann, nna, nan) but is not in it: the index alone would
    match, the opened name does not; 'garin' matches both."""
    tid, _, ids = people
    anna = make_contact(ctx, tid, "+4915144444444", "Anna Nanna")
    assert trigrams("annan") <= trigrams("Anna Nanna")
    assert _find(ctx, tid, text="annan") == []
    assert _find(ctx, tid, text="nna nan") == [anna]
    assert _find(ctx, tid, text="garin") == [ids["juri"]]
    assert _find(ctx, tid, text="rin gaga") == []


def test_newer_index_only_matches_do_not_crowd_real_matches_off_the_page(ctx, people):
    """Candidates are opened a page-sized chunk at a time: when the newest ones are all index-only
    matches ('Anna Nanna' for 'annan'), the search goes on to older candidates until the page is full."""
    tid, _, _ = people
    real = [make_contact(ctx, tid, f"+49151555555{i:02d}", f"Kofi Annan {i}") for i in range(3)]
    for i in range(12):
        make_contact(ctx, tid, f"+49151666666{i:02d}", "Anna Nanna")
    with ctx.db.write() as s:
        opened: dict[int, str] = {}
        found = search(ctx, s, tid, Query(text="annan"), limit=2, names=opened)
    assert [c.id for c in found] == [real[2], real[1]]
    assert opened == {real[2]: "Kofi Annan 2", real[1]: "Kofi Annan 1"}  # the page's names, opened once


def test_less_than_three_characters_or_an_empty_search_is_refused(ctx, people):
    tid, _, _ = people
    for q in ({"text": "ju"}, {"text": "  "}, {}):
        with pytest.raises(InvalidInput):
            _find(ctx, tid, **q)


def test_a_number_finds_its_contact_in_national_or_e164_form_only_in_the_tenant(ctx, people):
    tid, other, ids = people
    assert _find(ctx, tid, text="+49 151 11111111") == [ids["jurgen"]]
    assert _find(ctx, tid, text="0151 11111111") == [ids["jurgen"]]
    assert _find(ctx, other, text="015111111111") == [ids["namesake"]]
    assert _find(ctx, tid, text="+4915199999999") == []
    assert _find(ctx, tid, text=f"#{ids['namesake']}") == []  # another tenant's id is nobody


def test_label_and_attribute_narrow_and_an_exact_attribute_value_is_found_as_text(ctx, people):
    tid, other, ids = people
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
        attributes.define_attribute(
            s,
            tid,
            ACTOR,
            key="email",
            name="E-Mail",
            type="text",
            purpose="Rechnung",
            retention="until_erasure",
        )
        attributes.define_attribute(
            s, other, ACTOR, key="email", name="E-Mail", type="text", purpose="x", retention="until_erasure"
        )
    with ctx.db.write() as s:
        profile.save(
            ctx, s, tid, ACTOR, ids["jurgen"], label_refs=[vip], values={"email": "J.Weiss@Example.org"}
        )
        profile.save(ctx, s, tid, ACTOR, ids["juri"], values={"email": "juri@example.org"})
        profile.save(ctx, s, other, ACTOR, ids["namesake"], values={"email": "j.weiss@example.org"})
    assert _find(ctx, tid, label="VIP") == [ids["jurgen"]]
    assert _find(ctx, tid, text="jur", label="VIP") == [ids["jurgen"]]
    assert _find(ctx, tid, attribute="email", value="j.weiss@example.org") == [ids["jurgen"]]
    assert _find(ctx, tid, text="j.weiss@example.org") == [ids["jurgen"]]
    assert sorted(_find(ctx, tid, attribute="email")) == sorted([ids["jurgen"], ids["juri"]])
    with pytest.raises(InvalidInput):
        _find(ctx, tid, label="Gibt es nicht")
    with pytest.raises(InvalidInput):
        _find(ctx, tid, attribute="nope", value="x")


def test_the_callers_scope_limits_the_result(ctx, people):
    tid, _, ids = people
    assert _find(ctx, tid, only=Contact.id != ids["jurgen"], text="jürgen") == []


def test_the_index_holds_no_plaintext_name_trigram_or_value(ctx, people):
    tid, _, ids = people
    with ctx.db.write() as s:
        attributes.define_attribute(
            s, tid, ACTOR, key="city", name="Stadt", type="text", purpose="Events", retention="until_erasure"
        )
    with ctx.db.write() as s:
        profile.save(ctx, s, tid, ACTOR, ids["erika"], values={"city": "Musterstadt"})
    with ctx.db.read() as s:
        grams = set(s.scalars(select(ContactSearchGram.gram)).all())
        value_index = s.scalars(select(ContactAttribute.value_index)).one()
    plain = {g for name in ("Jürgen Weiß", "Juri Gagarin", "Erika Mustermann") for g in trigrams(name)}
    assert grams and not grams & plain
    assert all(len(g) == 16 and set(g) <= set("0123456789abcdef") for g in grams)
    assert "muster" not in value_index and len(value_index) == 64
    # tokens are keyed per tenant: the same name gives other tokens in another tenant
    with ctx.db.read() as s:
        mine = set(
            s.scalars(select(ContactSearchGram.gram).where(ContactSearchGram.contact_id == ids["jurgen"]))
        )
        theirs = set(
            s.scalars(select(ContactSearchGram.gram).where(ContactSearchGram.contact_id == ids["namesake"]))
        )
    assert len(mine) == len(trigrams("Jürgen Weiß")) and not mine & theirs


def test_a_rename_by_staff_or_rectification_moves_the_contact_in_the_index(ctx, people):
    tid, _, ids = people
    with ctx.db.write() as s:
        names.set_display_name(ctx, s, tid, ACTOR, ids["erika"], "Erika Schmidt")
    assert _find(ctx, tid, text="mustermann") == []
    assert _find(ctx, tid, text="schmidt") == [ids["erika"]]
    with ctx.db.write() as s:
        rights.rectify_contact(ctx, s, tid, ACTOR, ids["erika"], name="Erika Meier")
    assert _find(ctx, tid, text="schmidt") == [] and _find(ctx, tid, text="meier") == [ids["erika"]]
    with ctx.db.write() as s:
        profile.save(ctx, s, tid, ACTOR, ids["erika"], name="")
    assert _find(ctx, tid, text="meier") == []


def test_erasure_removes_the_contacts_index_rows_and_it_is_no_longer_found(ctx, people):
    tid, _, ids = people
    with ctx.db.write() as s:
        rights.erase_contact(ctx, s, s.get(Contact, ids["jurgen"]), source="staff:test", actor=ACTOR)
    with ctx.db.read() as s:
        assert (
            s.scalars(select(ContactSearchGram).where(ContactSearchGram.contact_id == ids["jurgen"])).all()
            == []
        )
    assert _find(ctx, tid, text="jürgen") == []
    assert _find(ctx, tid, text="+4915111111111") == []


def test_contacts_from_before_the_index_are_indexed_on_the_first_search(ctx, people):
    """A tenant upgraded from a version without the index: the first search builds it from the names."""
    tid, _, ids = people
    with ctx.db.write() as s:
        s.query(ContactSearchGram).delete()
        t = s.get(Tenant, tid)
        t.settings = {k: v for k, v in t.settings.items() if k != index.SETTING}
    assert _find(ctx, tid, text="gagarin") == [ids["juri"]]
    with ctx.db.write() as s:  # a rebuild (e.g. after a new index key) gives the same result
        assert index.rebuild(ctx, s, tid) == 3
    assert _find(ctx, tid, text="gagarin") == [ids["juri"]]


def test_fold_lowercases_removes_accents_and_collapses_spaces():
    assert fold("  Jürgen   WEIß ") == "jurgen weiss"
    assert fold("Łódź Çelik") == "łodz celik"  # ł has no decomposition; the rest folds
