"""Pacing per channel account: a token bucket at the provider's documented throughput (CH3)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows `rate` acquisitions per second with bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class Pacer:
    """One bucket per channel account, created on first use."""

    def __init__(self) -> None:
        self._buckets: dict[int, TokenBucket] = {}

    async def acquire(self, account_id: int, rate: float) -> None:
        bucket = self._buckets.get(account_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[account_id] = TokenBucket(rate)
        await bucket.acquire()
