"""Inbox statistics: conversations per day, first response per team, bot containment (U3, S5).

Works-council mode (Betriebsrat, S5) is a per-tenant switch: when on, nothing is
computed per agent, only per team and in aggregate. Every look at the statistics is
recorded in the audit log either way.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.flows import audit
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import BotSession, Conversation, Message, StaffUser, Team, Tenant
from konsent.store.tenant_settings import merge_settings
from konsent.store.types import utcnow

WORKS_COUNCIL = "works_council_mode"


@dataclass(frozen=True)
class TeamResponse:
    team: str
    answered: int
    median_minutes: float | None


@dataclass(frozen=True)
class AgentActivity:
    agent: str
    replies: int


@dataclass(frozen=True)
class InboxStats:
    days: list[tuple[date, int]]
    first_response: list[TeamResponse]
    bot_done: int
    bot_handover: int
    works_council: bool
    agents: list[AgentActivity] | None  # None in works-council mode (S5)

    @property
    def containment(self) -> float | None:
        """Share of finished bot conversations resolved without a person."""
        total = self.bot_done + self.bot_handover
        return self.bot_done / total if total else None


def works_council(s: Session, tenant_id: int) -> bool:
    tenant = s.get(Tenant, tenant_id)
    return bool(tenant and tenant.settings.get(WORKS_COUNCIL, False))


def set_works_council(s: Session, who: StaffMember, on: bool) -> None:
    """Switch works-council mode for the caller's tenant (S5)."""
    staff.require(who.role, "settings.manage")
    merge_settings(s, who.tenant_id, {WORKS_COUNCIL: bool(on)})
    audit.record(
        s, who.tenant_id, who.actor, "settings.works_council", f"tenant:{who.tenant_id}", on=bool(on)
    )


def as_date(value: object) -> date:
    """A day from what the database returns for a date expression (date, datetime or ISO text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def inbox_stats(s: Session, who: StaffMember, days: int = 30, now: datetime | None = None) -> InboxStats:
    """The tenant's inbox statistics for the last `days` days; the access is audited (U3, S5, S4)."""
    staff.require(who.role, "stats.view")
    days = max(1, min(days, 366))
    now = now or utcnow()
    since = now - timedelta(days=days)
    tid = who.tenant_id
    per_day: dict[date, int] = {}
    day_col = func.date(Conversation.started_at)
    for day, n in s.execute(
        select(day_col, func.count())
        .where(Conversation.tenant_id == tid, Conversation.started_at >= since)
        .group_by(day_col)
    ).tuples():
        per_day[as_date(day)] = int(n)
    first = since.date()
    series = [(first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0)) for i in range(days + 1)]

    team_names = {t.id: t.name for t in s.scalars(select(Team).where(Team.tenant_id == tid))}
    waits: dict[int | None, list[float]] = {}
    for team_id, started, answered in s.execute(
        select(Conversation.team_id, Conversation.started_at, Conversation.first_response_at).where(
            Conversation.tenant_id == tid,
            Conversation.started_at >= since,
            Conversation.first_response_at.is_not(None),
        )
    ).tuples():
        if answered is not None:
            waits.setdefault(team_id, []).append((answered - started).total_seconds() / 60)
    responses = [
        TeamResponse(team_names.get(k, "") if k else "", len(v), round(statistics.median(v), 1))
        for k, v in sorted(waits.items(), key=lambda kv: team_names.get(kv[0], "") if kv[0] else "")
    ]

    outcome = dict(
        s.execute(
            select(BotSession.state, func.count())
            .where(BotSession.tenant_id == tid, BotSession.started_at >= since)
            .group_by(BotSession.state)
        )
        .tuples()
        .all()
    )
    council = works_council(s, tid)
    agents: list[AgentActivity] | None = None
    if not council:
        names = {
            f"user:{u.id}": (u.name or u.email)
            for u in s.scalars(select(StaffUser).where(StaffUser.tenant_id == tid))
        }
        counts = s.execute(
            select(Message.author, func.count())
            .where(
                Message.tenant_id == tid,
                Message.direction == "out",
                Message.author.like("user:%"),
                Message.created_at >= since,
            )
            .group_by(Message.author)
        ).tuples()
        agents = sorted((AgentActivity(names.get(a, a), int(n)) for a, n in counts), key=lambda x: -x.replies)
    audit.record(s, tid, who.actor, "stats.view", f"tenant:{tid}", days=days, works_council=council)
    return InboxStats(
        series,
        responses,
        int(outcome.get("done", 0)),
        int(outcome.get("handover", 0)),
        council,
        agents,
    )
