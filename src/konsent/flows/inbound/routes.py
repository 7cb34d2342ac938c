"""The channel account behind a webhook URL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import NotFound
from konsent.store.tables import ChannelAccount


def account_by_route(s: Session, route_key: str) -> ChannelAccount:
    """The active account whose webhook URL carries `route_key`; NotFound otherwise."""
    acc = s.scalars(
        select(ChannelAccount).where(ChannelAccount.route_key == route_key, ChannelAccount.active.is_(True))
    ).one_or_none()
    if acc is None:
        raise NotFound()
    return acc
