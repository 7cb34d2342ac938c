"""Bot flows as data (M2): read and write YAML/JSON definitions, check them, store them per tenant.

Owns the `bot_flows` rows; `flows.inbox.bot` runs them. May import what `flows.inbox` may.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain import flowsteps as fs
from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.organisation import teams
from konsent.store.tables import BotFlow
from konsent.store.types import utcnow

MAX_IMPORT_BYTES = 200_000


# --- flows as data ---------------------------------------------------------------------------------


def load_definition(text: str, fmt: str = "yaml") -> dict[str, Any]:
    """Read a flow from YAML or JSON text (import, M2); raises InvalidInput."""
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise InvalidInput(detail="the flow file is too large")
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput("the file is not valid {format}", format=fmt.upper()) from exc
    if not isinstance(data, dict):
        raise InvalidInput(detail="a flow must be a mapping")
    return data


def dump_definition(definition: dict[str, Any], fmt: str = "yaml") -> str:
    """A flow as YAML or JSON text (export, M2)."""
    if fmt == "json":
        return json.dumps(definition, ensure_ascii=False, indent=2)
    return yaml.safe_dump(definition, allow_unicode=True, sort_keys=False)


def _checked(definition: dict[str, Any]) -> fs.Flow:
    try:
        return fs.parse_flow(definition)
    except fs.FlowError as exc:
        raise InvalidInput(detail=str(exc)) from exc


def save_flow(
    s: Session,
    tenant_id: int,
    actor: str,
    definition: dict[str, Any],
    *,
    flow_id: int | None = None,
    active: bool = True,
    priority: int = 100,
) -> BotFlow:
    """Create or replace a flow after checking it; routes must name existing teams."""
    flow = _checked(definition)
    for step in flow.steps.values():
        if step.team and teams.team_by_slug(s, tenant_id, step.team) is None:
            raise InvalidInput("step {step}: there is no team {team}", step=step.id, team=repr(step.team))
    row = get_flow(s, tenant_id, flow_id) if flow_id else BotFlow(tenant_id=tenant_id)
    row.name = flow.name
    row.definition = json.loads(json.dumps(definition))
    row.active = active
    row.priority = priority
    row.updated_at = utcnow()
    if flow_id is None:
        s.add(row)
    s.flush()
    audit.record(s, tenant_id, actor, "bot.flow_saved", f"flow:{row.id}", name=flow.name)
    return row


def get_flow(s: Session, tenant_id: int, flow_id: int) -> BotFlow:
    row = s.scalars(
        select(BotFlow).where(BotFlow.tenant_id == tenant_id, BotFlow.id == flow_id)
    ).one_or_none()
    if row is None:
        raise NotFound()
    return row


def list_flows(s: Session, tenant_id: int) -> list[BotFlow]:
    return list(
        s.scalars(
            select(BotFlow).where(BotFlow.tenant_id == tenant_id).order_by(BotFlow.priority, BotFlow.id)
        )
    )


__all__ = [
    "MAX_IMPORT_BYTES",
    "dump_definition",
    "get_flow",
    "list_flows",
    "load_definition",
    "save_flow",
]
