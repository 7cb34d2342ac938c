"""Inbox statistics and works-council mode (U3, S5, S4)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from konsent.domain.errors import PermissionDenied
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation, stats
from konsent.store.tables import AuditEntry
from konsent.store.types import utcnow
from tests.inbox.conftest import Crew, conversation_of, say


def test_statistics_per_team_and_works_council_hides_agents_but_audits(ctx: Konsent, crew: Crew) -> None:
    """U3: per day, first response per team, bot containment; S5: no per-agent figures when on."""
    say(ctx, crew, "+491701111111", "Hallo")
    say(ctx, crew, "+491701111111", "Hilfe")  # routed to support by the demo flow
    say(ctx, crew, "+491701111111", "Nein")  # handover
    conv = conversation_of(ctx, crew, "+491701111111")
    with ctx.db.write() as s:
        conversation.reply(ctx, s, crew.caller("sven"), conv.id, "Hallo, hier Sven")
    with ctx.db.write() as s:
        report = stats.inbox_stats(s, crew.caller("viewer"), days=7)
    assert report.days[-1] == (utcnow().date(), 1)
    assert len(report.days) == 8
    assert [(r.team, r.answered) for r in report.first_response] == [("Support", 1)]
    assert report.bot_handover == 1 and report.containment == 0.0
    assert report.agents is not None and report.agents[0].agent == "sven"

    with ctx.db.write() as s:
        stats.set_works_council(s, crew.caller("owner"), True)
    with ctx.db.write() as s:
        council = stats.inbox_stats(s, crew.caller("admin"), days=7)
    assert council.works_council and council.agents is None
    assert [(r.team, r.answered) for r in council.first_response] == [("Support", 1)]
    with ctx.db.read() as s:
        looks = s.scalars(select(AuditEntry).where(AuditEntry.action == "stats.view")).all()
    assert [e.payload["works_council"] for e in looks] == [False, True]
    with pytest.raises(PermissionDenied), ctx.db.write() as s:
        stats.inbox_stats(s, crew.caller("anna"))
    with pytest.raises(PermissionDenied), ctx.db.write() as s:
        stats.set_works_council(s, crew.caller("viewer"), False)
