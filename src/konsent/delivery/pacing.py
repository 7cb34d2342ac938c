"""Pacing per channel account: a token bucket at the provider's documented throughput (CH3).

On PostgreSQL one worker at a time owns an account (an advisory lock, see
`AccountLocks`), so the bucket of that worker is the account's rate for the
whole cluster. A provider's Retry-After blocks the whole account until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from typing import Any

from sqlalchemy import Connection, text

from konsent.channels.base import AccountConfig, Capabilities

_LOCK_SPACE = 0x6B6E  # first key of the two-key advisory lock: "kn"
WORKER_APP_NAME = "konsent-worker"


def account_rate(caps: Capabilities, account: AccountConfig) -> float:
    """Messages per second for one account: the channel's default, or the account's own tier."""
    value: Any = account.settings.get("throughput_per_s")
    try:
        rate = float(value) if value is not None else caps.throughput_per_s
    except (TypeError, ValueError):
        rate = caps.throughput_per_s
    return max(0.1, rate)


class TokenBucket:
    """Allows `rate` acquisitions per second with bursts up to `burst`; can be blocked until a time."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 20)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.blocked_until = 0.0
        self._lock = asyncio.Lock()

    def block(self, seconds: float) -> None:
        """Nothing passes for `seconds` (a provider's Retry-After), then the bucket restarts empty."""
        until = time.monotonic() + seconds
        if until > self.blocked_until:
            self.blocked_until = until
            self.tokens = 0.0

    async def acquire(self) -> None:
        if not self._lock.locked() and self._take(time.monotonic()):
            return  # a token is there and nobody waits before us: no lock, no suspension
        async with self._lock:
            while not self._take(time.monotonic()):
                now = time.monotonic()
                if now < self.blocked_until:
                    await asyncio.sleep(self.blocked_until - now)
                    self.updated = time.monotonic()  # the bucket restarts empty after a block
                else:
                    await asyncio.sleep((1 - self.tokens) / self.rate)

    def _take(self, now: float) -> bool:
        if now < self.blocked_until:
            return False
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ContactSpacing:
    """Spacing of messages to one contact on one account (CH3), as a generic cell rate algorithm.

    `interval` seconds per message with bursts of `burst`: WhatsApp's pair limit (one message
    every 6 s to the same user, bursts of up to 45 that borrow from later) and Telegram's one
    message per second per chat. Only contacts written to recently are remembered, so memory
    stays small however large the audience.
    """

    def __init__(self) -> None:
        self._tat: dict[tuple[int, int], float] = {}  # theoretical arrival time of the next message
        self._next_prune = 0.0

    def reserve(
        self, account_id: int, contact_id: int, interval: float, burst: int, now: float | None = None
    ) -> float:
        """Take the next slot for this contact; returns the seconds to wait before sending in it."""
        if interval <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        key = (account_id, contact_id)
        tat = max(self._tat.get(key, now), now)
        wait = max(0.0, tat - (max(1, burst) - 1) * interval - now)
        self._tat[key] = tat + interval
        if now >= self._next_prune:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
            self._next_prune = now + 5.0
        return wait

    def release(self, account_id: int, contact_id: int, interval: float) -> None:
        """Give back a slot that was reserved but not used (the message was postponed instead)."""
        key = (account_id, contact_id)
        if key in self._tat:
            self._tat[key] -= interval

    def __len__(self) -> int:
        return len(self._tat)


class Pacer:
    """One bucket per channel account, created on first use."""

    def __init__(self) -> None:
        self._buckets: dict[int, TokenBucket] = {}

    def bucket(self, account_id: int, rate: float) -> TokenBucket:
        bucket = self._buckets.get(account_id)
        if bucket is None or bucket.rate != rate:
            old = bucket
            bucket = self._buckets[account_id] = TokenBucket(rate)
            if old is not None:
                bucket.blocked_until = old.blocked_until
        return bucket

    async def acquire(self, account_id: int, rate: float) -> None:
        await self.bucket(account_id, rate).acquire()

    def block(self, account_id: int, seconds: float) -> None:
        bucket = self._buckets.get(account_id)
        if bucket is not None:
            bucket.block(seconds)

    def blocked(self, account_id: int) -> bool:
        bucket = self._buckets.get(account_id)
        return bucket is not None and bucket.blocked_until > time.monotonic()

    def forget(self, account_id: int) -> None:
        self._buckets.pop(account_id, None)


class AccountLocks:
    """Which channel accounts this worker owns on PostgreSQL (session advisory locks).

    A worker sends only for accounts it owns, so per-account pacing holds across
    the cluster. Each worker takes a fair share of the accounts that have work;
    a worker that dies loses its connection and with it its locks.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.owned: set[int] = set()
        self._mutex = threading.Lock()  # lanes and the periodic job run in different threads
        # Advisory locks and pg_stat_activity are database-wide: scope both to this installation's
        # schema, so two installations (or two test runs) in one database never share a lock.
        schema = str(conn.execute(text("SELECT current_schema()")).scalar() or "public")
        self.space = int(
            conn.execute(text("SELECT hashtext(:k)"), {"k": f"konsent-accounts:{schema}"}).scalar()
            or _LOCK_SPACE
        )
        self.app_name = f"{WORKER_APP_NAME}:{schema}"[:63]
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": self.app_name})
        conn.commit()

    def rebalance(self, with_work: list[int]) -> set[int]:
        """Release idle or surplus accounts, try to take a fair share of the busy ones."""
        with self._mutex:
            return self._rebalance(with_work)

    def _rebalance(self, with_work: list[int]) -> set[int]:
        c = self.conn
        workers = int(
            c.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": self.app_name},
            ).scalar_one()
        )
        busy = set(with_work)
        fair = max(1, math.ceil(len(busy) / max(1, workers)))
        for acc in sorted(self.owned - busy):
            self._unlock(acc)
        while len(self.owned) > fair:
            self._unlock(max(self.owned))
        for acc in sorted(busy - self.owned, key=lambda a: hash((a, id(self)))):
            if len(self.owned) >= fair:
                break
            got = c.execute(text("SELECT pg_try_advisory_lock(:s, :a)"), {"s": self.space, "a": acc}).scalar()
            if got:
                self.owned.add(acc)
        c.commit()
        return set(self.owned)

    def _unlock(self, acc: int) -> None:
        self.conn.execute(text("SELECT pg_advisory_unlock(:s, :a)"), {"s": self.space, "a": acc})
        self.owned.discard(acc)

    def try_scheduler(self) -> bool:
        """Only one worker runs the periodic jobs at a time (the scheduler lock)."""
        with self._mutex:
            got = bool(
                self.conn.execute(text("SELECT pg_try_advisory_lock(:s, 0)"), {"s": self.space}).scalar()
            )
            self.conn.commit()
            return got

    def close(self) -> None:
        # Invalidate, not close: a pooled connection would go back to the pool still holding
        # its session advisory locks. A broken connection's locks die with it anyway.
        with self._mutex, contextlib.suppress(Exception):
            self.conn.invalidate()
            self.conn.close()
