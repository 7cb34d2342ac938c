"""A delivery worker process for the crash and scale-out tests (configured by environment)."""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()
# First thing: a SIGTERM during the imports below is a graceful stop too, not a kill.
signal.signal(signal.SIGTERM, lambda *_: STOP.set())

import asyncio  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench.benchhttp  # noqa: E402, F401 - registers the bench adapter

from konsent.app import build  # noqa: E402
from konsent.delivery import outbox  # noqa: E402
from konsent.delivery.worker import Worker  # noqa: E402
from konsent.settings import Settings  # noqa: E402


def main() -> None:
    backoff = float(os.environ.get("BENCH_BACKOFF_S", "0.05"))
    outbox.backoff_seconds = lambda attempt: backoff  # type: ignore[assignment] - fast retries in tests
    ctx = build(Settings(), run_migrations=False)
    asyncio.run(Worker(ctx).run(STOP))


if __name__ == "__main__":
    main()
