"""A minimal fake messaging provider on 127.0.0.1 (aiohttp), for benchmarks and delivery tests.

POST /send/{account}  JSON {"to": ..., "text": ...} → 200 {"id": ...}
GET  /stats           counts per account and per address, rate and Retry-After violations
POST /reset           forget everything

Faults (for the delivery-guarantee tests): a share of requests answers 5xx,
429 with Retry-After, or records the message and then stalls past the
client's timeout (an unknown outcome for the sender). While an account is
rate-limited every request for it counts as a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Faults:
    error_5xx: float = 0.0
    rate_limit_429: float = 0.0
    timeout: float = 0.0
    retry_after_s: float = 1.0
    stall_s: float = 3.0
    grace_s: float = 0.05  # requests already on the wire when the 429 went out are not violations


@dataclass
class Ledger:
    received: Counter[str] = field(default_factory=Counter)  # "account|address" -> count
    per_account: Counter[str] = field(default_factory=Counter)
    blocked_until: dict[str, float] = field(default_factory=dict)
    blocked_from: dict[str, float] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # address -> arrivals
    violations: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    window: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    max_rate: dict[str, int] = field(default_factory=dict)  # highest count in any 1-s window
    seq: int = 0


def make_app(faults: Faults | None = None, track: bool = True) -> web.Application:
    f = faults or Faults()
    led = Ledger()
    rnd = random.Random(7)

    async def send(request: web.Request) -> web.Response:
        acc = request.match_info["account"]
        data = await request.json()
        now = time.monotonic()
        if track:
            if led.blocked_from.get(acc, 0.0) + f.grace_s < now < led.blocked_until.get(acc, 0.0):
                led.violations += 1
            w = led.window[acc]
            w.append(now)
            while w and w[0] < now - 1.0:
                w.popleft()
            if len(w) > led.max_rate.get(acc, 0):
                led.max_rate[acc] = len(w)
        r = rnd.random() if (f.error_5xx or f.rate_limit_429 or f.timeout) else 1.0
        if r < f.error_5xx:
            led.answered["5xx"] += 1
            return web.json_response({"error": "unavailable"}, status=503)
        r -= f.error_5xx
        if r < f.rate_limit_429:
            led.answered["429"] += 1
            if now >= led.blocked_until.get(acc, 0.0):
                led.blocked_from[acc] = now
            led.blocked_until[acc] = max(led.blocked_until.get(acc, 0.0), now + f.retry_after_s)
            return web.json_response(
                {"error": "rate limited"}, status=429, headers={"Retry-After": str(f.retry_after_s)}
            )
        r -= f.rate_limit_429
        led.seq += 1
        if track:
            led.received[f"{acc}|{data.get('to')}"] += 1
            led.times[str(data.get("to"))].append(time.monotonic())
        led.per_account[acc] += 1
        if r < f.timeout:
            led.answered["stalled"] += 1
            await asyncio.sleep(f.stall_s)
        led.answered["200"] += 1
        return web.json_response({"id": f"fp.{acc}.{led.seq}"})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "total": sum(led.per_account.values()),
                "per_account": dict(led.per_account),
                "received": dict(led.received),
                "violations": led.violations,
                "answered": dict(led.answered),
                "max_rate": led.max_rate,
                "times": led.times,
            }
        )

    async def reset(_: web.Request) -> web.Response:
        nonlocal led
        led = Ledger()
        return web.json_response({"ok": True})

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({"id": "x"})

    app = web.Application()
    app.router.add_post("/send/{account}", send)
    app.router.add_post("/ping", ping)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


class ThreadedFake:
    """The fake provider on its own event loop in a thread (tests)."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(make_app(self.faults), access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> ThreadedFake:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:  # type: ignore[type-arg]
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
            return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--no-track", action="store_true", help="count only (fastest)")
    args = ap.parse_args()
    web.run_app(
        make_app(track=not args.no_track), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
