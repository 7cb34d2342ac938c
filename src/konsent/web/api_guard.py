"""What every API token call passes: its scopes and its rate limit (M4, S3, S8).

Scopes are `<area>:read` / `<area>:write`; a GET needs read, anything else write, and the area
is the first path segment after /api/v1. A token without scopes may do all its role may do;
either way the role's permissions are checked by the route as for staff.
"""

from __future__ import annotations

import math
import time
from typing import Any

from limits import RateLimitItem, parse, storage
from limits.strategies import MovingWindowRateLimiter

from konsent.domain.errors import DomainError, PermissionDenied
from konsent.settings import Settings

# first path segment under /api/v1 -> scope area
AREAS: dict[str, str] = {
    "contacts": "contacts",
    "optins": "contacts",
    "consents": "contacts",
    "contact-labels": "contacts",
    "contact-attributes": "contacts",
    "contact-search": "contacts",
    "contact-export": "contacts",
    "messages": "messages",
    "templates": "templates",
    "broadcasts": "broadcasts",
    "segments": "broadcasts",
    "contact-pressure": "settings",
    "conversations": "conversations",
    "privacy-requests": "privacy",
    "ledger": "audit",
    "audit": "audit",
    "webhook-endpoints": "webhooks",
    "topics": "settings",
    "channels": "settings",
    "consent-texts": "settings",
}
SCOPES: tuple[str, ...] = tuple(f"{a}:{m}" for a in sorted(set(AREAS.values())) for m in ("read", "write"))


class RateLimited(DomainError):
    code = "rate_limited"
    message = "Too many requests for this token; retry after {retry_after} seconds."

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


def needed_scope(method: str, path: str) -> str | None:
    """The scope a request needs, or None outside the scoped areas."""
    rest = path.removeprefix("/api/v1/")
    area = AREAS.get(rest.split("/", 1)[0])
    if area is None:
        return None
    return f"{area}:{'read' if method in ('GET', 'HEAD', 'OPTIONS') else 'write'}"


def check_scope(scopes: list[str] | None, method: str, path: str) -> None:
    if scopes is None:
        return
    need = needed_scope(method, path)
    if need is not None and need not in scopes and f"{need.split(':')[0]}:write" not in scopes:
        raise PermissionDenied(message="This token lacks the scope {scope}.", scope=need)


class Limiter:
    """Moving-window request counts per token (`limits`; memory or shared storage)."""

    def __init__(self, settings: Settings) -> None:
        self.item: RateLimitItem = parse(settings.api_rate_limit)
        self.limiter = MovingWindowRateLimiter(storage.storage_from_string(settings.api_rate_limit_storage))

    def hit(self, token_id: int) -> None:
        if not self.limiter.hit(self.item, "api-token", str(token_id)):
            stats = self.limiter.get_window_stats(self.item, "api-token", str(token_id))
            raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))


def limiter_for(state: Any, settings: Settings) -> Limiter:
    """One limiter per application, kept on `app.state`, made at the first token call."""
    found = getattr(state, "api_limiter", None)
    if not isinstance(found, Limiter):
        found = Limiter(settings)
        state.api_limiter = found
    return found
