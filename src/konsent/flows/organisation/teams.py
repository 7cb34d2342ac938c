"""Teams and memberships; agents see only their own teams' conversations (M1, S3)."""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit
from konsent.store.tables import StaffUser, Team, TeamMember

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def create_team(s: Session, tenant_id: int, slug: str, name: str, actor: str = "system") -> Team:
    """A new team of this tenant (slug: a-z, 0-9, - and _)."""
    slug = slug.strip().lower()
    name = name.strip()
    if not _SLUG.match(slug):
        raise InvalidInput(detail="a team needs a short id of a-z, 0-9, - and _")
    if not name or len(name) > 200:
        raise InvalidInput(detail="a team needs a name of at most 200 characters")
    if s.scalars(select(Team).where(Team.tenant_id == tenant_id, Team.slug == slug)).first():
        raise Conflict(detail="a team with this id exists already")
    team = Team(tenant_id=tenant_id, slug=slug, name=name)
    s.add(team)
    s.flush()
    audit.record(s, tenant_id, actor, "team.create", f"team:{team.id}", slug=slug)
    return team


def list_teams(s: Session, tenant_id: int) -> list[Team]:
    return list(s.scalars(select(Team).where(Team.tenant_id == tenant_id).order_by(Team.name)).all())


def get_team(s: Session, tenant_id: int, team_id: int) -> Team:
    team = s.scalars(select(Team).where(Team.tenant_id == tenant_id, Team.id == team_id)).one_or_none()
    if team is None:
        raise NotFound()
    return team


def team_by_slug(s: Session, tenant_id: int, slug: str) -> Team | None:
    return s.scalars(select(Team).where(Team.tenant_id == tenant_id, Team.slug == slug)).one_or_none()


def _user(s: Session, tenant_id: int, user_id: int) -> StaffUser:
    user = s.scalars(
        select(StaffUser).where(StaffUser.tenant_id == tenant_id, StaffUser.id == user_id)
    ).one_or_none()
    if user is None:
        raise NotFound()
    return user


def add_member(s: Session, tenant_id: int, team_id: int, user_id: int, actor: str = "system") -> None:
    """Put a staff member into a team (idempotent)."""
    team = get_team(s, tenant_id, team_id)
    _user(s, tenant_id, user_id)
    exists = s.scalars(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    ).first()
    if exists is None:
        s.add(TeamMember(tenant_id=tenant_id, team_id=team.id, user_id=user_id))
        audit.record(s, tenant_id, actor, "team.add_member", f"team:{team.id}", user_id=user_id)


def remove_member(s: Session, tenant_id: int, team_id: int, user_id: int, actor: str = "system") -> None:
    team = get_team(s, tenant_id, team_id)
    s.execute(delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id))
    audit.record(s, tenant_id, actor, "team.remove_member", f"team:{team.id}", user_id=user_id)


def members(s: Session, tenant_id: int, team_id: int) -> list[StaffUser]:
    return list(
        s.scalars(
            select(StaffUser)
            .join(TeamMember, TeamMember.user_id == StaffUser.id)
            .where(TeamMember.tenant_id == tenant_id, TeamMember.team_id == team_id)
            .order_by(StaffUser.email)
        ).all()
    )


def team_ids_of(s: Session, tenant_id: int, user_id: int) -> set[int]:
    """The teams one staff member belongs to."""
    return set(
        s.scalars(
            select(TeamMember.team_id).where(TeamMember.tenant_id == tenant_id, TeamMember.user_id == user_id)
        ).all()
    )
