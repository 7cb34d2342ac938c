"""Audiences: saved segments narrow a topic's consented audience and never widen it (#17 item 3, M5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from konsent.domain import segments as rules
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_proof, broadcast_stats, segments
from konsent.store.tables import AuditEntry, Consent, Message, OutboxRow
from konsent.store.types import utcnow
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.helpers import phone_texts, sim_account


def _save(ctx: Konsent, tenant_id: int, name: str, definition: dict) -> int:
    with ctx.db.write() as s:
        return segments.create_segment(s, tenant_id, "test", name, definition).id


def _send(ctx: Konsent, tenant_id: int, text: str, **kw: object) -> int:
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tenant_id, name=text, topic="angebote", text=text, **kw)  # type: ignore[arg-type]
        bc.schedule(s, b, None, actor="test")
        bid = b.id
    assert bc.queue_all(ctx, tenant_id, bid)
    drain(ctx)
    return bid


def _stats(ctx: Konsent, tenant_id: int, bid: int) -> broadcast_stats.Stats:
    with ctx.db.read() as s:
        return broadcast_stats.stats(s, bc.get_broadcast(s, tenant_id, bid))


def test_segment_never_widens_a_matching_contact_without_consent_gets_nothing(ctx, demo):
    """Everyone here wrote to us yesterday and is subscribed to "produktnews"; only those who also
    consented to the broadcast's topic receive it, whatever the segment says."""
    acc = sim_account(ctx).id
    yesterday = utcnow() - timedelta(days=1)
    seed(ctx, acc, ["+4915130000001"], last_inbound=yesterday)  # angebote
    seed(ctx, acc, ["+4915130000001"], topic="produktnews", last_inbound=yesterday)
    seed(ctx, acc, ["+4915130000002"], topic="produktnews", last_inbound=yesterday)  # no angebote
    seed(ctx, acc, ["+4915130000003"], last_inbound=utcnow() - timedelta(days=40))  # angebote, quiet
    seg = _save(
        ctx, demo.tenant_id, "Aktive Produktfans", {"topics": ["produktnews"], "replied_within_days": 7}
    )
    with ctx.db.write() as s:
        seg_obj = segments.get_segment(s, demo.tenant_id, seg)
        assert seg_obj.definition == {"topics": ["produktnews"], "replied_within_days": 7}
    bid = _send(ctx, demo.tenant_id, "Nur mit Einwilligung", segment_id=seg)
    assert phone_texts(ctx, "+4915130000001") == ["Nur mit Einwilligung"]
    assert phone_texts(ctx, "+4915130000002") == []  # matches the segment, no consent for angebote
    assert phone_texts(ctx, "+4915130000003") == []  # consent, but outside the segment
    assert _stats(ctx, demo.tenant_id, bid).queued == 1


def test_preview_count_equals_the_number_sent(ctx, demo):
    """The preview runs the query the queuing runs: the count shown is the count sent."""
    acc = sim_account(ctx).id
    recent, old = utcnow() - timedelta(days=2), utcnow() - timedelta(days=60)
    seed(ctx, acc, [f"+49151300001{i:02d}" for i in range(5)], locale="de", last_inbound=recent)
    seed(ctx, acc, [f"+49151300002{i:02d}" for i in range(3)], locale="en", last_inbound=recent)
    seed(ctx, acc, [f"+49151300003{i:02d}" for i in range(4)], locale="de", last_inbound=old)
    seed(
        ctx, acc, [f"+49151300004{i:02d}" for i in range(2)], consent=False, locale="de", last_inbound=recent
    )
    definition = {"locale": "de", "replied_within_days": 30}
    shown = segments.preview_for(ctx, demo.tenant_id, "angebote", definition)
    assert shown.count == 5 and shown.sample == []
    bid = _send(ctx, demo.tenant_id, "Vorschau stimmt", segment=definition)
    st = _stats(ctx, demo.tenant_id, bid)
    assert st.queued == st.sent == shown.count
    assert sum(len(phone_texts(ctx, f"+49151300001{i:02d}")) for i in range(5)) == 5


def test_preview_shows_a_few_names_only_when_asked_and_audits_it(ctx, demo):
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915130000501", "+4915130000502"], name="Ida Beispiel")
    hidden = segments.preview_for(ctx, demo.tenant_id, "angebote", {})
    shown = segments.preview_for(ctx, demo.tenant_id, "angebote", {}, actor="user:1", show_names=True)
    assert hidden.sample == [] and shown.sample == ["Ida Beispiel", "Ida Beispiel"]
    with ctx.db.read() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:1")).all()
    assert actions == ["segment.preview"]


def test_definition_is_copied_into_the_broadcast_and_its_proof(ctx, demo):
    """A later edit of the saved segment does not change what the broadcast was sent with."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915130000601"], locale="de")
    seed(ctx, acc, ["+4915130000602"], locale="en")
    seg = _save(ctx, demo.tenant_id, "Deutschsprachig", {"locale": "de"})
    bid = _send(ctx, demo.tenant_id, "Hallo", segment_id=seg)
    with ctx.db.write() as s:
        segments.update_segment(s, demo.tenant_id, "test", seg, "Englischsprachig", {"locale": "en"})
    with ctx.db.write() as s:
        b = bc.get_broadcast(s, demo.tenant_id, bid)
        assert b.segment == {"locale": "de", "segment": {"id": seg, "name": "Deutschsprachig"}}
        doc = broadcast_proof.proof(s, demo.tenant_id, bid, "user:1")
        csv_text = broadcast_proof.export_csv(s, demo.tenant_id, bid, "user:1")
    chosen = doc["chosen_by"]
    assert chosen["consent"]["purpose"] == "newsletter:angebote"
    assert chosen["segment"]["definition"]["locale"] == "de"
    assert chosen["segment"]["saved_segment"] == {"id": seg, "name": "Deutschsprachig"}
    assert chosen["segment"]["criteria"] == ["language: de"]
    assert [(r["status"], r["reason"]) for r in doc["recipients"]] == [("sent", "")]
    assert csv_text.splitlines()[0] == "contact_id,message_id,status,reason,queued_at,updated_at"
    assert len(csv_text.splitlines()) == 2
    with ctx.db.read() as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:1")).all())
    assert {"broadcast.proof", "broadcast.export"} <= actions


def test_read_the_last_broadcast_and_did_not(ctx, demo):
    acc = sim_account(ctx).id
    reader, other = seed(ctx, acc, ["+4915130000701", "+4915130000702"])
    first = _send(ctx, demo.tenant_id, "Erste")
    with ctx.db.write() as s:
        mid = s.scalar(
            select(OutboxRow.message_id).where(
                OutboxRow.broadcast_id == first, OutboxRow.contact_id == reader
            )
        )
        s.execute(update(Message).where(Message.id == mid).values(status="read"))
    assert segments.preview_for(ctx, demo.tenant_id, "angebote", {"read_last_broadcast": True}).count == 1
    _send(ctx, demo.tenant_id, "Nicht gelesen?", segment={"read_last_broadcast": False})
    assert phone_texts(ctx, "+4915130000701") == ["Erste"]
    assert phone_texts(ctx, "+4915130000702") == ["Erste", "Nicht gelesen?"]
    # "the last broadcast" is now "Nicht gelesen?", which the reader never got, let alone read
    _send(ctx, demo.tenant_id, "Für Leser", segment={"read_last_broadcast": True})
    assert phone_texts(ctx, "+4915130000701") == ["Erste"]
    assert other != reader


def test_subscribed_since_a_date_in_the_tenants_zone(ctx, demo):
    acc = sim_account(ctx).id
    early, late = seed(ctx, acc, ["+4915130000801", "+4915130000802"])
    with ctx.db.write() as s:
        s.execute(
            update(Consent)
            .where(Consent.contact_id == early)
            .values(changed_at=datetime(2026, 2, 28, 22, 30, tzinfo=UTC))  # 23:30 in Berlin: 28 Feb
        )
        s.execute(
            update(Consent)
            .where(Consent.contact_id == late)
            .values(changed_at=datetime(2026, 2, 28, 23, 30, tzinfo=UTC))  # 00:30 in Berlin: 1 March
        )
    since = segments.preview_for(ctx, demo.tenant_id, "angebote", {"subscribed_since": "2026-03-01"})
    before = segments.preview_for(ctx, demo.tenant_id, "angebote", {"subscribed_before": "2026-03-01"})
    assert (since.count, before.count) == (1, 1)


@pytest.mark.parametrize(
    "definition",
    [
        "locale=de",
        {"replied_within_days": 0},
        {"replied_within_days": "7"},
        {"read_last_broadcast": "yes"},
        {"subscribed_since": "1.3.2026"},
        {"subscribed_since": "2026-03-01", "subscribed_before": "2026-01-01"},
        {"topics": []},
        {"topics": ["gibtsnicht"]},
        {"sql": "1=1"},
        {"attributes": [{"name": "plz", "op": "like", "value": "1%"}]},
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_saved(ctx, demo, definition):
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        segments.create_segment(s, demo.tenant_id, "test", "Kaputt", definition)
    with ctx.db.read() as s:
        assert segments.list_segments(s, demo.tenant_id) == []


def test_segment_names_are_unique_and_other_tenants_segments_are_not_found(ctx, demo):
    seg = _save(ctx, demo.tenant_id, "VIP", {"locale": "de"})
    with pytest.raises(Conflict):
        _save(ctx, demo.tenant_id, "VIP", {"locale": "en"})
    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        with pytest.raises(NotFound):
            segments.get_segment(s, other.id, seg)
        with pytest.raises(NotFound):
            segments.for_broadcast(s, other.id, None, seg)


def test_explain_reads_each_criterion():
    lines = rules.explain(rules.validate({"replied_within_days": 7, "read_last_broadcast": False}))
    assert [m.format(**p) for m, p in lines] == [
        "wrote to us within the last 7 days",
        "read the last broadcast on this topic: no",
    ]


def _profile(
    ctx: Konsent, tenant_id: int, contact_id: int, labels: list[str], values: dict[str, str]
) -> None:
    from konsent.flows.contact_data import profile

    with ctx.db.write() as s:
        profile.save(ctx, s, tenant_id, "test", contact_id, label_refs=labels, values=values)


def test_contact_labels_and_typed_attributes_narrow_inside_the_consent(ctx, demo):
    """Label "VIP" and a customer number above 1000 (compared as numbers), or a city by exact value;
    a VIP in Berlin without consent for the topic still gets nothing."""
    from konsent.flows.contact_data import attributes, labels

    tid = demo.tenant_id
    with ctx.db.write() as s:
        labels.define_label(s, tid, "test", "VIP")
        labels.define_label(s, tid, "test", "Messe")
        attributes.define_attribute(
            s,
            tid,
            "test",
            key="kundennr",
            name="Kundennummer",
            type="number",
            purpose="Zuordnung",
            retention="until_erasure",
        )
        attributes.define_attribute(
            s,
            tid,
            "test",
            key="stadt",
            name="Stadt",
            type="text",
            purpose="Einladungen",
            retention="until_erasure",
        )
    acc = sim_account(ctx).id
    big, small, messe = seed(ctx, acc, ["+4915130000901", "+4915130000902", "+4915130000903"])
    (no_consent,) = seed(ctx, acc, ["+4915130000904"], consent=False)
    _profile(ctx, tid, big, ["VIP"], {"kundennr": "1500", "stadt": "Berlin"})
    _profile(ctx, tid, small, ["VIP"], {"kundennr": "900", "stadt": "Köln"})
    _profile(ctx, tid, messe, ["Messe"], {"kundennr": "5000", "stadt": "berlin"})
    _profile(ctx, tid, no_consent, ["VIP"], {"kundennr": "9000", "stadt": "Berlin"})

    def count(definition: dict) -> int:
        return segments.preview_for(ctx, tid, "angebote", definition).count

    assert count({"contact_labels": ["VIP"]}) == 2
    assert (
        count({"contact_labels": ["VIP"], "attributes": [{"name": "kundennr", "op": "gt", "value": 1000}]})
        == 1
    )
    assert count({"attributes": [{"name": "stadt", "op": "eq", "value": "BERLIN"}]}) == 2
    assert count({"attributes": [{"name": "stadt", "op": "unset"}]}) == 0
    bid = _send(
        ctx,
        tid,
        "Nur für VIPs in Berlin",
        segment={"contact_labels": ["VIP"], "attributes": [{"name": "stadt", "op": "eq", "value": "Berlin"}]},
    )
    assert phone_texts(ctx, "+4915130000901") == ["Nur für VIPs in Berlin"]
    for phone in ("+4915130000902", "+4915130000903", "+4915130000904"):
        assert phone_texts(ctx, phone) == []
    assert _stats(ctx, tid, bid).queued == 1
    with pytest.raises(InvalidInput):
        segments.preview_for(ctx, tid, "angebote", {"contact_labels": ["Unbekannt"]})
    with pytest.raises(InvalidInput):
        segments.preview_for(
            ctx, tid, "angebote", {"attributes": [{"name": "kundennr", "op": "gt", "value": "viel"}]}
        )


def test_a_label_deleted_after_saving_matches_nobody_rather_than_everybody(ctx, demo):
    from konsent.flows.contact_data import labels

    tid = demo.tenant_id
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, "test", "VIP").id
    (cid,) = seed(ctx, sim_account(ctx).id, ["+4915130000911"])
    _profile(ctx, tid, cid, ["VIP"], {})
    seg = _save(ctx, tid, "VIPs", {"contact_labels": ["VIP"]})
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tid, name="x", topic="angebote", text="x", segment_id=seg)
        assert bc.preview_count(s, b, ctx=ctx) == 1
        labels.delete_label(s, tid, "test", vip)
    with ctx.db.read() as s:
        assert bc.preview_count(s, bc.get_broadcast(s, tid, b.id), ctx=ctx) == 0
