"""Topics: create, rename, describe, order, archive, delete only when unused (#12 item 2), both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import Conflict, InvalidInput
from konsent.flows import widget
from konsent.flows.consent import optin
from konsent.flows.organisation import tenants, topics
from konsent.flows.outbound import broadcast as bc
from konsent.flows.privacy import proof
from konsent.store.tables import Consent, LedgerEntry, Topic
from tests.setup.support import SLUG, make_company, subscribe

PHONE = "+49 151 0000011"


def _topic_count(ctx) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Topic)) or 0)


def test_a_duplicate_topic_slug_is_refused_and_nothing_is_saved(ctx):
    make_company(ctx)
    before = _topic_count(ctx)
    with pytest.raises(Conflict), ctx.db.write() as s:
        topics.create_topic(s, tenants.tenant_by_slug(s, SLUG), "bohnen", {"de": "Noch mal Bohnen"})
    assert _topic_count(ctx) == before


def test_a_duplicate_of_an_archived_topic_is_refused_too(ctx):
    co = make_company(ctx)
    with ctx.db.write() as s:
        topics.archive_topic(s, co.tenant_id, "kurse")
    with pytest.raises(Conflict), ctx.db.write() as s:
        topics.create_topic(s, tenants.tenant_by_slug(s, SLUG), "kurse", {"de": "Kurse"})


@pytest.mark.parametrize(
    ("slug", "names"),
    [
        ("Bad Slug", {"de": "x"}),
        ("neu", {}),
        ("neu", {"de": "  "}),
        ("neu", {"fr": "Nouvelles"}),
        ("neu", {"de": "x" * 101}),
    ],
)
def test_bad_topic_input_is_refused_with_a_clear_message(ctx, slug, names):
    make_company(ctx)
    before = _topic_count(ctx)
    with pytest.raises(InvalidInput) as err, ctx.db.write() as s:
        topics.create_topic(s, tenants.tenant_by_slug(s, SLUG), slug, names)
    assert str(err.value) and "Traceback" not in str(err.value)
    assert _topic_count(ctx) == before


def test_renaming_a_topic_keeps_its_slug_consents_and_proof(ctx):
    co = make_company(ctx)
    cid = subscribe(ctx, co, PHONE, ["bohnen"])
    with ctx.db.read() as s:
        ledger_before = [e.hash for e in s.scalars(select(LedgerEntry).where(LedgerEntry.contact_id == cid))]
    with ctx.db.write() as s:
        topics.update_topic(s, co.tenant_id, "bohnen", names={"de": "Kaffeebohnen", "en": "Coffee beans"},
                            descriptions={"de": "Jede Woche eine Sorte"})  # fmt: skip
    with ctx.db.read() as s:
        tp = topics.get_topic(s, co.tenant_id, "bohnen")
        consent = s.scalars(select(Consent).where(Consent.contact_id == cid)).one()
        ledger_after = [e.hash for e in s.scalars(select(LedgerEntry).where(LedgerEntry.contact_id == cid))]
        report = proof.verify_ledger(s, co.tenant_id)
    assert (
        tp.names == {"de": "Kaffeebohnen", "en": "Coffee beans"}
        and tp.descriptions["de"] == "Jede Woche eine Sorte"
    )
    assert (consent.purpose, consent.status) == ("newsletter:bohnen", "active")
    assert ledger_after == ledger_before and report.ok


def test_an_archived_topic_is_gone_from_the_widget_and_new_broadcasts_but_consents_stay(ctx):
    co = make_company(ctx)
    cid = subscribe(ctx, co, PHONE, ["bohnen"])
    with ctx.db.write() as s:
        topics.archive_topic(s, co.tenant_id, "bohnen")
    cfg = widget.widget_config(ctx, SLUG, "de")
    assert [t.slug for t in cfg.topics] == ["kurse"]
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        bc.create_broadcast(ctx, s, co.tenant_id, name="x", topic="bohnen", text="Hallo")
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        optin.request_opt_in(ctx, s, tenants.tenant_by_slug(s, SLUG), channel_account_id=co.account_id,
                             topic_slugs=["bohnen"], locale="de")  # fmt: skip
    with ctx.db.read() as s:
        consent = s.scalars(select(Consent).where(Consent.contact_id == cid)).one()
        assert (consent.purpose, consent.status) == ("newsletter:bohnen", "active")
        assert proof.verify_ledger(s, co.tenant_id).ok


def test_a_restored_topic_is_offered_again(ctx):
    co = make_company(ctx)
    with ctx.db.write() as s:
        topics.archive_topic(s, co.tenant_id, "bohnen")
        topics.restore_topic(s, co.tenant_id, "bohnen")
    assert {t.slug for t in widget.widget_config(ctx, SLUG, "de").topics} == {"bohnen", "kurse"}


def test_topics_keep_the_order_set_for_them_in_the_widget(ctx):
    co = make_company(ctx)
    with ctx.db.write() as s:
        topics.create_topic(s, tenants.tenant_by_slug(s, SLUG), "events", {"de": "Termine"})
        topics.move_topic(s, co.tenant_id, "events", -1)
    assert [t.slug for t in widget.widget_config(ctx, SLUG, "de").topics] == ["bohnen", "events", "kurse"]
    with ctx.db.write() as s:
        topics.set_order(s, co.tenant_id, ["kurse", "events", "bohnen"])
    assert [t.slug for t in widget.widget_config(ctx, SLUG, "de").topics] == ["kurse", "events", "bohnen"]


def test_a_topic_that_consents_refer_to_is_never_deleted(ctx):
    co = make_company(ctx)
    subscribe(ctx, co, PHONE, ["bohnen"])
    with ctx.db.write() as s:
        topics.archive_topic(s, co.tenant_id, "bohnen")
    with pytest.raises(Conflict), ctx.db.write() as s:
        topics.delete_topic(s, co.tenant_id, "bohnen")
    with ctx.db.read() as s:
        assert topics.get_topic(s, co.tenant_id, "bohnen") is not None


def test_an_unused_topic_can_be_deleted(ctx):
    co = make_company(ctx)
    with ctx.db.write() as s:
        topics.delete_topic(s, co.tenant_id, "kurse")
    with ctx.db.read() as s:
        assert [t.slug for t in topics.all_topics(s, co.tenant_id)] == ["bohnen"]
