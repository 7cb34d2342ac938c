"""What a crash leaves behind, step by step, on both databases (#14, M3, invariant 8).

A worker "dies" here by claiming rows and never completing them; `recovery.rescue` then runs
after the lease, as the periodic job of a surviving worker would.
"""

from __future__ import annotations

from datetime import timedelta

from bench.seedbulk import seed_bulk, setup_tenant
from sqlalchemy import select

from konsent.delivery import outbox, recovery
from konsent.flows.context import Konsent
from konsent.flows.organisation import delivery_policy
from konsent.flows.organisation.tenants import Tenant
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_stats
from konsent.store.tables import EarlyStatus, Message, OutboxRow
from konsent.store.types import utcnow

NOWHERE = "http://127.0.0.1:9"  # nothing is sent in these tests


def _broadcast_claimed(ctx: Konsent, kind: str, n: int = 3) -> tuple[int, int, list[outbox.Job]]:
    """A queued newsletter to n contacts on a `kind` account, claimed by a worker that then dies."""
    tenant_id, (acc,) = setup_tenant(ctx, NOWHERE, kind=kind)
    seed_bulk(ctx, tenant_id, [acc], n)
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tenant_id, name="Crash", topic="news", text="Neu")
        bc.schedule(s, b, None, actor="test")
        bid = b.id
    assert bc.queue_all(ctx, tenant_id, bid)
    jobs = outbox.claim(ctx, "doomed", 10, utcnow(), lease_s=1)
    assert len(jobs) == n
    return tenant_id, bid, jobs


def _mark(ctx: Konsent, jobs: list[outbox.Job]) -> None:
    with ctx.db.write() as s:
        assert outbox.mark_sending(ctx, s, jobs, utcnow(), 1) == {(j.outbox_id, j.attempt) for j in jobs}


def _rows(ctx: Konsent, bid: int) -> dict[int, tuple[str, int, str, str, str | None]]:
    with ctx.db.read() as s:
        return {
            oid: (state, attempt, status, reason, pid)
            for oid, state, attempt, status, reason, pid in s.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.state,
                    OutboxRow.attempt,
                    Message.status,
                    Message.status_reason,
                    Message.provider_id,
                )
                .join(Message, Message.id == OutboxRow.message_id)
                .where(OutboxRow.broadcast_id == bid)
            )
        }


def test_a_claimed_row_never_marked_as_sending_goes_back_silently_as_a_new_attempt(ctx):
    """Rows waiting for their pacing slot when the worker died were not in flight: back to the queue,
    no unknown outcome, and the next claim is a new attempt (the fence) (#14 item 1)."""
    _, bid, jobs = _broadcast_claimed(ctx, "benchhttp_noecho")
    later = utcnow() + timedelta(seconds=5)
    assert recovery.rescue(ctx, later) == len(jobs)
    rows = _rows(ctx, bid)
    assert {(state, status, reason) for state, _, status, reason, _ in rows.values()} == {
        ("available", "queued", "")
    }
    again = outbox.claim(ctx, "w", 10, later, 60)
    assert {j.attempt for j in again} == {2}, "a new attempt: the dead worker's answer stays fenced out"


def test_an_echoed_reference_confirms_the_send_with_the_providers_id_and_nothing_is_resent(ctx):
    """On a channel that echoes the reference: the row waits; the echo marks it sent with the
    provider's id, applies its statuses, and it is never claimed again (#14 item 2)."""
    _, bid, jobs = _broadcast_claimed(ctx, "benchhttp")
    _mark(ctx, jobs)
    later = utcnow() + timedelta(seconds=5)
    assert recovery.rescue(ctx, later) == len(jobs)
    assert {r[0] for r in _rows(ctx, bid).values()} == {"unconfirmed"}
    echoed, silent = jobs[0], jobs[1:]
    with ctx.db.write() as s:
        for status in ("sent", "delivered"):
            ref = recovery.reference(ctx, echoed.outbox_id) if status == "sent" else None
            s.add(
                EarlyStatus(
                    tenant_id=echoed.tenant_id, channel_account_id=echoed.account.id, provider_id="fp.echo.1",
                    status=status, reason="", at=later, ref=ref,
                )
            )  # fmt: skip
    assert recovery.reconcile_echoes(ctx, later) == (1, 0)
    rows = _rows(ctx, bid)
    assert rows[echoed.outbox_id][0] == "done"
    assert rows[echoed.outbox_id][2:] == ("delivered", recovery.CONFIRMED, "fp.echo.1")
    assert all(rows[j.outbox_id][0] == "unconfirmed" for j in silent), "no echo yet: still waiting"
    assert outbox.claim(ctx, "w", 10, later, 60) == []  # nothing is sent again while waiting


def test_without_an_echo_within_the_grace_period_the_row_is_sent_again_and_reported(ctx):
    """No echo within `echo_grace_seconds`: back to the queue, reported as a possible duplicate (#14)."""
    _, bid, jobs = _broadcast_claimed(ctx, "benchhttp")
    _mark(ctx, jobs)
    later = utcnow() + timedelta(seconds=5)
    recovery.rescue(ctx, later)
    assert recovery.reconcile_echoes(ctx, later + timedelta(seconds=10)) == (0, 0)  # grace: 300 s
    after = later + timedelta(seconds=ctx.settings.echo_grace_seconds + 1)
    assert recovery.reconcile_echoes(ctx, after) == (0, len(jobs))
    rows = _rows(ctx, bid)
    assert {(r[0], r[3]) for r in rows.values()} == {("available", recovery.NO_ECHO_RESENT)}
    assert len(outbox.claim(ctx, "w", 10, after, 60)) == len(jobs)


def test_without_echo_a_newsletter_is_not_resent_and_counted_as_outcome_unknown(ctx):
    """Telegram-like channel, newsletter, default policy at most once: not resent, status `unknown`,
    counted as unknown outcome in the broadcast statistics (#14 item 3)."""
    tenant_id, bid, jobs = _broadcast_claimed(ctx, "benchhttp_noecho")
    _mark(ctx, jobs)
    later = utcnow() + timedelta(seconds=5)
    recovery.rescue(ctx, later)
    rows = _rows(ctx, bid)
    assert {(r[0], r[2], r[3]) for r in rows.values()} == {("unknown", "unknown", recovery.NOT_RESENT)}
    assert outbox.claim(ctx, "w", 10, later, 60) == []
    with ctx.db.read() as s:
        st = broadcast_stats.stats(s, bc.get_broadcast(s, tenant_id, bid))
    assert st.unknown_outcome == len(jobs) and st.pending == 0 and st.sent == 0
    bc.finish_sent(ctx, later)
    with ctx.db.read() as s:
        assert bc.get_broadcast(s, tenant_id, bid).state == "done"


def test_a_tenant_may_choose_at_least_once_for_newsletters_on_channels_without_echo(ctx):
    """The per-tenant setting: at least once → sent again, reported (#14 item 3)."""
    tenant_id, bid, jobs = _broadcast_claimed(ctx, "benchhttp_noecho")
    with ctx.db.write() as s:
        t = s.get(Tenant, tenant_id)
        assert t is not None
        delivery_policy.set_policy(s, t.slug, "newsletter", delivery_policy.AT_LEAST_ONCE)
    _mark(ctx, jobs)
    later = utcnow() + timedelta(seconds=5)
    recovery.rescue(ctx, later)
    rows = _rows(ctx, bid)
    assert {(r[0], r[3]) for r in rows.values()} == {("available", recovery.RESENT)}
    assert len(outbox.claim(ctx, "w", 10, later, 60)) == len(jobs)


def test_transactional_answers_default_to_at_least_once_and_newsletters_to_at_most_once():
    """The documented defaults (docs/BROADCASTS.md) and that a bad stored value falls back to them."""
    assert delivery_policy.policy({}, "newsletter:news") == delivery_policy.AT_MOST_ONCE
    assert delivery_policy.policy(None, "service") == delivery_policy.AT_LEAST_ONCE
    bad = {"unknown_outcome_newsletter": "twice"}
    assert delivery_policy.policy(bad, "newsletter:news") == delivery_policy.AT_MOST_ONCE


def test_the_reference_is_an_opaque_keyed_hash_not_the_row_id(ctx):
    """What goes to the provider names the row without revealing it or anything personal (#14 item 2)."""
    import hashlib

    ref = recovery.reference(ctx, 12345)
    assert ref.startswith("ko1-") and "12345" not in ref and len(ref) <= 64
    assert ref == recovery.reference(ctx, 12345)
    assert ref != recovery.reference(ctx, 12346)
    unkeyed = hashlib.sha256(b"outbox:12345").hexdigest()[:28]
    assert ref != "ko1-" + unkeyed, "the reference must depend on a key, not only on the id"


def test_the_cli_sets_a_tenants_policy_and_refuses_an_unknown_one(ctx, monkeypatch):
    """`konsent tenant unknown-outcome <slug> newsletter at_least_once`; a typo is refused, nothing
    stored (#14 item 3)."""
    from typer.testing import CliRunner

    from konsent.cli import app, common

    tenant_id, _ = setup_tenant(ctx, NOWHERE, kind="benchhttp_noecho")
    with ctx.db.read() as s:
        slug = s.get(Tenant, tenant_id).slug  # type: ignore[union-attr]
    monkeypatch.setattr(common, "_ctx", lambda: ctx)
    ok = CliRunner().invoke(app, ["tenant", "unknown-outcome", slug, "newsletter", "at_least_once"])
    assert ok.exit_code == 0, ok.output
    assert "newsletters at_least_once, transactional at_least_once" in ok.output
    bad = CliRunner().invoke(app, ["tenant", "unknown-outcome", slug, "newsletter", "twice"])
    assert bad.exit_code != 0
    with ctx.db.read() as s:
        settings = s.get(Tenant, tenant_id).settings  # type: ignore[union-attr]
    assert delivery_policy.policy(settings, "newsletter:news") == delivery_policy.AT_LEAST_ONCE
