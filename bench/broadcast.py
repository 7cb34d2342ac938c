"""Broadcast throughput benchmark: prints ONE JSON line (issue 6, docs/PERFORMANCE.md).

Everything talks to 127.0.0.1 only: a fake provider (bench/fakeprovider.py, its own
process), PostgreSQL (a private schema, dropped afterwards), konsent worker processes.

    python -m bench.broadcast                 # full run (about 5-8 minutes)
    python -m bench.broadcast --quick         # small sizes, about a minute

Figures (docs/PERFORMANCE.md says exactly what each includes):
- raw_client_msgs_per_s / raw_client_2proc_msgs_per_s: aiohttp alone, 50 concurrent requests
  per process, blasting the same fake from one process / from two processes at once.
- one_number_msgs_per_s: one worker process, one sender number (rate cap lifted to measure
  the ceiling; pacing itself is checked by the tests), from first to last send.
- many_numbers_msgs_per_s: two worker processes, four numbers.
- ratio_to_raw_client: like for like: one worker process over the one-process raw client and
  two worker processes over the two-process raw client; the better of the two.
- worker_cpu_us_per_msg: during the one-number run, CPU of the worker process plus the
  PostgreSQL backends serving it, per message sent (bench/cpu.py).
- queue_1m_audience_s: select, consent-check (may_send per contact) and queue a newsletter
  whose text names nobody (one body sealed once per batch with the tenant key).
- queue_1m_personalised_s: the same for a newsletter greeting each contact by name (name
  opened, text filled and sealed with each contact's own key).
- worker_rss_mb_<n>: peak RSS of a worker process that queues an n-contact broadcast and then
  sends for up to --rss-send-s seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
MASTER = base64.urlsafe_b64encode(b"b" * 32).decode()


def _stats(url: str) -> dict:  # type: ignore[type-arg]
    import urllib.request

    with urllib.request.urlopen(url + "/stats", timeout=30) as r:
        return json.loads(r.read())


async def _raw_client(url: str, seconds: float, concurrency: int = 50) -> float:
    import aiohttp

    done = 0
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as sess:

        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with sess.post(url + "/send/0", json={"to": "+49170", "text": "x"}) as r:
                    await r.json()
                done += 1

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done / (time.monotonic() - t0)


def raw_child(url: str, seconds: float) -> None:
    """One raw-client process: prints its rate (messages per second) on one line."""
    print(asyncio.run(_raw_client(url, seconds)), flush=True)


def _raw_clients(url: str, seconds: float, procs: int) -> float:
    """The raw client in `procs` processes at once (as many as the konsent figure it is compared to)."""
    if procs == 1:
        return asyncio.run(_raw_client(url, seconds))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bench.broadcast", "--raw-child", url, "--raw-seconds", str(seconds)]
    children = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE) for _ in range(procs)]
    return sum(float(c.communicate(timeout=seconds + 60)[0].decode().strip() or 0) for c in children)


def _ctx(db_url: str, data_dir: str):  # type: ignore[no-untyped-def]
    from konsent.app import build
    from konsent.settings import Settings

    return build(
        Settings(database_url=db_url, master_key=MASTER, data_dir=Path(data_dir)), run_migrations=True
    )


def _worker_env(db_url: str, data_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "KONSENT_DATABASE_URL": db_url,
        "KONSENT_MASTER_KEY": MASTER,
        "KONSENT_DATA_DIR": data_dir,
        "KONSENT_LOG_LEVEL": "WARNING",
        "KONSENT_WORKER_BATCH": os.environ.get("KONSENT_WORKER_BATCH", "500"),
        "KONSENT_WORKER_CONCURRENCY": "100",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }


def _spawn_workers(n: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    prof = os.environ.get("BENCH_PROFILE_WORKER")  # a path: profile the worker(s) with cProfile
    cmd = [sys.executable, *(["-m", "cProfile", "-o", prof] if prof else []), "-m", "bench.broadcast"]
    return [subprocess.Popen([*cmd, "--worker-child"], env=env) for _ in range(n)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


SHARED_TEXT = "Neuigkeiten der Woche"
PERSONAL_TEXT = "Hallo {name|du}, hier sind deine Neuigkeiten der Woche"


def _broadcast(ctx, tenant_id: int, now: bool = True, text: str = SHARED_TEXT) -> int:  # type: ignore[no-untyped-def]
    from konsent.flows.outbound import broadcast as bc

    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tenant_id, name="bench", topic="news", text=text)
        if now:
            bc.schedule(s, b, None)
        return b.id


def _state(ctx, tenant_id: int, bid: int) -> str:  # type: ignore[no-untyped-def]
    from konsent.flows.outbound import broadcast as bc

    with ctx.db.read() as s:
        return bc.get_broadcast(s, tenant_id, bid).state


def _send_rate(
    ctx, fake: str, db: str, data: str, sent: int, numbers: int, workers: int, cap_s: float
) -> tuple[float, float | None]:  # type: ignore[no-untyped-def]
    """Messages per second at the fake, and CPU µs per message of the workers plus their backends."""
    from bench.cpu import CpuMeter
    from bench.seedbulk import seed_bulk, setup_tenant
    from konsent.flows.outbound import broadcast as bc

    tenant_id, accounts = setup_tenant(ctx, fake, accounts=numbers, rate=1_000_000)
    seed_bulk(ctx, tenant_id, accounts, sent)
    bid = _broadcast(ctx, tenant_id)
    bc.queue_all(ctx, tenant_id, bid, size=5000)
    base = _stats(fake)["total"]
    procs = _spawn_workers(workers, _worker_env(db, data))
    meter = CpuMeter(ctx.db.engine, [p.pid for p in procs]) if ctx.db.is_postgres else None
    cpu = None
    try:
        t0 = None
        polled = time.monotonic()
        deadline = time.monotonic() + cap_s
        while time.monotonic() < deadline:
            n = _stats(fake)["total"] - base
            if t0 is None and n > 0:
                t0, n0 = time.monotonic(), n
                if meter is not None:
                    meter.start()
            if n >= sent:
                break
            if meter is not None and t0 is not None and time.monotonic() - polled > 1.0:
                meter.poll()
                polled = time.monotonic()
            time.sleep(0.05)
        n = _stats(fake)["total"] - base
        t1 = time.monotonic()
        if meter is not None and t0 is not None:
            cpu = meter.stop()
    finally:
        _stop(procs)
    if t0 is None or t1 <= t0:
        return 0.0, None
    per_msg = None if cpu is None or n <= n0 else cpu / (n - n0) * 1e6
    return (n - n0) / (t1 - t0), per_msg


def _queue_time(ctx, fake: str, n: int, text: str = SHARED_TEXT) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from bench.seedbulk import seed_bulk, setup_tenant
    from konsent.flows.outbound import broadcast as bc

    tenant_id, accounts = setup_tenant(ctx, fake, accounts=1)
    seed_bulk(ctx, tenant_id, accounts, n)
    bid = _broadcast(ctx, tenant_id, text=text)
    t0 = time.monotonic()
    bc.queue_all(ctx, tenant_id, bid, size=5000)
    took = time.monotonic() - t0
    with ctx.db.read() as s:
        queued = bc.get_broadcast(s, tenant_id, bid).queued
    assert queued == n, f"queued {queued} of {n}"
    return took, tenant_id


def _worker_rss(
    ctx, fake: str, db: str, data: str, n: int, send_s: float, cap_s: float, tenant_id: int | None = None
) -> float:  # type: ignore[no-untyped-def]
    from bench.seedbulk import seed_bulk, setup_tenant

    if tenant_id is None:  # else: reuse the queue test's audience of that size
        tenant_id, accounts = setup_tenant(ctx, fake, accounts=1, rate=1_000_000)
        seed_bulk(ctx, tenant_id, accounts, n)
    bid = _broadcast(ctx, tenant_id)  # the worker's scheduler queues it
    (proc,) = _spawn_workers(1, _worker_env(db, data))
    peak = 0.0
    try:
        deadline = time.monotonic() + cap_s
        sending_since = None
        while time.monotonic() < deadline and proc.poll() is None:
            peak = max(peak, _peak_rss_mb(proc.pid))
            state = _state(ctx, tenant_id, bid)
            if state in ("sending", "done") and sending_since is None:
                sending_since = time.monotonic()
            if state == "done" or (sending_since and time.monotonic() - sending_since > send_s):
                break
            time.sleep(0.5)
        peak = max(peak, _peak_rss_mb(proc.pid))
    finally:
        _stop([proc])
    return round(peak, 1)


def worker_child() -> None:
    import threading

    import uvloop

    import bench.benchhttp  # noqa: F401
    from konsent.app import build
    from konsent.delivery.worker import Worker
    from konsent.settings import Settings

    ctx = build(Settings(), run_migrations=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    async def run() -> None:
        try:
            await Worker(ctx, lanes=int(os.environ.get("BENCH_LANES", "0")) or None).run(stop)
        finally:
            await ctx.close()

    uvloop.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "KONSENT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--send", type=int, default=30_000, help="messages per send measurement")
    ap.add_argument("--queue-audience", type=int, default=1_000_000)
    ap.add_argument("--rss-sizes", default="10000,100000,1000000")
    ap.add_argument("--rss-send-s", type=float, default=15.0)
    ap.add_argument("--only", default="send,queue,personalised,rss", help="phases to run (comma-separated)")
    ap.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--raw-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--raw-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_child:
        worker_child()
        return
    if args.raw_child:
        raw_child(args.raw_child, args.raw_seconds)
        return
    if args.quick:
        args.send, args.queue_audience, args.rss_sizes, args.rss_send_s = 5000, 20_000, "2000,10000", 5.0
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from konsent.store.db import make_engine

    schema = f"konsent_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.db)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.db else "?"
    db = f"{args.db}{sep}options=-csearch_path%3D{schema}"
    port = free_port()
    fake_proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeprovider", "--port", str(port), "--no-track"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out: dict[str, object] = {"db": "postgresql", "cpus": os.cpu_count()}
    try:
        wait_port(port)
        fake = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as data:
            ctx = _ctx(db, data)
            phases = set(args.only.split(","))
            if "send" in phases:
                # The machine is shared: the raw client runs before and after, and the mean is the ceiling;
                # in one process against the one-process konsent figure, in two against the two-process one.
                raw_before = _raw_clients(fake, 5.0, 1), _raw_clients(fake, 5.0, 2)
                one, cpu_us = _send_rate(ctx, fake, db, data, args.send, numbers=1, workers=1, cap_s=120)
                many, _ = _send_rate(ctx, fake, db, data, args.send, numbers=4, workers=2, cap_s=120)
                raw_after = _raw_clients(fake, 5.0, 1), _raw_clients(fake, 5.0, 2)
                raw1, raw2 = (raw_before[0] + raw_after[0]) / 2, (raw_before[1] + raw_after[1]) / 2
                out["raw_client_msgs_per_s"] = round(raw1)
                out["raw_client_range"] = [round(raw_before[0]), round(raw_after[0])]
                out["raw_client_2proc_msgs_per_s"] = round(raw2)
                out["one_number_msgs_per_s"] = round(one)
                out["many_numbers_msgs_per_s"] = round(many)
                out["ratio_to_raw_client"] = round(max(one / raw1, many / raw2), 2)
                out["worker_cpu_us_per_msg"] = None if cpu_us is None else round(cpu_us)
            queue_tenant = None
            size_label = f"{args.queue_audience // 1000}k".replace("1000k", "1m")
            if "queue" in phases:
                took, queue_tenant = _queue_time(ctx, fake, args.queue_audience)
                out[f"queue_{size_label}_audience_s"] = round(took, 1)
            if "personalised" in phases:
                took, _ = _queue_time(ctx, fake, args.queue_audience, text=PERSONAL_TEXT)
                out[f"queue_{size_label}_personalised_s"] = round(took, 1)
            for size in (int(x) for x in args.rss_sizes.split(",") if "rss" in phases):
                label = f"{size // 1000}k".replace("1000k", "1m")
                reuse = queue_tenant if size == args.queue_audience else None
                out[f"worker_rss_mb_{label}"] = _worker_rss(
                    ctx, fake, db, data, size, args.rss_send_s, cap_s=400, tenant_id=reuse
                )
            ctx.db.dispose()
    finally:
        fake_proc.terminate()
        fake_proc.wait(10)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
