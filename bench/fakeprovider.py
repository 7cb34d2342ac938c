"""A minimal fake messaging provider on 127.0.0.1 (aiohttp), for benchmarks and delivery tests.

POST /send/{account}  JSON {"to": ..., "text": ..., "sent_at": client's monotonic send time} → 200 {"id": ...}
GET  /stats           counts per account and per address, rate and Retry-After violations
POST /reset           forget everything

With a `StatusPoster` (--status-url, --status-secret), every accepted message is answered
like a real provider does: one signed webhook per status (sent, delivered, read) posted
to konsent as fast as it takes them, with what was posted, answered and still waiting
in /stats under "webhooks".

Faults (for the delivery-guarantee tests): a share of requests answers 5xx,
429 with Retry-After, or records the message and then stalls past the
client's timeout (an unknown outcome for the sender). While an account is
rate-limited every request for it counts as a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from konsent.channels.simulator import SIGNATURE_HEADER, sign


@dataclass
class Faults:
    error_5xx: float = 0.0
    rate_limit_429: float = 0.0
    timeout: float = 0.0
    retry_after_s: float = 1.0
    stall_s: float = 3.0
    grace_s: float = 0.05  # requests sent before the 429 can have reached the client are not violations


@dataclass
class Ledger:
    received: Counter[str] = field(default_factory=Counter)  # "account|address" -> count
    per_account: Counter[str] = field(default_factory=Counter)
    blocked_until: dict[str, float] = field(default_factory=dict)
    blocked_from: dict[str, float] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # address -> arrivals
    violations: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    # per account, the clients' send times (see `send`), for the highest count in any 1-s window
    sends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    seq: int = 0
    first_at: float = 0.0  # monotonic time of the first and the last accepted message
    last_at: float = 0.0


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window, by the clients' send times.

    The rate a client kept is judged by when it sent, not by when a busy machine got round to
    handling each request: requests queued behind a stall arrive bunched, though paced."""
    ordered, most, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class StatusPoster:
    """Posts the statuses of accepted messages back to konsent, signed like the simulator channel."""

    def __init__(
        self,
        url: str,
        secret: str,
        statuses: tuple[str, ...] = ("sent", "delivered", "read"),
        concurrency: int = 64,
        routes: dict[str, str] | None = None,
    ) -> None:
        self.url, self.secret, self.statuses, self.concurrency = url, secret, statuses, concurrency
        self.routes = routes or {}  # account -> its own webhook URL (several numbers); else `url`
        self.queue: asyncio.Queue[tuple[str, str, str | None, str]] = asyncio.Queue()
        self.posted = self.ok = self.errors = self.backlog_max = 0
        self.latencies_ms: list[float] = []
        self.first_ok = self.last_ok = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def accepted(self, provider_id: str, ref: str | None = None, account: str = "") -> None:
        url = self.routes.get(account, self.url)
        for status in self.statuses:
            # the reference sent with the message is echoed in its "sent" status, as WhatsApp does
            self.queue.put_nowait((provider_id, status, ref if status == "sent" else None, url))
        self.backlog_max = max(self.backlog_max, self.queue.qsize())

    async def start(self, _: web.Application) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))
        self._tasks = [asyncio.create_task(self._post_loop()) for _ in range(self.concurrency)]

    async def stop(self, _: web.Application) -> None:
        for t in self._tasks:
            t.cancel()
        await self._session.close()

    async def _post_loop(self) -> None:
        while True:
            pid, status, ref, url = await self.queue.get()
            item: dict[str, object] = {"id": pid, "status": status, "timestamp": time.time()}
            if ref:
                item["ref"] = ref
            body = json.dumps({"statuses": [item]}).encode()
            sig = sign(self.secret, body)
            t0 = time.monotonic()
            self.posted += 1
            try:
                async with self._session.post(
                    url,
                    data=body,
                    headers={SIGNATURE_HEADER: sig, "content-type": "application/json"},
                ) as r:
                    await r.read()
                    good = r.status == 200
            except Exception:  # a refused connection or a reset: counted, never retried here
                good = False
            now = time.monotonic()
            if good:
                self.ok += 1
                self.latencies_ms.append((now - t0) * 1000)
                self.first_ok = self.first_ok or now
                self.last_ok = now
            else:
                self.errors += 1

    def stats(self) -> dict[str, object]:
        lat = sorted(self.latencies_ms)
        return {
            "posted": self.posted,
            "ok": self.ok,
            "errors": self.errors,
            "waiting": self.queue.qsize(),
            "backlog_max": self.backlog_max,
            "p50_ms": lat[len(lat) // 2] if lat else 0.0,
            "p99_ms": lat[int(len(lat) * 0.99)] if lat else 0.0,
            "first_ok": self.first_ok,
            "last_ok": self.last_ok,
        }


def make_app(
    faults: Faults | None = None,
    track: bool = True,
    poster: StatusPoster | None = None,
    on_accept: Callable[[str, str, str | None], None] | None = None,
) -> web.Application:
    """The fake; `on_accept(account, provider id, ref)` is told of every accepted message (its echo)."""
    f = faults or Faults()
    led = Ledger()
    rnd = random.Random(7)

    async def send(request: web.Request) -> web.Response:
        acc = request.match_info["account"]
        data = await request.json()
        now = time.monotonic()
        if track:
            sent_at = data.get("sent_at") if isinstance(data, dict) else None
            sent_at = float(sent_at) if isinstance(sent_at, int | float) else now  # the client's send time
            if led.blocked_from.get(acc, 0.0) + f.grace_s < sent_at < led.blocked_until.get(acc, 0.0):
                led.violations += 1
            led.sends[acc].append(sent_at)
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
        pid = f"fp.{acc}.{led.seq}"
        if poster is not None:
            poster.accepted(pid, data.get("ref"), acc)
        if on_accept is not None:
            on_accept(acc, pid, data.get("ref"))
        if r < f.timeout:
            led.answered["stalled"] += 1
            await asyncio.sleep(f.stall_s)
        led.answered["200"] += 1
        led.last_at = time.monotonic()
        led.first_at = led.first_at or led.last_at
        return web.json_response({"id": pid})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "total": sum(led.per_account.values()),
                "per_account": dict(led.per_account),
                "received": dict(led.received),
                "violations": led.violations,
                "answered": dict(led.answered),
                "max_rate": {acc: busiest_second(times) for acc, times in led.sends.items()},
                "times": led.times,
                "first_at": led.first_at,
                "last_at": led.last_at,
                "now": time.monotonic(),
                **({"webhooks": poster.stats()} if poster is not None else {}),
            }
        )

    async def reset(_: web.Request) -> web.Response:
        nonlocal led
        led = Ledger()
        return web.json_response({"ok": True})

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({"id": "x"})

    app = web.Application()
    if poster is not None:
        app.on_startup.append(poster.start)
        app.on_cleanup.append(poster.stop)
    app.router.add_post("/send/{account}", send)
    app.router.add_post("/ping", ping)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


class ThreadedFake:
    """The fake provider on its own event loop in a thread (tests)."""

    def __init__(
        self, faults: Faults | None = None, on_accept: Callable[[str, str, str | None], None] | None = None
    ) -> None:
        self.faults = faults
        self.on_accept = on_accept
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(make_app(self.faults, on_accept=self.on_accept), access_log=None)
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
    ap.add_argument("--status-url", default="", help="post sent/delivered/read webhooks here")
    ap.add_argument("--status-secret", default="")
    ap.add_argument("--status-routes", default="", help="account=url,... : each account's own webhook URL")
    args = ap.parse_args()
    routes = dict(item.split("=", 1) for item in args.status_routes.split(",") if item)
    poster = (
        StatusPoster(args.status_url or next(iter(routes.values()), ""), args.status_secret, routes=routes)
        if args.status_url or routes
        else None
    )
    web.run_app(
        make_app(track=not args.no_track, poster=poster),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
