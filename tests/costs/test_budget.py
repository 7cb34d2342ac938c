"""Budget caps per broadcast and per tenant and month pause sending before anything over budget goes
out (CH6, #16 item 4); the estimate is the price table × the audience per country and category."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from konsent.domain.costs import MICROS
from konsent.flows.context import Konsent
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import budget, cost_views
from konsent.flows.outbound.messaging import enqueue_message
from konsent.store.tables import AuditEntry, Broadcast, Contact, OutboxRow
from konsent.store.types import utcnow
from tests.broadcast.seed import seed
from tests.conftest import drain, on_postgres
from tests.costs.support import (
    PricedChannel,
    import_prices,
    priced_account,
    send_now,
    template,
    template_broadcast,
)

GERMANS = [f"+4915110000{i:03d}" for i in range(1, 6)]  # 0.10 each as marketing


def _set_budget(ctx: Konsent, tenant_id: int, bid: int, amount: str) -> None:
    with ctx.db.write() as s:
        budget.set_broadcast_budget(
            s, bc.get_broadcast(s, tenant_id, bid, lock=True), budget.parse_amount(amount), "test"
        )


def _broadcast(ctx: Konsent, tenant_id: int, bid: int) -> tuple[str, str, int]:
    with ctx.db.read() as s:
        b = bc.get_broadcast(s, tenant_id, bid)
        return b.state, b.paused_reason, b.cost_reserved_micros


def test_broadcast_budget_reached_pauses_it_and_nothing_over_budget_is_sent(ctx: Konsent, demo) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    _set_budget(ctx, demo.tenant_id, bid, "0.25")  # two messages at 0.10 fit, the third would not
    send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert len(PricedChannel.sent) == 2
    state, reason, reserved = _broadcast(ctx, demo.tenant_id, bid)
    assert (state, reserved) == ("paused", 20 * MICROS // 100)
    assert reason.startswith("budget:broadcast:0.25")
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.broadcast_id == bid)) == 2
        assert s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "broadcast.pause")
        )


def test_raising_the_budget_and_resuming_sends_the_rest_once(ctx: Konsent, demo) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    _set_budget(ctx, demo.tenant_id, bid, "0.25")
    send_now(ctx, demo.tenant_id, bid)
    _set_budget(ctx, demo.tenant_id, bid, "1")
    bc.act(ctx, demo.tenant_id, bid, "resume", "test")
    bc.run_due(ctx)
    drain(ctx)
    assert sorted(a for a, _ in PricedChannel.sent) == GERMANS  # each exactly once
    assert _broadcast(ctx, demo.tenant_id, bid)[2] == 50 * MICROS // 100


def test_tenant_monthly_budget_pauses_a_broadcast_at_the_cap(ctx: Konsent, demo) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    with ctx.db.write() as s:
        budget.set_tenant_budget(s, demo.tenant_id, budget.parse_amount("0,30"), "test")
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    send_now(ctx, demo.tenant_id, bid, size=2)  # pages of two: the cap falls inside the second page
    # On PostgreSQL the next page is priced while the previous one commits; a page that no longer
    # fits under the lock is rolled back and priced again by the scheduler's next run.
    bc.run_due(ctx)
    drain(ctx)
    assert len(PricedChannel.sent) == 3
    state, reason, _ = _broadcast(ctx, demo.tenant_id, bid)
    assert state == "paused" and reason.startswith("budget:tenant:0.30")
    # a second broadcast the same month finds the month spent and sends nothing
    second = template_broadcast(ctx, demo.tenant_id, acc)
    send_now(ctx, demo.tenant_id, second)
    drain(ctx)
    assert len(PricedChannel.sent) == 3
    assert _broadcast(ctx, demo.tenant_id, second)[0] == "paused"


@pytest.mark.skipif(not on_postgres(), reason="pages are queued two at a time on PostgreSQL only")
def test_a_page_reserving_its_cost_does_not_wait_for_the_next_page_that_waits_for_it(
    ctx: Konsent, demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page inserts its outbox rows (a key-share lock on the tenant row through the foreign
    key) and then waits in Python for this page to commit. This page's reservation must not wait for
    that lock: it would be a deadlock PostgreSQL cannot see (the CI hang of session 6)."""
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    real_reserve, calls = budget.reserve, []

    def late_reserve(s: Session, b: Broadcast, adm: budget.Admission, now: datetime | None = None) -> bool:
        calls.append(b.checkpoint)
        if len(calls) == 1:
            time.sleep(1.5)  # the second page has inserted its rows by now and waits for this one
        s.execute(text("SET LOCAL lock_timeout = '5s'"))  # the deadlock fails the page, not the run
        return real_reserve(s, b, adm, now)

    monkeypatch.setattr(budget, "reserve", late_reserve)
    send_now(ctx, demo.tenant_id, bid, size=2)
    drain(ctx)
    assert sorted(a for a, _ in PricedChannel.sent) == GERMANS
    assert _broadcast(ctx, demo.tenant_id, bid)[2] == 50 * MICROS // 100


def test_a_budget_never_holds_back_a_service_answer(ctx: Konsent, demo) -> None:
    """DOI, STOP and privacy answers are service messages: one message each, never blocked by a cap."""
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    (cid,) = seed(ctx, acc, ["+4915110000099"], last_inbound=utcnow() - timedelta(minutes=1))
    with ctx.db.write() as s:
        budget.set_tenant_budget(s, demo.tenant_id, 0, "test")
        contact = s.get(Contact, cid)
        assert contact is not None
        contact.has_contacted_us = True
        from konsent.channels.base import OutboundContent

        enqueue_message(ctx, s, contact, "service", OutboundContent(text="Sie sind abgemeldet."))
    drain(ctx)
    assert [c.text for _, c in PricedChannel.sent] == ["Sie sind abgemeldet."]


def test_estimate_is_the_price_table_times_the_audience_per_country_and_category(ctx: Konsent, demo) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, ["+4915110000001", "+4915110000002", "+4915110000003"])  # DE 0.10
    seed(ctx, acc, ["+436641234567", "+436641234568"])  # AT 0.12
    seed(ctx, acc, ["+16505551234"])  # US: the "*" row, 0.20
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    with ctx.db.read() as s:
        est = cost_views.estimate(s, bc.get_broadcast(s, demo.tenant_id, bid))
    lines = {(ln.country, ln.category): (ln.count, ln.unit_micros, ln.total_micros) for ln in est.lines}
    assert lines == {
        ("DE", "marketing"): (3, 100_000, 300_000),
        ("AT", "marketing"): (2, 120_000, 240_000),
        ("US", "marketing"): (1, 200_000, 200_000),
    }
    assert (est.total_micros, est.audience) == (740_000, 6)


def test_estimate_follows_the_templates_current_category(ctx: Konsent, demo) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "UTILITY")
    seed(ctx, acc, ["+4915110000001", "+4915110000002"])
    bid = template_broadcast(ctx, demo.tenant_id, acc)

    def total() -> int:
        with ctx.db.read() as s:
            return cost_views.estimate(s, bc.get_broadcast(s, demo.tenant_id, bid)).total_micros

    assert total() == 2 * 40_000
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")  # Meta re-categorised it
    assert total() == 2 * 100_000


def test_estimate_and_budget_in_the_api_and_on_the_confirm_page(ctx: Konsent, demo, client) -> None:
    from tests.flows.support import api_token, auth

    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    headers = auth(api_token(ctx, "admin"))
    got = client.get(f"/api/v1/broadcasts/{bid}/costs", headers=headers)
    assert got.status_code == 200
    assert got.json()["estimate"]["total"] == "0.50"
    put = client.put(f"/api/v1/broadcasts/{bid}/budget", json={"amount": "0.30"}, headers=headers)
    assert (put.status_code, put.json()["budget"]) == (200, "0.30")
    bad = client.put(f"/api/v1/broadcasts/{bid}/budget", json={"amount": "viel"}, headers=headers)
    assert bad.status_code == 422
    assert client.put("/api/v1/budget", json={"amount": "-1"}, headers=headers).status_code == 422


def test_the_confirm_page_shows_the_estimate_and_a_budget_pause_in_the_readers_language(
    ctx: Konsent, demo, client
) -> None:
    from tests.web.test_admin_auth import as_role, form_token

    acc = priced_account(ctx, demo.tenant_id)
    import_prices(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "angebot", "MARKETING")
    seed(ctx, acc, GERMANS)
    bid = template_broadcast(ctx, demo.tenant_id, acc)
    as_role(ctx, client, "admin")
    client.cookies.set("konsent_lang", "en")
    page = client.get(f"/admin/broadcasts/{bid}")
    assert "Estimated cost if every message is delivered: 0.50 EUR" in page.text
    r = client.post(
        f"/admin/broadcasts/{bid}/budget", data={"csrf_token": form_token(page.text), "amount": "0,25"},
        follow_redirects=True,
    )  # fmt: skip
    assert r.status_code == 200 and "0.25 EUR" in r.text
    send_now(ctx, demo.tenant_id, bid)
    page = client.get(f"/admin/broadcasts/{bid}")
    assert "Paused by konsent before anything over budget was sent" in page.text
    assert "the broadcast&#39;s budget of 0.25 EUR would be exceeded" in page.text
    client.cookies.set("konsent_lang", "de")
    page = client.get(f"/admin/broadcasts/{bid}")
    assert "das Budget des Newsletters von 0.25 EUR würde überschritten" in page.text
    dashboard = client.get("/admin")
    assert "Kosten pro Monat, Zweck und Kanal" in dashboard.text
