"""The conversation's side panel saved at once: assignee, team, labels, state and snooze in one
form, one transaction (M1, #17).

The form carries the version it was rendered from: if anyone changed the conversation since,
nothing is saved and the agent is told to reload (409), so two agents never overwrite each
other's changes unnoticed. Only what differs from the current values is changed, each through
its own use case (with its webhook, its live event and its audit entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation
from konsent.flows.inbox.listing import STATES, get_conversation
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import ConversationLabel
from konsent.store.types import utcnow

KEEP = "keep"  # the snooze field's value for "leave the snooze as it is"


@dataclass(frozen=True)
class PanelChange:
    """The panel's fields as submitted; `snooze_hours` None clears a snooze, KEEP leaves it."""

    version: int | None
    state: str
    assignee_id: int | None
    team_id: int | None
    labels: list[str]
    snooze_hours: int | str | None = KEEP


def save_panel(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    conversation_id: int,
    change: PanelChange,
    at: datetime | None = None,
) -> list[str]:
    """Apply the panel's values; returns the names of the fields that changed (M1)."""
    staff.require(who.role, "inbox.use")
    at = at or utcnow()
    if change.state not in STATES:
        raise InvalidInput(detail="state must be open, pending or closed")
    conv = get_conversation(s, who, conversation_id)
    if change.version is not None and change.version != conv.version:
        raise Conflict(detail="someone else changed this conversation; reload and try again")
    changed: list[str] = []
    assignee_id, team_id = conv.assignee_id, conv.team_id
    current = sorted(
        s.scalars(
            select(ConversationLabel.label).where(
                ConversationLabel.tenant_id == who.tenant_id, ConversationLabel.conversation_id == conv.id
            )
        ).all()
    )
    wanted = sorted({lb.strip().lower() for lb in change.labels if lb.strip()})
    if wanted != current:
        conversation.set_labels(s, who, conv.id, change.labels)
        changed.append("labels")
    if change.snooze_hours != KEEP:
        hours = change.snooze_hours
        until = at + timedelta(hours=hours) if isinstance(hours, int) and hours > 0 else None
        if until is not None or conv.snoozed_until is not None:
            conversation.snooze(s, who, conv.id, until, now=at)
            changed.append("snooze")
    if change.state != conv.state:
        conversation.set_state(s, who, conv.id, change.state, at=at, ctx=ctx)
        changed.append("state")
    # last: handing the conversation to another team may take it out of the agent's sight
    if (change.assignee_id, change.team_id) != (assignee_id, team_id):
        conversation.assign(s, who, conv.id, assignee_id=change.assignee_id, team_id=change.team_id)
        changed.append("assignment")
    return changed
