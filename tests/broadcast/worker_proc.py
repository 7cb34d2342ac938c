"""A delivery worker process for the crash and scale-out tests (configured by environment)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench.benchhttp  # noqa: F401 - registers the bench adapter

from konsent.app import build
from konsent.delivery import outbox
from konsent.delivery.worker import Worker
from konsent.settings import Settings


def main() -> None:
    backoff = float(os.environ.get("BENCH_BACKOFF_S", "0.05"))
    outbox.backoff_seconds = lambda attempt: backoff  # type: ignore[assignment] - fast retries in tests
    ctx = build(Settings(), run_migrations=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    asyncio.run(Worker(ctx).run(stop))


if __name__ == "__main__":
    main()
