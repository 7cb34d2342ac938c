"""The channel account behind a webhook URL."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import NotFound
from konsent.store.tables import ChannelAccount

_ROUTE_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def account_by_route(s: Session, route_key: str) -> ChannelAccount:
    """The active account whose webhook URL carries `route_key`; NotFound otherwise."""
    if not _ROUTE_KEY_RE.fullmatch(route_key):  # /webhooks/%00 must not reach the database (#13)
        raise NotFound()
    acc = s.scalars(
        select(ChannelAccount).where(ChannelAccount.route_key == route_key, ChannelAccount.active.is_(True))
    ).one_or_none()
    if acc is None:
        raise NotFound()
    return acc
