"""The fake provider's "sent" status webhooks, echoing our reference, handed to konsent's status sink.

The bench fake (`bench.fakeprovider`) calls `EchoFeeder` for every message it accepts, before it
answers; the feeder hands the statuses, in batches every 20 ms, to the same group commit the web
app's webhook route uses (`status_sink.sink(ctx).submit`), as WhatsApp's status webhooks would
arrive. A worker killed after the provider accepted a message thus still gets its echo.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from konsent.domain.events import StatusUpdate
from konsent.flows.context import Konsent
from konsent.flows.inbound import status_sink
from konsent.store.types import utcnow


class EchoFeeder:
    def __init__(self, ctx: Konsent) -> None:
        self.ctx = ctx
        self.tenants: dict[int, int] = {}  # account id -> tenant id, set once the accounts exist
        self.enabled = True
        self.fed = 0
        self._items: list[tuple[int, str, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __call__(self, account: str, provider_id: str, ref: str | None) -> None:
        if self.enabled:
            with self._lock:
                self._items.append((int(account), provider_id, ref))

    def __enter__(self) -> EchoFeeder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        by_account: dict[int, list[StatusUpdate]] = defaultdict(list)
        for acc, pid, ref in items:
            by_account[acc].append(StatusUpdate(pid, "sent", utcnow(), ref=ref))
        for acc, events in by_account.items():
            status_sink.sink(self.ctx).submit(acc, self.tenants[acc], events)
            self.fed += len(events)
