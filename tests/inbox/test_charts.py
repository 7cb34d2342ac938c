"""Dashboard charts from the consent ledger (U3, M3): opt-ins against opt-outs per week, and each
topic's subscribers at the end of each week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from konsent.flows.context import Konsent
from konsent.flows.inbox.charts import dashboard_charts
from tests.helpers import subscribe
from tests.inbox.conftest import Crew, say, sign_in

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def test_weekly_opt_ins_and_opt_outs_and_the_subscriber_line_follow_the_ledger(
    ctx: Konsent, crew: Crew
) -> None:
    with time_machine.travel(MONDAY - timedelta(weeks=60), tick=False):  # before the chart's year
        subscribe(ctx, "+491700000001", ["angebote"])
    with time_machine.travel(MONDAY, tick=False):
        subscribe(ctx, "+491700000002", ["angebote"])
        subscribe(ctx, "+491700000003", ["angebote"])
    with time_machine.travel(MONDAY + timedelta(weeks=1, days=2), tick=False):
        say(ctx, crew, "+491700000002", "STOP")
    with ctx.db.read() as s:
        charts = dashboard_charts(s, crew.tenant_id, weeks=4, now=MONDAY + timedelta(weeks=2))
    assert [(w.start, w.optins, w.optouts) for w in charts.weeks] == [
        (MONDAY.date() - timedelta(weeks=1), 0, 0),
        (MONDAY.date(), 2, 0),
        (MONDAY.date() + timedelta(weeks=1), 0, 1),
        (MONDAY.date() + timedelta(weeks=2), 0, 0),
    ]
    [offers] = [t for t in charts.topics if t.topic == "angebote"]
    assert [n for _, n in offers.points] == [1, 3, 2, 2]  # the subscriber from before the year counts


def test_dashboard_draws_both_charts_as_svg_without_script(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "+491700000009", ["angebote"])
    sign_in(client, ctx, crew.users["owner"])
    page = client.get("/admin?lang=de").text
    assert "Opt-ins und Opt-outs pro Woche" in page and "Abonnenten je Thema im Zeitverlauf" in page
    assert page.count("<svg") >= 2 and 'class="bar-in"' in page and "<polyline" in page
    assert "Angebote: 1" in page


def test_a_tenant_without_opt_ins_reads_that_instead_of_an_empty_chart(  # type: ignore[no-untyped-def]
    ctx: Konsent, crew: Crew, client
) -> None:
    """A new company's dashboard says there is nothing yet rather than drawing a bare axis."""
    sign_in(client, ctx, crew.users["owner"])
    page = client.get("/admin?lang=de").text
    assert "Keine Opt-ins oder Opt-outs in den letzten" in page and 'class="bar-in"' not in page
