"""Contact pressure: a frequency cap per contact and quiet hours in the contact's zone (#17 item 4, M5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select

from konsent.domain import pressure as rules
from konsent.domain.errors import InvalidInput
from konsent.flows.context import Konsent
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_proof, broadcast_stats, pressure
from konsent.store.tables import Message, OutboxRow
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.helpers import phone_texts, sim_account, subscribe


def _rules(ctx: Konsent, tenant_id: int, **values: object) -> None:
    with ctx.db.write() as s:
        pressure.set_rules(s, tenant_id, "test", dict(values))


def _broadcast(ctx: Konsent, tenant_id: int, text: str) -> int:
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tenant_id, name=text, topic="angebote", text=text)
        bc.schedule(s, b, None, actor="test")
        bid = b.id
    assert bc.queue_all(ctx, tenant_id, bid)
    return bid


def _stats(ctx: Konsent, tenant_id: int, bid: int) -> broadcast_stats.Stats:
    with ctx.db.read() as s:
        return broadcast_stats.stats(s, bc.get_broadcast(s, tenant_id, bid))


def test_frequency_cap_holds_back_marketing_as_contact_pressure_never_as_failure(ctx, demo):
    """At most 1 per 7 days: the second broadcast is "not sent: contact pressure" for both contacts,
    counted in its statistics, and nothing is failed or retried."""
    _rules(ctx, demo.tenant_id, cap_messages=1, cap_days=7)
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915120000001", "+4915120000002"])
    first = _broadcast(ctx, demo.tenant_id, "Erste Aktion")
    drain(ctx)
    second = _broadcast(ctx, demo.tenant_id, "Zweite Aktion")
    drain(ctx)
    assert phone_texts(ctx, "+4915120000001") == ["Erste Aktion"]
    assert phone_texts(ctx, "+4915120000002") == ["Erste Aktion"]
    st = _stats(ctx, demo.tenant_id, second)
    assert (st.queued, st.sent, st.contact_pressure, st.failed, st.pending) == (2, 0, 2, 0, 0)
    assert _stats(ctx, demo.tenant_id, first).contact_pressure == 0
    with ctx.db.read() as s:
        held = s.execute(
            select(Message.status, Message.status_reason, OutboxRow.state)
            .join(OutboxRow, OutboxRow.message_id == Message.id)
            .where(OutboxRow.broadcast_id == second)
        ).all()
        assert {tuple(h) for h in held} == {
            ("not_sent", "contact pressure: at most 1 marketing messages per 7 days", "not_sent")
        }
        assert bc.get_broadcast(s, demo.tenant_id, second).state in ("sending", "done")
    with ctx.db.write() as s:
        exported = broadcast_proof.export_csv(s, demo.tenant_id, second, "test").splitlines()[1:]
        proof = broadcast_proof.proof(s, demo.tenant_id, second, "test")
    assert all(
        ",not_sent,contact pressure: at most 1 marketing messages per 7 days," in line for line in exported
    )
    assert proof["stats"]["contact_pressure"] == 2 and proof["stats"]["failed"] == 0


def test_frequency_cap_counts_messages_claimed_together(ctx, demo):
    """Two broadcasts queued at once and claimed in one batch: the contact still gets only one."""
    _rules(ctx, demo.tenant_id, cap_messages=1, cap_days=7)
    seed(ctx, sim_account(ctx).id, ["+4915120000011"])
    a = _broadcast(ctx, demo.tenant_id, "Eins")
    b = _broadcast(ctx, demo.tenant_id, "Zwei")
    drain(ctx)
    assert phone_texts(ctx, "+4915120000011") == ["Eins"]
    assert (
        _stats(ctx, demo.tenant_id, a).contact_pressure + _stats(ctx, demo.tenant_id, b).contact_pressure == 1
    )


def test_without_a_cap_every_broadcast_arrives(ctx, demo):
    """The cap is off until the tenant sets it (so removing the rule lets the second one through)."""
    seed(ctx, sim_account(ctx).id, ["+4915120000021"])
    _broadcast(ctx, demo.tenant_id, "Eins")
    drain(ctx)
    _broadcast(ctx, demo.tenant_id, "Zwei")
    drain(ctx)
    assert phone_texts(ctx, "+4915120000021") == ["Eins", "Zwei"]


def test_quiet_hours_defer_to_their_end_in_the_contacts_own_zone(ctx, demo):
    """22:30 in Berlin is quiet (21:00-08:00), 16:30 in New York is not: the German contact's message
    waits until 08:00 Berlin time, without spending an attempt, then goes out."""
    _rules(ctx, demo.tenant_id, quiet_start="21:00", quiet_end="08:00")
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915120000031", "+12125550131"])
    evening = datetime(2027, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 CEST, 16:30 EDT
    with time_machine.travel(evening, tick=True):
        bid = _broadcast(ctx, demo.tenant_id, "Sommerangebot")
        drain(ctx)
        assert phone_texts(ctx, "+12125550131") == ["Sommerangebot"]
        assert phone_texts(ctx, "+4915120000031") == []
        with ctx.db.read() as s:
            row = s.scalars(
                select(OutboxRow).where(OutboxRow.broadcast_id == bid, OutboxRow.state == "available")
            ).one()
            assert row.run_at == datetime(2027, 6, 2, 6, 0, tzinfo=UTC)  # 08:00 in Berlin
            assert row.attempt == 0
        st = _stats(ctx, demo.tenant_id, bid)
        assert (st.sent, st.deferred, st.contact_pressure, st.failed) == (1, 1, 0, 0)
    with time_machine.travel(datetime(2027, 6, 2, 6, 1, tzinfo=UTC), tick=True):
        drain(ctx)
        assert phone_texts(ctx, "+4915120000031") == ["Sommerangebot"]
        assert _stats(ctx, demo.tenant_id, bid).deferred == 0


def test_contact_without_a_phone_number_uses_the_tenants_zone():
    """Telegram chat ids carry no country: the tenant's zone applies."""
    assert pressure.contact_zone("123456789", "Europe/Vienna") == "Europe/Vienna"
    assert pressure.contact_zone("+4915112345678", "America/Chicago") == "Europe/Berlin"
    assert pressure.contact_zone("+12125551234", "Europe/Berlin") == "America/New_York"


def test_transactional_messages_bypass_quiet_hours_and_the_cap(ctx, demo):
    """The double opt-in confirmation and the STOP confirmation go out in quiet hours and over the cap."""
    _rules(ctx, demo.tenant_id, cap_messages=1, cap_days=7, quiet_start="00:00", quiet_end="23:59")
    with time_machine.travel(datetime(2027, 6, 1, 10, 0, tzinfo=UTC), tick=True):
        subscribe(ctx, "+4915120000041", ["angebote"])
        drain(ctx)
        confirmations = phone_texts(ctx, "+4915120000041")
        assert len(confirmations) == 1  # the double opt-in confirmation
        bid = _broadcast(ctx, demo.tenant_id, "Nachts nicht")
        drain(ctx)
        assert phone_texts(ctx, "+4915120000041") == confirmations  # the newsletter waits
        assert _stats(ctx, demo.tenant_id, bid).deferred == 1
        from konsent.flows.inbound import simulator

        simulator.phone_send(ctx, sim_account(ctx).id, "+4915120000041", "STOP")
        drain(ctx)
        assert len(phone_texts(ctx, "+4915120000041")) == 2  # the STOP confirmation


@pytest.mark.parametrize(
    "values",
    [
        {"cap_messages": -1},
        {"cap_messages": "3"},
        {"cap_messages": 3, "cap_days": 0},
        {"quiet_start": "25:00", "quiet_end": "08:00"},
        {"quiet_start": "21:00"},
        {"cap_days": 9999},
    ],
)
def test_invalid_pressure_rules_are_refused(ctx, demo, values):
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        pressure.set_rules(s, demo.tenant_id, "test", values)


def test_quiet_hours_over_midnight_and_within_a_day():
    night = rules.PressureRules(quiet_start="21:00", quiet_end="08:00")
    berlin = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
    assert rules.quiet_until(night, berlin) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
    assert rules.quiet_until(night, berlin.replace(hour=6)) == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert rules.quiet_until(night, berlin.replace(hour=12)) is None
    lunch = rules.PressureRules(quiet_start="12:00", quiet_end="13:30")
    assert rules.quiet_until(lunch, berlin.replace(hour=12, minute=10)) == berlin.replace(hour=13, minute=30)
    assert rules.quiet_until(lunch, berlin.replace(hour=13, minute=30)) is None
    assert rules.over_cap(rules.PressureRules(cap_messages=2), 2)
    assert not rules.over_cap(rules.PressureRules(), 99)
