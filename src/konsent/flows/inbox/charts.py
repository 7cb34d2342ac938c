"""The dashboard's charts over a year (U3, M3): subscribers per topic, opt-ins against opt-outs per week.

Both come from the consent ledger, the record an authority would check: one aggregate query over the
year, bucketed by week in the database. Each topic's line starts from today's active consents and
goes back week by week, so nothing before the year is read. The SVG is drawn server-side from the
series (web/templates/admin/_charts.html).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from konsent.domain.purposes import ConsentStatus
from konsent.flows.inbox.stats import as_date
from konsent.store.tables import Consent, LedgerEntry
from konsent.store.types import utcnow

OPT_IN = ("granted",)
OPT_OUT = ("withdrawn", "erased")


@dataclass(frozen=True)
class Week:
    start: date
    optins: int
    optouts: int


@dataclass(frozen=True)
class TopicSeries:
    topic: str
    points: list[tuple[date, int]]  # (week start, subscribers at the end of that week)

    @property
    def last(self) -> int:
        return self.points[-1][1] if self.points else 0


@dataclass(frozen=True)
class Charts:
    weeks: list[Week]
    topics: list[TopicSeries]

    @property
    def peak_week(self) -> int:
        return max([1, *(max(w.optins, w.optouts) for w in self.weeks)])

    @property
    def peak_subscribers(self) -> int:
        return max([1, *(n for t in self.topics for _, n in t.points)])


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _week_of(s: Session) -> ColumnElement[object]:
    """The Monday of an entry's week, computed by the database."""
    if s.get_bind().dialect.name == "postgresql":
        return cast(func.date_trunc("week", func.timezone("UTC", LedgerEntry.created_at)), Date)
    return func.date(LedgerEntry.created_at, "weekday 0", "-6 days")


def dashboard_charts(s: Session, tenant_id: int, weeks: int = 52, now: datetime | None = None) -> Charts:
    """The last `weeks` weeks of consent changes, and every topic's subscribers at each week's end."""
    now = now or utcnow()
    first = _monday(now.astimezone(UTC).date()) - timedelta(weeks=weeks - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    newsletter = LedgerEntry.purpose.like("newsletter:%")
    # today's level per topic from the consents themselves; each week's end is found by going back
    current = dict(
        s.execute(
            select(Consent.purpose, func.count())
            .where(
                Consent.tenant_id == tenant_id,
                Consent.status == ConsentStatus.ACTIVE,
                Consent.purpose.like("newsletter:%"),
            )
            .group_by(Consent.purpose)
        ).all()
    )
    week = _week_of(s).label("week")
    rows = s.execute(
        select(week, LedgerEntry.purpose, LedgerEntry.action, func.count())
        .where(LedgerEntry.tenant_id == tenant_id, newsletter, LedgerEntry.created_at >= since)
        .group_by(week, LedgerEntry.purpose, LedgerEntry.action)
    ).all()
    ins: dict[date, int] = defaultdict(int)
    outs: dict[date, int] = defaultdict(int)
    deltas: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for wk, purpose, action, n in rows:
        d = as_date(wk)
        if action in OPT_IN:
            ins[d] += n
            deltas[purpose][d] += n
        elif action in OPT_OUT:
            outs[d] += n
            deltas[purpose][d] -= n
    starts = [first + timedelta(weeks=i) for i in range(weeks)]
    series = []
    for purpose in sorted(set(current) | set(deltas)):
        level = int(current.get(purpose) or 0)
        points = []
        for d in reversed(starts):  # the level at the end of week d, then undo that week's changes
            points.append((d, max(level, 0)))
            level -= deltas[purpose].get(d, 0)
        series.append(TopicSeries(purpose.split(":", 1)[1], points[::-1]))
    return Charts([Week(d, ins.get(d, 0), outs.get(d, 0)) for d in starts], series)
