"""Broadcasts: audience, composing, the 24-hour rule, resumable queuing, pause/resume/cancel, stats (M3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.domain.templates import TemplateSpec
from konsent.flows.consent.grants import withdraw
from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.flows.organisation import tenants
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_stats, templates
from konsent.store.tables import Broadcast, Contact, Message, OutboxRow
from konsent.store.types import utcnow
from konsent.web.deps import Caller
from tests.broadcast.seed import WindowedChannel, add_account, seed
from tests.conftest import drain
from tests.helpers import phone_texts, sim_account


def _create(ctx: Konsent, tenant_id: int, **kw: object) -> int:
    kw.setdefault("name", "November offers")
    kw.setdefault("topic", "angebote")
    kw.setdefault("text", "Hallo {first_name|du}, 20% auf alles!")
    with ctx.db.write() as s:
        return bc.create_broadcast(ctx, s, tenant_id, **kw).id  # type: ignore[arg-type]


def _send_now(ctx: Konsent, tenant_id: int, bid: int) -> None:
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, tenant_id, bid, lock=True), None, actor="test")
    assert bc.queue_all(ctx, tenant_id, bid, size=3)


def _stats(ctx: Konsent, tenant_id: int, bid: int) -> broadcast_stats.Stats:
    with ctx.db.read() as s:
        return broadcast_stats.stats(s, bc.get_broadcast(s, tenant_id, bid))


def test_only_contacts_with_active_consent_for_the_topic_receive_it(ctx, demo):
    """Audience = active consent for the topic; preview count matches what is sent (M3, C5)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000001", "+4915110000002", "+4915110000003"])
    seed(ctx, acc, ["+4915110000004"], consent=False)
    seed(ctx, acc, ["+4915110000005"], topic="produktnews")
    (gone,) = seed(ctx, acc, ["+4915110000006"])
    with ctx.db.write() as s:
        withdraw(s, s.get(Contact, gone), None, source="test", at=utcnow())
    bid = _create(ctx, demo.tenant_id)
    with ctx.db.read() as s:
        assert bc.preview_count(s, bc.get_broadcast(s, demo.tenant_id, bid)) == 3
    _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert phone_texts(ctx, "+4915110000001") == ["Hallo Erika, 20% auf alles!"]
    for phone in ("+4915110000004", "+4915110000005", "+4915110000006"):
        assert phone_texts(ctx, phone) == []
    st = _stats(ctx, demo.tenant_id, bid)
    assert (st.queued, st.sent, st.failed, st.skipped) == (3, 3, 0, 0)


def test_minimum_consent_text_version_excludes_older_consents(ctx, demo):
    """A campaign can require a minimum consent-text version (C6)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000011"], text_version=1)
    seed(ctx, acc, ["+4915110000012"], text_version=2)
    bid = _create(ctx, demo.tenant_id, min_text_version=2)
    _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert phone_texts(ctx, "+4915110000011") == []
    assert len(phone_texts(ctx, "+4915110000012")) == 1


def test_segment_filters_by_locale_and_activity(ctx, demo):
    """Segment filters narrow the audience on contact fields and activity (M3)."""
    acc = sim_account(ctx).id
    recent = utcnow() - timedelta(days=1)
    old = utcnow() - timedelta(days=90)
    seed(ctx, acc, ["+4915110000021"], locale="de", last_inbound=recent)
    seed(ctx, acc, ["+4915110000022"], locale="en", last_inbound=recent)
    seed(ctx, acc, ["+4915110000023"], locale="de", last_inbound=old)
    bid = _create(ctx, demo.tenant_id, segment={"locale": "de", "active_within_days": 30})
    with ctx.db.read() as s:
        assert bc.preview_count(s, bc.get_broadcast(s, demo.tenant_id, bid)) == 1
    bid2 = _create(ctx, demo.tenant_id, segment={"inactive_for_days": 30})
    with ctx.db.read() as s:
        assert bc.preview_count(s, bc.get_broadcast(s, demo.tenant_id, bid2)) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic", "nope"),
        ("text", "Hi {iban}"),
        ("text", ""),
        ("segment", {"labels": ["vip"]}),
        ("segment", {"active_within_days": 0}),
        ("name", " "),
    ],
)
def test_invalid_broadcast_is_refused_and_nothing_stored(ctx, demo, field, value):
    """Bad input → a clear error and no broadcast row."""
    with pytest.raises(InvalidInput):
        _create(ctx, demo.tenant_id, **{field: value})
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_another_tenants_broadcast_is_not_found(ctx, demo):
    """Invariant 4: other tenants' ids answer NotFound."""
    bid = _create(ctx, demo.tenant_id)
    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        with pytest.raises(NotFound):
            bc.get_broadcast(s, other.id, bid)


def test_free_text_only_inside_the_24h_window_else_template_else_skipped(ctx, demo):
    """Outside the window: the template if there is one, otherwise skipped with the reason (M3, CH3)."""
    WindowedChannel.sent.clear()
    acc = add_account(ctx, demo.tenant_id, "test_windowed")
    inside = utcnow() - timedelta(hours=2)
    outside = utcnow() - timedelta(days=3)
    seed(ctx, acc, ["+4915110000031"], last_inbound=inside, name="Max Muster")
    seed(ctx, acc, ["+4915110000032"], last_inbound=outside, name="Ida Muster")
    seed(ctx, acc, ["+4915110000033"], last_inbound=None)
    register_template(ctx, demo.tenant_id, acc, "offer_nov", "de", "Hallo {{1}}, {{2}} auf alles!")
    with_template = _create(
        ctx,
        demo.tenant_id,
        template="offer_nov",
        template_language="de",
        template_params=["{first_name}", "20%"],
        channel_account_id=acc,
    )
    _send_now(ctx, demo.tenant_id, with_template)
    drain(ctx)
    got = {addr: c for addr, c in WindowedChannel.sent}
    assert got["+4915110000031"].text == "Hallo Max, 20% auf alles!"
    assert got["+4915110000032"].template == "offer_nov"
    assert got["+4915110000032"].template_params == ("Ida", "20%")
    assert "+4915110000033" in got  # never wrote: template only
    WindowedChannel.sent.clear()
    text_only = _create(ctx, demo.tenant_id, channel_account_id=acc)
    _send_now(ctx, demo.tenant_id, text_only)
    drain(ctx)
    assert [a for a, _ in WindowedChannel.sent] == ["+4915110000031"]
    st = _stats(ctx, demo.tenant_id, text_only)
    assert st.skipped_reasons == {"window_closed": 2}


def register_template(
    ctx: Konsent, tenant_id: int, account: int, name: str, language: str, body: str, status: str = "APPROVED"
) -> None:
    with ctx.db.write() as s:
        owner = Caller(tenant_id, "owner", "test")
        spec = TemplateSpec(name, language, "MARKETING", status, body)
        templates.save_template(ctx, s, owner, account, spec)


def test_template_fallback_must_be_registered_approved_with_its_variable_count(ctx, demo):
    """M3, CH3: a broadcast's template is refused unless the registry holds it as APPROVED for the
    account (or, without an account, wherever it is registered) with exactly its variables."""
    acc = add_account(ctx, demo.tenant_id, "test_windowed")
    other = add_account(ctx, demo.tenant_id, "test_windowed")
    register_template(ctx, demo.tenant_id, acc, "offer_nov", "de", "Hallo {{1}}, {{2}} auf alles!")
    register_template(ctx, demo.tenant_id, other, "draft_offer", "de", "Hallo {{1}}", status="PENDING")
    two = ["{first_name}", "20%"]
    base = {"template": "offer_nov", "template_language": "de", "template_params": two}
    cases = [
        ({"template": "unknown", "template_language": "de", "template_params": two}, "not registered"),
        ({"template": "offer_nov", "template_language": "en", "template_params": two}, "not registered"),
        ({**base, "channel_account_id": other}, "not registered"),
        ({"template": "draft_offer", "template_language": "de", "template_params": ["x"]}, "not registered"),
        ({"template": "offer_nov", "template_language": "de", "template_params": ["x"]}, "needs 2 variables"),
        ({"template": "offer_nov", "template_language": "", "template_params": two}, "language"),
    ]
    for kw, reason in cases:
        with pytest.raises(InvalidInput, match=reason):
            _create(ctx, demo.tenant_id, **kw)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0
    ok = _create(ctx, demo.tenant_id, template="offer_nov", template_language="de", template_params=two)
    with ctx.db.read() as s:
        assert bc.get_broadcast(s, demo.tenant_id, ok).content["template_params"] == two


def test_queuing_resumes_after_a_crash_without_duplicates(ctx, demo):
    """The checkpoint commits with each batch: resuming queues nobody twice (M3)."""
    acc = sim_account(ctx).id
    ids = seed(ctx, acc, [f"+49151100001{i:02d}" for i in range(7)])
    bid = _create(ctx, demo.tenant_id)
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True), None)
    assert bc.queue_batch(ctx, demo.tenant_id, bid, size=3)  # then the process dies
    with ctx.db.read() as s:
        assert bc.get_broadcast(s, demo.tenant_id, bid).checkpoint == ids[2]
    bc.run_due(ctx)  # a new process's scheduler continues
    with ctx.db.read() as s:
        per_contact = s.execute(
            select(OutboxRow.contact_id, func.count())
            .where(OutboxRow.broadcast_id == bid)
            .group_by(OutboxRow.contact_id)
        ).all()
        assert sorted(per_contact) == [(i, 1) for i in ids]
        assert bc.get_broadcast(s, demo.tenant_id, bid).state == "sending"


def test_pause_holds_messages_across_restarts_and_resume_sends_them(ctx, demo):
    """Pause survives a restart: a fresh worker sends nothing until resume (M3)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000041", "+4915110000042"])
    bid = _create(ctx, demo.tenant_id)
    _send_now(ctx, demo.tenant_id, bid)
    with ctx.db.write() as s:
        bc.pause(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True))
    assert drain(ctx) == 0
    assert phone_texts(ctx, "+4915110000041") == []
    with ctx.db.write() as s:
        b = bc.resume(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True))
        assert b.state == "sending"
    assert drain(ctx) == 2
    bc.run_due(ctx)
    assert _stats(ctx, demo.tenant_id, bid).state == "done"


def test_cancel_stops_what_has_not_gone_out(ctx, demo):
    """Cancel: queued messages are cancelled and never reach the provider (M3)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000051", "+4915110000052"])
    bid = _create(ctx, demo.tenant_id)
    _send_now(ctx, demo.tenant_id, bid)
    with ctx.db.write() as s:
        bc.cancel(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True))
    assert drain(ctx) == 0
    st = _stats(ctx, demo.tenant_id, bid)
    assert (st.state, st.cancelled, st.sent) == ("cancelled", 2, 0)
    with ctx.db.write() as s, pytest.raises(Conflict):
        bc.resume(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True))


def test_withdrawal_after_queuing_means_the_message_is_never_sent(ctx, demo):
    """STOP after queuing: nothing goes to the provider for that purpose (C4, invariant 1, 2)."""
    acc = sim_account(ctx).id
    a, _ = seed(ctx, acc, ["+4915110000061", "+4915110000062"])
    bid = _create(ctx, demo.tenant_id)
    _send_now(ctx, demo.tenant_id, bid)
    simulator.phone_send(ctx, acc, "+4915110000061", "STOP")
    drain(ctx)
    texts = phone_texts(ctx, "+4915110000061")
    assert all("20%" not in t for t in texts)
    assert len(phone_texts(ctx, "+4915110000062")) == 1
    with ctx.db.read() as s:
        status = s.scalar(
            select(Message.status)
            .join(OutboxRow, OutboxRow.message_id == Message.id)
            .where(OutboxRow.broadcast_id == bid, OutboxRow.contact_id == a)
        )
    assert status == "cancelled"


def test_stats_count_delivered_read_and_opt_outs_caused(ctx, demo):
    """The funnel: sent ≥ delivered ≥ read, plus the withdrawals that followed (M3, U3)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000071", "+4915110000072", "+4915110000073"])
    bid = _create(ctx, demo.tenant_id)
    _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    one = simulator.phone_inbox(ctx, acc, "+4915110000071")[0].provider_id
    two = simulator.phone_inbox(ctx, acc, "+4915110000072")[0].provider_id
    simulator.phone_ack(ctx, acc, [one, two], "delivered")
    simulator.phone_ack(ctx, acc, [one], "read")
    simulator.phone_send(ctx, acc, "+4915110000073", "STOP")
    st = _stats(ctx, demo.tenant_id, bid)
    assert (st.sent, st.delivered, st.read, st.opt_outs) == (3, 2, 1, 1)


def test_scheduled_broadcast_waits_until_its_time(ctx, demo):
    """A broadcast scheduled for later is not queued before then (M3)."""
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000081"])
    bid = _create(ctx, demo.tenant_id)
    later = utcnow() + timedelta(hours=1)
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True), later)
    bc.run_due(ctx)
    assert drain(ctx) == 0
    bc.run_due(ctx, now=later + timedelta(seconds=1))
    assert drain(ctx) == 1


def test_a_crashed_workers_row_of_a_paused_broadcast_stays_paused(ctx, demo):
    """A worker dies holding a row, the broadcast is paused meanwhile: the rescued row stays paused (M3)."""
    from konsent.delivery import outbox

    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915110000091"])
    bid = _create(ctx, demo.tenant_id)
    _send_now(ctx, demo.tenant_id, bid)
    assert len(outbox.claim(ctx, "dead-worker", 10, utcnow(), lease_s=1)) == 1  # then kill -9
    with ctx.db.write() as s:
        bc.pause(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True))
    assert outbox.rescue(ctx, utcnow() + timedelta(seconds=5)) == 1
    with ctx.db.read() as s:
        assert s.scalar(select(OutboxRow.state).where(OutboxRow.broadcast_id == bid)) == "paused"
    assert drain(ctx) == 0


def test_unpersonalised_text_is_sealed_once_per_batch_personalised_text_per_contact(ctx, demo):
    """S1, D1, D2: a newsletter naming nobody is sealed once with the tenant key; one with names is
    sealed per contact. Neither is readable in the raw table, both arrive, both are in the export,
    and erasing a contact removes its copy of either."""
    from konsent.flows.contacts import SHARED
    from konsent.flows.privacy import export as privacy_export
    from konsent.flows.privacy import rights as privacy

    acc = sim_account(ctx).id
    first, second = seed(ctx, acc, ["+4915110000011", "+4915110000012"])
    plain = _create(ctx, demo.tenant_id, text="Sommerschlussverkauf ab Montag")
    named = _create(ctx, demo.tenant_id, text="Hallo {first_name|du}, nur für dich")
    for bid in (plain, named):
        _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert phone_texts(ctx, "+4915110000011") == [
        "Sommerschlussverkauf ab Montag",
        "Hallo Erika, nur für dich",
    ]
    with ctx.db.read() as s:
        bodies = {
            (author, cid): body
            for author, cid, body in s.execute(
                select(Message.author, Message.contact_id, Message.body_sealed).where(
                    Message.direction == "out"
                )
            )
        }
        assert bodies[(f"broadcast:{plain}", first)] == bodies[(f"broadcast:{plain}", second)]
        assert bodies[(f"broadcast:{plain}", first)][:2] == SHARED
        assert bodies[(f"broadcast:{named}", first)][:2] != SHARED
        assert bodies[(f"broadcast:{named}", first)] != bodies[(f"broadcast:{named}", second)]
        assert not any(b"Sommerschluss" in b or b"nur f" in b for b in bodies.values())
        exported = privacy_export.export_data(ctx, s, s.get(Contact, first))
    texts = [m["text"] for c in exported["conversations"] for m in c["messages"]]
    texts += [m["text"] for m in exported["other_messages"]]  # broadcasts belong to no conversation
    assert "Sommerschlussverkauf ab Montag" in texts and "Hallo Erika, nur für dich" in texts
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", first, "email")
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.contact_id == first)) == 0
        assert s.scalar(select(func.count()).select_from(Message).where(Message.contact_id == second)) == 2


def test_segments_by_label_and_field_and_variables_from_collected_fields(ctx, demo):
    """M3: audience narrowed to contacts whose conversation carries a label, or who hold a field the
    bot collected with consent; that field fills {kundennummer} per contact, with a fallback."""
    from konsent.flows.inbox import bot
    from konsent.store.tables import Conversation, ConversationLabel

    acc = sim_account(ctx).id
    vip, _, numbered = seed(ctx, acc, ["+4915110000021", "+4915110000022", "+4915110000023"])
    with ctx.db.write() as s:
        conv = Conversation(
            tenant_id=demo.tenant_id, contact_id=vip, channel_account_id=acc, state="open",
            started_at=utcnow(), last_message_at=utcnow(),
        )  # fmt: skip
        s.add(conv)
        s.flush()
        s.add(ConversationLabel(tenant_id=demo.tenant_id, conversation_id=conv.id, label="vip"))
        bot.store_field(ctx, s, s.get(Contact, numbered), "kundennummer", "K-4711", utcnow())
    labelled = _create(ctx, demo.tenant_id, text="Nur für VIPs", segment={"label": "vip"})
    with ctx.db.read() as s:
        assert bc.preview_count(s, bc.get_broadcast(s, demo.tenant_id, labelled)) == 1
    _send_now(ctx, demo.tenant_id, labelled)
    drain(ctx)
    assert phone_texts(ctx, "+4915110000021") == ["Nur für VIPs"]
    assert phone_texts(ctx, "+4915110000022") == [] and phone_texts(ctx, "+4915110000023") == []

    by_field = _create(
        ctx, demo.tenant_id, text="Ihre Nummer: {kundennummer}", segment={"has_field": "kundennummer"}
    )
    everyone = _create(ctx, demo.tenant_id, text="Nummer {kundennummer|unbekannt}, {first_name}")
    for bid in (by_field, everyone):
        _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert sorted(phone_texts(ctx, "+4915110000023")) == ["Ihre Nummer: K-4711", "Nummer K-4711, Erika"]
    assert phone_texts(ctx, "+4915110000022") == ["Nummer unbekannt, Erika"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"text": "Hallo {lieblingsfarbe}"}, "unknown variable {lieblingsfarbe}"),
        ({"segment": {"label": ""}}, "label must be a name"),
        ({"segment": {"has_field": 7}}, "has_field must be a name"),
    ],
)
def test_unknown_variable_or_bad_segment_is_refused_with_what_is_offered(ctx, demo, kw, message):
    """M3: a variable no contact holds, or an empty label, is refused; nothing is stored."""
    with pytest.raises(InvalidInput) as err:
        _create(ctx, demo.tenant_id, **kw)
    assert message in str(err.value)
    if "variable" in message:
        assert "{first_name}" in str(err.value)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0
