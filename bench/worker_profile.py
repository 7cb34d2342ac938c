"""Where one worker spends its time per message: prints ONE JSON line (#14, docs/PERFORMANCE.md).

Runs the delivery worker *in this process* against the fake provider (bench/fakeprovider.py,
its own process) and PostgreSQL, so that it can count what a wall-clock benchmark cannot:

- `cpu_us_per_msg`: CPU of this process (every thread: event loop, claims, the recorder's
  group commit) plus the PostgreSQL backends serving it, per message sent;
- `sql_per_msg` and `sql_by_kind`: statements sent to PostgreSQL per message, by their first
  words (counted at SQLAlchemy's cursor level, an executemany once; statements run on the
  psycopg connection directly count as "raw …");
- `thread_cpu_us_per_msg`: the same CPU by thread (MainThread is the event loop, konsent-recorder
  the group commit, the executor's threads the claims and send guards);
- with `--profile loop|recorder|both`, cProfile on that thread's CPU time, on stderr.

    python -m bench.worker_profile --send 5000
    python -m bench.worker_profile --send 5000 --profile recorder

On a shared machine CPU per message is the steadier figure, but it too grows with the
neighbours' load (caches, the hypervisor): `raw_client_cpu_us_per_req` is aiohttp alone against
the same fake measured just before, and `cpu_in_raw_requests` the worker's CPU per message in
those units (about 72 µs on the idle machine).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
MASTER = base64.urlsafe_b64encode(b"b" * 32).decode()


def _kind(statement: str) -> str:
    words = re.sub(r"\s+", " ", statement.strip()).split(" ")
    head = " ".join(words[:3]).upper()
    if head.startswith("SELECT"):
        m = re.search(r"\bFROM (\w+)", statement)
        return f"SELECT {m.group(1) if m else '?'}"
    return head[:40]


def _raw_cpu_us(url: str, seconds: float = 3.0) -> float:
    """CPU µs per request of aiohttp alone against the same fake, now: the yardstick on a shared machine."""
    import uvloop

    from bench.broadcast import _raw_client

    c0, t0 = time.process_time(), time.monotonic()
    rate = uvloop.run(_raw_client(url, seconds))
    c1, t1 = time.process_time(), time.monotonic()
    return (c1 - c0) / (rate * (t1 - t0)) * 1e6


class _ThreadCpu:
    """CPU seconds per thread name of this process, sampled from /proc (threads that end still count)."""

    def __init__(self) -> None:
        import threading

        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._sample()
        self.first = {tid: c for tid, (_, c) in self.last.items()}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import threading

        from bench.cpu import _TICK

        names = {t.native_id: t.name for t in threading.enumerate()}
        for task in Path("/proc/self/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            f = stat[stat.rindex(")") + 2 :].split()
            tid = int(task.name)
            name = names.get(tid, "?")
            name = re.sub(r"_\d+$", "", re.sub(r"\(.*\)", "", name)).strip() or "?"
            self.last[tid] = (name, (int(f[11]) + int(f[12])) / _TICK)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        out: dict[str, float] = {}
        for tid, (name, c) in self.last.items():
            out[name] = out.get(name, 0.0) + c - self.first.get(tid, 0.0)
        return out


def run(db: str, n: int, numbers: int, profile: str) -> dict[str, Any]:
    from sqlalchemy import event

    import bench.benchhttp  # noqa: F401 - registers the adapter
    from bench.cpu import CpuMeter
    from bench.seedbulk import seed_bulk, setup_tenant
    from konsent.app import build
    from konsent.delivery.worker import Worker
    from konsent.flows.outbound import broadcast as bc
    from konsent.settings import Settings

    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeprovider", "--port", str(port), "--no-track"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])},
    )
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        raw_us = _raw_cpu_us(url)
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                database_url=db,
                master_key=MASTER,
                data_dir=Path(data),
                worker_batch=500,
                worker_concurrency=100,
            )
            ctx = build(settings, run_migrations=True)
            tenant_id, accounts = setup_tenant(ctx, url, accounts=numbers, rate=1_000_000)
            seed_bulk(ctx, tenant_id, accounts, n)
            with ctx.db.write() as s:
                b = bc.create_broadcast(ctx, s, tenant_id, name="bench", topic="news", text="Neuigkeiten")
                bc.schedule(s, b, None)
                bid = b.id
            bc.queue_all(ctx, tenant_id, bid, size=5000)

            counts: Counter[str] = Counter()

            @event.listens_for(ctx.db.engine, "before_cursor_execute")
            def _count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
                counts[_kind(statement)] += 1

            import psycopg

            plain_execute = psycopg.Connection.execute

            def counted_execute(self, query, params=None, **kw):  # type: ignore[no-untyped-def]
                counts["raw " + _kind(str(query))] += 1
                return plain_execute(self, query, params, **kw)

            psycopg.Connection.execute = counted_execute  # type: ignore[method-assign]
            meter = CpuMeter(ctx.db.engine, [os.getpid()])
            recorder_prof = None
            if profile in ("recorder", "both"):
                import cProfile

                from konsent.delivery import recorder as recorder_mod

                recorder_prof = cProfile.Profile(time.thread_time)
                plain_run = recorder_mod.Recorder._run

                def profiled_run(self):  # type: ignore[no-untyped-def]
                    recorder_prof.runcall(plain_run, self)

                recorder_mod.Recorder._run = profiled_run  # type: ignore[method-assign]
            claim_prof = None
            if profile == "claim":
                import cProfile
                import threading

                from konsent.delivery import guard as guard_mod
                from konsent.delivery import outbox as outbox_mod

                claim_prof = cProfile.Profile(time.thread_time)
                one_at_a_time = threading.Lock()

                def profiled(fn):  # type: ignore[no-untyped-def]
                    def run(*a, **k):  # type: ignore[no-untyped-def]
                        with one_at_a_time:
                            return claim_prof.runcall(fn, *a, **k)

                    return run

                outbox_mod.claim = profiled(outbox_mod.claim)  # type: ignore[assignment]
                guard_mod.SendGuard = profiled(guard_mod.SendGuard)  # type: ignore[assignment]
            worker = Worker(ctx, "profile")
            threads = _ThreadCpu()
            meter.start()
            cpu0, t0 = time.process_time(), time.monotonic()

            async def go() -> int:
                total = 0
                while True:
                    got = await worker.drain(timeout=120)
                    total += got
                    if got == 0:
                        return total

            import uvloop

            loop_prof = None
            if profile in ("loop", "both"):
                import cProfile

                loop_prof = cProfile.Profile(time.thread_time)
                claimed = loop_prof.runcall(uvloop.run, go())
            else:
                claimed = uvloop.run(go())
            t1, cpu1 = time.monotonic(), time.process_time()
            by_thread = threads.stop()
            total_cpu = meter.stop()
            counts_total = sum(counts.values())
            out = {
                "raw_client_cpu_us_per_req": round(raw_us),
                "cpu_in_raw_requests": round(total_cpu / claimed * 1e6 / raw_us, 2),
                "sent": claimed,
                "wall_s": round(t1 - t0, 2),
                "msgs_per_s": round(claimed / (t1 - t0)),
                "process_cpu_us_per_msg": round((cpu1 - cpu0) / claimed * 1e6),
                "cpu_us_per_msg": round(total_cpu / claimed * 1e6),
                "pg_cpu_us_per_msg": round((total_cpu - (cpu1 - cpu0)) / claimed * 1e6),
                "thread_cpu_us_per_msg": {k: round(v / claimed * 1e6) for k, v in by_thread.items()},
                "sql_per_msg": round(counts_total / claimed, 3),
                "sql_by_kind": dict(counts.most_common(25)),
            }
            if loop_prof is not None:
                import pstats

                st = pstats.Stats(loop_prof, stream=sys.stderr)
                st.sort_stats("tottime").print_stats(int(os.environ.get("BENCH_PROFILE_LINES", "45")))
                st.sort_stats("cumulative").print_stats(60)
            if claim_prof is not None:
                import pstats

                st = pstats.Stats(claim_prof, stream=sys.stderr)
                st.sort_stats("tottime").print_stats(int(os.environ.get("BENCH_PROFILE_LINES", "45")))
                st.sort_stats("cumulative").print_stats(60)
            if recorder_prof is not None:
                import pstats

                st = pstats.Stats(recorder_prof, stream=sys.stderr)
                st.sort_stats("tottime").print_stats(35)
                st.sort_stats("cumulative").print_stats(45)
            ctx.db.dispose()
            return out
    finally:
        fake.terminate()
        fake.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "KONSENT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--send", type=int, default=5000)
    ap.add_argument("--numbers", type=int, default=1)
    ap.add_argument(
        "--profile",
        choices=["", "loop", "recorder", "both", "claim"],
        default="",
        help="cProfile (thread CPU time): the event loop, the recorder, or claims and send guards",
    )
    args = ap.parse_args()
    from sqlalchemy import text

    from konsent.store.db import make_engine

    schema = f"konsent_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.db)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.db else "?"
    try:
        out = run(f"{args.db}{sep}options=-csearch_path%3D{schema}", args.send, args.numbers, args.profile)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(json.dumps({"db": "postgresql", "cpus": os.cpu_count(), **out}))


if __name__ == "__main__":
    main()
