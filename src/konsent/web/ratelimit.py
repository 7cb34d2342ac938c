"""Rate limits on the public doors: 429 with Retry-After (S3, S8, #13).

Counted with the `limits` library in this process's memory (moving windows). One web
process (SQLite, or one uvicorn worker on PostgreSQL) counts exactly; with N processes each
counts alone, so a client gets at most N times the limit. docs/SECURITY.md says why that is
accepted and what is shared across processes instead (the sign-in lock-out lives in the
database).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from konsent.i18n import t
from konsent.settings import Settings
from konsent.web.deps import request_locale


class Limiter:
    """The limits of one installation, per door; one memory storage per process."""

    def __init__(self, settings: Settings) -> None:
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._rates: dict[str, list[RateLimitItem]] = {
            "signin": parse_many(settings.rate_limit_signin),
            "signin-account": parse_many(settings.rate_limit_signin_account),
            "optin": parse_many(settings.rate_limit_optin),
            "simulator": parse_many(settings.rate_limit_simulator),
            "simulator-read": parse_many(settings.rate_limit_simulator_read),
            "privacy": parse_many(settings.rate_limit_privacy),
        }

    def retry_after(self, door: str, key: str) -> int | None:
        """Seconds until `key` may pass `door` again, or None if it may pass now (nothing counted)."""
        waits = []
        for rate in self._rates[door]:
            if not self._limiter.test(rate, door, key):
                reset = self._limiter.get_window_stats(rate, door, key).reset_time
                waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None

    def hit(self, door: str, key: str) -> int | None:
        """Count one passage; seconds to wait if this one is over a limit (then it is not let through)."""
        wait = self.retry_after(door, key)
        if wait is not None:
            return wait
        for rate in self._rates[door]:
            self._limiter.hit(rate, door, key)
        return None

    def clear(self, door: str, key: str) -> None:
        for rate in self._rates[door]:
            self._limiter.clear(rate, door, key)


def limiter(request: Request) -> Limiter:
    """The installation's limiter, made on first use (kept on the app)."""
    found = getattr(request.app.state, "limiter", None)
    if not isinstance(found, Limiter):
        found = request.app.state.limiter = Limiter(request.app.state.ctx.settings)
    return found


def client_key(request: Request) -> str:
    """Who is asking: the peer address (uvicorn --proxy-headers makes it the client behind a proxy)."""
    return request.client.host if request.client else "unknown"


def account_key(tenant: str, email: str) -> str:
    """A sign-in account as a limiter key, without the e-mail address in memory in clear."""
    return hashlib.sha256(f"{tenant.strip().lower()}\0{email.strip().lower()}".encode()).hexdigest()


def N_(msgid: str) -> str:
    return msgid


TOO_MANY = N_("Too many requests. Please wait a moment and try again.")


class TooManyRequests(HTTPException):
    """429 with Retry-After; FastAPI renders it as JSON with the header."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(429, message, {"retry-after": str(retry_after)})


def per_client(door: str) -> Callable[[Request], None]:
    """A route dependency: each client passes `door` at most at its configured rate."""

    def check(request: Request) -> None:
        wait = limiter(request).hit(door, client_key(request))
        if wait is not None:
            raise TooManyRequests(wait, t(request_locale(request), TOO_MANY))

    return check
