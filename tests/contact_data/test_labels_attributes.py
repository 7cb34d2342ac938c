"""Labels and typed attributes on contacts: definitions, sealed values, erasure, retention, export
(M5, L1, D1, D2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows.contact_data import attributes, labels, profile, query
from konsent.flows.privacy import export, retention, rights
from konsent.store.tables import AuditEntry, Contact, ContactAttribute, ContactLabel, ContactSearchGram
from konsent.store.types import utcnow
from tests.contact_data.util import make_contact, other_tenant
from tests.helpers import demo_tenant

ACTOR = "staff:1"


def _define(ctx, tid, **kw):
    base = dict(
        key="city",
        name="Stadt",
        type="text",
        purpose="Einladungen zu Filialevents",
        retention="until_erasure",
    )
    with ctx.db.write() as s:
        return attributes.define_attribute(s, tid, ACTOR, **{**base, **kw}).id


def _save(ctx, tid, cid, **kw):
    with ctx.db.write() as s:
        return profile.save(ctx, s, tid, ACTOR, cid, **kw)


def _read(ctx, tid, cid):
    with ctx.db.read() as s:
        return profile.read(ctx, s, tid, cid)


def test_one_save_sets_labels_and_typed_values_and_audits_field_names_only(ctx, demo):
    tid = demo_tenant(ctx).id
    cid = make_contact(ctx, tid, "+4915111111111", "Erika Mustermann")
    _define(ctx, tid)
    _define(
        ctx,
        tid,
        key="visits",
        name="Besuche",
        type="number",
        purpose="Treuebonus",
        retention="after_set",
        retention_days=365,
    )
    _define(
        ctx,
        tid,
        key="birthday",
        name="Geburtstag",
        type="date",
        purpose="Glückwunsch",
        retention="after_last_contact",
        retention_days=30,
    )
    _define(
        ctx,
        tid,
        key="tier",
        name="Stufe",
        type="choice",
        options=["Gold", "Silber"],
        purpose="Angebote",
        retention="until_erasure",
    )
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
    changed = _save(
        ctx,
        tid,
        cid,
        label_refs=[vip],
        values={"city": "Köln", "visits": "12,5", "birthday": "31.12.1980", "tier": "Gold"},
    )
    assert changed == ["labels", "attribute:birthday", "attribute:city", "attribute:tier", "attribute:visits"]
    data = _read(ctx, tid, cid)
    assert data.labels == [{"id": vip, "name": "VIP"}]
    assert data.attributes == {"city": "Köln", "visits": "12.5", "birthday": "1980-12-31", "tier": "Gold"}
    with ctx.db.read() as s:
        blobs = s.scalars(select(ContactAttribute.value_sealed)).all()
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert all(b"K\xc3\xb6ln" not in b and b"Gold" not in b for b in blobs)  # sealed at rest
    assert (
        last.action == "contact.edit"
        and "Köln" not in str(last.payload)
        and "attribute:city" in str(last.payload)
    )
    # an empty value deletes it, the other values stay
    assert _save(ctx, tid, cid, values={"city": ""}) == ["attribute:city"]
    assert "city" not in _read(ctx, tid, cid).attributes and "tier" in _read(ctx, tid, cid).attributes


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("visits", "zwölf"),
        ("visits", "NaN"),
        ("birthday", "31.02.2020"),
        ("birthday", "gestern"),
        ("tier", "Platin"),
        ("nope", "x"),
    ],
)
def test_a_value_of_the_wrong_type_or_an_unknown_choice_is_refused_and_nothing_is_written(
    ctx, demo, key, value
):
    tid = demo_tenant(ctx).id
    cid = make_contact(ctx, tid, "+4915111111111", "Erika")
    _define(ctx, tid, key="visits", type="number")
    _define(ctx, tid, key="birthday", type="date")
    _define(ctx, tid, key="tier", type="choice", options=["Gold", "Silber"])
    _define(ctx, tid, key="city")
    with pytest.raises(InvalidInput):
        _save(ctx, tid, cid, values={"city": "Bonn", key: value})
    assert _read(ctx, tid, cid).attributes == {}


@pytest.mark.parametrize(
    "kw",
    [
        {"key": "Bad Key"},
        {"type": "colour"},
        {"type": "choice", "options": []},
        {"type": "text", "options": ["a"]},
        {"purpose": "  "},
        {"retention": "forever"},
        {"retention": "after_set", "retention_days": None},
        {"retention": "after_last_contact", "retention_days": 0},
    ],
)
def test_a_definition_without_purpose_valid_type_or_retention_is_refused(ctx, demo, kw):
    with pytest.raises(InvalidInput):
        _define(ctx, demo_tenant(ctx).id, **kw)


def test_keys_and_label_names_are_unique_per_tenant_only(ctx, demo):
    tid, other = demo_tenant(ctx).id, other_tenant(ctx)
    _define(ctx, tid)
    with pytest.raises(Conflict):
        _define(ctx, tid)
    _define(ctx, other)  # the same key in another tenant is fine
    with ctx.db.write() as s:
        labels.define_label(s, tid, ACTOR, "VIP")
        labels.define_label(s, other, ACTOR, "VIP")
    with ctx.db.write() as s, pytest.raises(Conflict):
        labels.define_label(s, tid, ACTOR, " VIP ")


def test_another_tenants_label_or_attribute_cannot_be_set_or_queried(ctx, demo):
    tid, other = demo_tenant(ctx).id, other_tenant(ctx)
    cid = make_contact(ctx, tid, "+4915111111111", "Erika")
    theirs = make_contact(ctx, other, "+4915111111111", "Erika")
    with ctx.db.write() as s:
        their_label = labels.define_label(s, other, ACTOR, "Geheim").id
    their_attr = _define(ctx, other)
    _save(ctx, other, theirs, label_refs=[their_label], values={"city": "Köln"})
    with pytest.raises(InvalidInput):
        _save(ctx, tid, cid, label_refs=[their_label])
    with pytest.raises(InvalidInput):
        _save(ctx, tid, cid, values={"city": "Köln"})  # demo has no attribute "city"
    with ctx.db.read() as s:
        assert s.scalars(query.with_label(s, tid, their_label)).all() == []
        with pytest.raises(NotFound):
            query.with_attribute_value(ctx, s, tid, their_attr, "Köln")
        assert s.scalars(query.with_label(s, other, their_label)).all() == [theirs]


def test_query_helpers_match_exact_values_folded_and_comparisons_by_type(ctx, demo):
    tid = demo_tenant(ctx).id
    a = make_contact(ctx, tid, "+4915111111111", "A")
    b = make_contact(ctx, tid, "+4915122222222", "B")
    c = make_contact(ctx, tid, "+4915133333333", "C")
    city = _define(ctx, tid)
    visits = _define(ctx, tid, key="visits", type="number")
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
        fair = labels.define_label(s, tid, ACTOR, "Messe").id
    _save(ctx, tid, a, label_refs=[vip, fair], values={"city": "Köln", "visits": "9"})
    _save(ctx, tid, b, label_refs=[vip], values={"city": "Bonn", "visits": "10"})
    _save(ctx, tid, c, values={"city": "KOELN", "visits": "100"})
    with ctx.db.read() as s:
        assert set(s.scalars(query.with_attribute_value(ctx, s, tid, city, "koln"))) == {a}
        assert set(s.scalars(query.with_all_labels(s, tid, [vip, fair]))) == {a}
        assert set(s.scalars(query.with_any_label(s, tid, [vip, fair]))) == {a, b}
        assert set(query.compare_attribute(ctx, s, tid, visits, "ge", "10")) == {
            b,
            c,
        }  # 9 < 10 < 100 as numbers
        assert set(
            query.compare_attribute(ctx, s, tid, visits, "gt", "9", among=query.with_label(s, tid, vip))
        ) == {b}


def test_erasure_removes_labels_attribute_values_and_search_index_rows(ctx, demo):
    tid = demo_tenant(ctx).id
    cid = make_contact(ctx, tid, "+4915111111111", "Erika Mustermann")
    keep = make_contact(ctx, tid, "+4915122222222", "Max Mustermann")
    _define(ctx, tid)
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
    for x in (cid, keep):
        _save(ctx, tid, x, label_refs=[vip], values={"city": "Köln"})
    with ctx.db.write() as s:
        rights.erase_contact(ctx, s, s.get(Contact, cid), source="staff:test", actor=ACTOR)
    with ctx.db.read() as s:
        for model in (ContactLabel, ContactAttribute, ContactSearchGram):
            left = s.scalars(select(model.contact_id).distinct()).all()
            assert left == [keep], model.__tablename__


def test_retention_deletes_expired_attribute_values_only(ctx, demo):
    tid = demo_tenant(ctx).id
    old = make_contact(ctx, tid, "+4915111111111", "Alt")
    fresh = make_contact(ctx, tid, "+4915122222222", "Neu")
    _define(ctx, tid, key="note", retention="after_set", retention_days=30)
    _define(ctx, tid, key="seen", retention="after_last_contact", retention_days=30)
    _define(ctx, tid, key="city", retention="until_erasure")
    long_ago = utcnow() - timedelta(days=40)
    for cid in (old, fresh):
        _save(ctx, tid, cid, values={"note": "x", "seen": "y", "city": "z"})
    with ctx.db.write() as s:
        for row in s.scalars(select(ContactAttribute).where(ContactAttribute.contact_id == old)):
            row.updated_at = long_ago
        s.get(Contact, old).last_activity_at = long_ago
        for row in s.scalars(select(ContactAttribute).where(ContactAttribute.contact_id == fresh)):
            row.updated_at = long_ago  # set long ago, but the contact wrote yesterday
        s.get(Contact, fresh).last_activity_at = utcnow() - timedelta(days=1)
    with ctx.db.read() as s:
        assert retention.due_counts(s, tid)["contact_attributes"] == 3
    report = retention.run_retention(ctx, tid)
    assert report.counts["contact_attributes"] == 3
    assert _read(ctx, tid, old).attributes == {"city": "z"}
    assert _read(ctx, tid, fresh).attributes == {"seen": "y", "city": "z"}


def test_access_export_holds_labels_and_attributes_with_purpose_and_retention(ctx, demo):
    tid = demo_tenant(ctx).id
    cid = make_contact(ctx, tid, "+4915111111111", "Erika")
    _define(ctx, tid, retention="after_set", retention_days=90)
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
    _save(ctx, tid, cid, label_refs=[vip], values={"city": "Köln"})
    with ctx.db.read() as s:
        data = export.export_data(ctx, s, s.get(Contact, cid))
    assert data["labels"] == ["VIP"]
    assert data["attributes"] == [
        {"key": "city", "name": "Stadt", "value": "Köln", "purpose": "Einladungen zu Filialevents",
         "retention": "after_set", "retention_days": 90}
    ]  # fmt: skip
    assert "Köln" in export.render_html(data)


def test_deleting_a_label_or_attribute_takes_it_off_every_contact(ctx, demo):
    tid = demo_tenant(ctx).id
    cid = make_contact(ctx, tid, "+4915111111111", "Erika")
    attr = _define(ctx, tid)
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
    _save(ctx, tid, cid, label_refs=["vip"], values={"city": "Köln"})  # a label by its name, too
    with ctx.db.write() as s:
        assert labels.delete_label(s, tid, ACTOR, vip) == 1
        assert attributes.delete_attribute(s, tid, ACTOR, attr) == 1
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ContactLabel)) == 0
        assert s.scalar(select(func.count()).select_from(ContactAttribute)) == 0
