"""Peak load: prints ONE JSON line (#14 item 6, docs/PERFORMANCE.md).

PostgreSQL, one konsent web process (uvicorn) and one worker process on 127.0.0.1, all at once:

* a broadcast paced at `--rate` messages per second (default 2,000) over two numbers (two
  channel accounts of the bench HTTP channel, each at half the rate) to the fake provider;
* for every accepted message three signed status webhooks (sent, delivered, read) posted back
  to the web process as fast as it takes them: three times the send rate;
* `--inbound` customer messages per second (default 20) as signed simulator webhooks, each
  creating or continuing a conversation;
* an agent loading the inbox list (GET /admin/inbox) every second.

Figures: peak_sends_per_s (goal ≥ 1,900), peak_status_lag_s (all statuses applied after the last
send; ≤ 2), peak_inbound_p99_ms (≤ 100), peak_inbox_p99_ms (≤ 200), peak_worker_rss_mb (≤ 200),
peak_duplicates (0; contacts the fake saw twice).

Where the two cores go: `peak_cpu_s` is the CPU seconds (user + system, from /proc) each process
used from the first send at the fake until every status was applied: the web process, the worker, the
PostgreSQL backends serving each of them, the fake provider (which also posts the status
webhooks) and this process (customers and the agent); `peak_cpu_wall_s` is that span, so
`sum / wall` is the cores in use. With BENCH_PROFILE_DIR=<dir>, the web and the worker process run
under cProfile and leave `web.prof` and `worker.prof` there (their event loop's thread).

    python -m bench.peak                      # 15 s of sending at 2,000/s
    python -m bench.peak --seconds 5          # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.inbound import MASTER, _run_server, _settings
from bench.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]


def _p99(values: list[float]) -> float:
    vals = sorted(values)
    return round(vals[min(len(vals) - 1, int(len(vals) * 0.99))], 1) if vals else 0.0


def _setup(ctx: Any, fake: str, rate: float, n: int) -> dict[str, Any]:
    """The broadcast tenant (two numbers), the demo tenant (inbound and the inbox) and an agent's cookie."""
    from bench.seedbulk import seed_bulk, setup_tenant
    from konsent.flows.demo import seed_demo
    from konsent.flows.organisation import staff, tenants
    from konsent.store.tables import ChannelAccount, Tenant

    secret = "peak-" + uuid.uuid4().hex
    tenant_id, accounts = setup_tenant(
        ctx, fake, accounts=2, rate=rate / 2, secrets_={"webhook_secret": secret}
    )
    seed_bulk(ctx, tenant_id, accounts, n)
    demo = seed_demo(ctx)
    with ctx.db.write() as s:
        routes = {str(a): s.get(ChannelAccount, a).route_key for a in accounts}  # type: ignore[union-attr]
        tenant = s.get(Tenant, demo.tenant_id)
        assert tenant is not None
        sim = next(a for a in tenants.channel_accounts(s, tenant.id) if a.kind == "simulator")
        sim_secret = tenants.account_config(ctx, s, sim).secrets.get("webhook_secret", "")
        user = staff.create_user(
            s, tenant, f"peak.{uuid.uuid4().hex[:6]}@demo.example", "peak-password-1", "owner"
        )
        cookie = staff.start_session(s, user, 2).cookie
        sim_route = sim.route_key
    return {
        "tenant_id": tenant_id,
        "secret": secret,
        "routes": routes,
        "sim_route": sim_route,
        "sim_secret": sim_secret,
        "cookie": cookie,
    }


async def _side_load(
    base: str, setup: dict[str, Any], inbound_per_s: float, stop: threading.Event
) -> tuple[list[float], list[float], int]:
    """Customers writing in and an agent reloading the inbox, until `stop`; their latencies in ms."""
    import aiohttp

    from konsent.channels.simulator import SIGNATURE_HEADER, sign
    from konsent.web.deps import SESSION_COOKIE

    inbound_ms: list[float] = []
    inbox_ms: list[float] = []
    errors = 0
    async with aiohttp.ClientSession() as http:

        async def customer(i: int) -> None:
            nonlocal errors
            msg = {"id": f"peakin.{uuid.uuid4().hex}", "from": f"+4916{i % 500:08d}", "text": f"Frage {i}",
                   "timestamp": time.time()}  # fmt: skip
            body = json.dumps({"messages": [msg]}).encode()
            headers = {SIGNATURE_HEADER: sign(setup["sim_secret"], body), "content-type": "application/json"}
            t0 = time.perf_counter()
            try:
                url = f"{base}/webhooks/{setup['sim_route']}"
                async with http.post(url, data=body, headers=headers) as r:
                    await r.read()
                    errors += r.status != 200
            except aiohttp.ClientError:
                errors += 1  # e.g. still on its way when the run ends and the server stops
                return
            inbound_ms.append((time.perf_counter() - t0) * 1000)

        async def agent() -> None:
            nonlocal errors
            while not stop.is_set():
                t0 = time.perf_counter()
                async with http.get(f"{base}/admin/inbox", cookies={SESSION_COOKIE: setup["cookie"]}) as r:
                    await r.read()
                    errors += r.status != 200
                inbox_ms.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))

        agent_task = asyncio.create_task(agent())
        tasks: list[asyncio.Task[None]] = []
        i = 0
        start = time.perf_counter()
        while not stop.is_set():
            tasks.append(asyncio.create_task(customer(i)))
            i += 1
            await asyncio.sleep(max(0.0, start + i / inbound_per_s - time.perf_counter()))
        await asyncio.gather(*tasks, agent_task)
    return inbound_ms, inbox_ms, errors


def _wait_for_worker(ctx: Any, timeout: float) -> None:
    """Until the worker process is up (its lock connection shows in pg_stat_activity)."""
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.db.read() as s:
            schema = s.execute(text("SELECT current_schema()")).scalar()
            found = s.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": f"konsent-worker:{schema}"[:63]},
            ).scalar()
        if found:
            return
        time.sleep(0.2)


class _CpuAccount:
    """CPU seconds per named process and per the PostgreSQL backends serving it (bench/cpu.py)."""

    def __init__(self, engine: Any, procs: dict[str, int]) -> None:
        self.engine, self.procs = engine, procs
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.t0 = self.t1 = time.monotonic()

    def _sample(self) -> dict[tuple[str, int], float]:
        from bench.cpu import backend_pids, cpu_s

        keys: list[tuple[str, int]] = [(name, pid) for name, pid in self.procs.items()]
        with self.engine.connect() as conn:
            for name, pid in self.procs.items():
                if name in ("web", "worker"):
                    keys += [(f"postgres_{name}", b) for b in backend_pids(conn, pid)]
        return {k: c for k in keys if (c := cpu_s(k[1])) is not None}

    def start(self) -> None:
        self.first = self._sample()
        self.last = dict(self.first)
        self.t0 = time.monotonic()

    def poll(self) -> None:
        self.last.update(self._sample())
        self.t1 = time.monotonic()

    def result(self) -> dict[str, float]:
        """CPU seconds per name since `start` (a backend first seen later counts whole)."""
        out: dict[str, float] = {}
        for (name, pid), c in self.last.items():
            out[name] = out.get(name, 0.0) + c - self.first.get((name, pid), 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items())}


def _fake_stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/stats", timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def run(
    db: str, data: str, env: dict[str, str], rate: float, seconds: float, inbound: float
) -> dict[str, object]:
    from sqlalchemy import func, select

    from bench.broadcast import _broadcast, _peak_rss_mb, _spawn_workers, _stop
    from konsent.app import build
    from konsent.store.tables import EarlyStatus, Message, OutboxRow

    ctx = build(_settings(db, data), run_migrations=True)
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    n = int(rate * seconds)
    setup = _setup(ctx, fake, rate, n)
    prof_dir = os.environ.get("BENCH_PROFILE_DIR")
    if prof_dir:  # the web process under cProfile (written when it stops)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", str(Path(prof_dir) / "web.prof"), "-m", "bench.inbound",
             "--serve", "konsent", "--port", str(port)],
            env=env,
        )  # fmt: skip
        try:
            wait_port(port, timeout=120)  # a shared machine under load starts slowly
        except RuntimeError:
            server.kill()
            raise
    else:
        server, port = _run_server("konsent", env)
    base = f"http://127.0.0.1:{port}"
    routes = ",".join(f"{a}={base}/webhooks/{r}" for a, r in setup["routes"].items())
    fake_proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeprovider", "--port", str(fake_port), "--status-routes", routes,
         "--status-secret", setup["secret"]],
        env=env,
    )  # fmt: skip
    stop = threading.Event()
    side: dict[str, Any] = {}
    side_thread = threading.Thread(
        target=lambda: side.update(r=asyncio.run(_side_load(base, setup, inbound, stop))), daemon=True
    )
    workers: list[subprocess.Popen[bytes]] = []
    rss = 0.0
    read, lag = 0, None
    outbox_states: dict[str, int] = {}
    statuses: dict[str, int] = {}
    early = 0
    cpu: _CpuAccount | None = None
    try:
        wait_port(fake_port)
        side_thread.start()
        time.sleep(1.0)  # the side load runs before the broadcast starts, and all through it
        _broadcast(ctx, setup["tenant_id"])  # scheduled now: the worker queues and sends it
        worker_env = {**env, "KONSENT_WORKER_BATCH": "500", "KONSENT_WORKER_CONCURRENCY": "100"}
        if prof_dir:
            worker_env["BENCH_PROFILE_WORKER"] = str(Path(prof_dir) / "worker.prof")
        workers = _spawn_workers(1, worker_env)
        procs = {"web": server.pid, "worker": workers[0].pid, "fake_provider": fake_proc.pid}
        cpu = _CpuAccount(ctx.db.engine, {**procs, "bench": os.getpid()})
        # The deadline runs from the first send: queuing the audience before it is not what is measured
        # (and takes long on a shared machine under load).
        started = time.monotonic() + 600
        st = _fake_stats(fake)
        while st["total"] == 0 and time.monotonic() < started:
            time.sleep(0.2)
            st = _fake_stats(fake)
        cpu.start()  # from the first send on
        polled = time.monotonic()
        deadline = time.monotonic() + seconds * 4 + 30
        while time.monotonic() < deadline:
            st = _fake_stats(fake)
            if st["total"] >= n:
                break
            rss = max(rss, _peak_rss_mb(workers[0].pid))
            if time.monotonic() - polled > 1.0:
                cpu.poll()
                polled = time.monotonic()
            time.sleep(0.5)
        while time.monotonic() < deadline:  # every status applied: "read" on every message sent
            with ctx.db.read() as s:
                read = int(
                    s.scalar(
                        select(func.count())
                        .select_from(Message)
                        .where(Message.tenant_id == setup["tenant_id"], Message.status == "read")
                    )
                    or 0
                )
            if read >= st["total"]:
                lag = time.monotonic() - st["last_at"]  # one machine: the fake's monotonic clock is ours
                break
            if time.monotonic() - polled > 1.0:
                cpu.poll()
                polled = time.monotonic()
            time.sleep(0.1)
        cpu.poll()
        rss = max(rss, _peak_rss_mb(workers[0].pid))
        st = _fake_stats(fake)
        with ctx.db.read() as s:
            outbox_states = dict(
                s.execute(
                    select(OutboxRow.state, func.count())
                    .where(OutboxRow.tenant_id == setup["tenant_id"])
                    .group_by(OutboxRow.state)
                )
                .tuples()
                .all()
            )
            statuses = dict(
                s.execute(
                    select(Message.status, func.count())
                    .where(Message.tenant_id == setup["tenant_id"])
                    .group_by(Message.status)
                )
                .tuples()
                .all()
            )
            early = int(s.scalar(select(func.count()).select_from(EarlyStatus)) or 0)
    finally:
        stop.set()
        side_thread.join(30)
        if prof_dir:  # SIGINT: cProfile writes on the KeyboardInterrupt (SIGTERM ends it unwritten)
            for proc in (*workers, server):
                proc.send_signal(signal.SIGINT)
            for proc in (*workers, server):
                proc.wait(120)
        _stop(workers)
        for proc in (server, fake_proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (server, fake_proc):
            proc.wait(20)
    ctx.db.dispose()
    inbound_ms, inbox_ms, errors = side.get("r", ([], [], -1))
    sent = st["total"]
    send_s = max(1e-9, st["last_at"] - st["first_at"])
    return {
        "peak_rate_paced": rate,
        "peak_numbers": 2,
        "peak_sends_per_s": round(sent / send_s),
        "peak_sent": sent,
        "peak_status_lag_s": round(lag, 2) if lag is not None else None,
        "peak_read": f"{read}/{sent}",
        "peak_inbound_per_s": inbound,
        "peak_inbound_p99_ms": _p99(inbound_ms),
        "peak_inbox_p99_ms": _p99(inbox_ms),
        "peak_inbox_loads": len(inbox_ms),
        "peak_side_errors": errors,
        "peak_webhooks": {k: st.get("webhooks", {}).get(k) for k in ("posted", "ok", "errors", "waiting")},
        "peak_worker_rss_mb": round(rss, 1),
        "peak_duplicates": sum(1 for v in st["received"].values() if v > 1),
        "peak_outbox_states": outbox_states,
        "peak_message_statuses": statuses,
        "peak_early_statuses": early,
        "peak_cpu_s": cpu.result() if cpu else None,
        "peak_cpu_wall_s": round(cpu.t1 - cpu.t0, 2) if cpu else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "KONSENT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--rate", type=float, default=2000.0, help="paced sends per second over both numbers")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the broadcast at that rate")
    ap.add_argument("--inbound", type=float, default=20.0, help="customer messages per second")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from konsent.store.db import make_engine

    schema = f"konsent_peak_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.db)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = f"{args.db}{'&' if '?' in args.db else '?'}options=-csearch_path%3D{schema}"
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "KONSENT_DATABASE_URL": db,
            "KONSENT_MASTER_KEY": MASTER,
            "KONSENT_DATA_DIR": data,
            "KONSENT_EMBEDDED_WORKER": "false",
            "KONSENT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        try:
            out: dict[str, object] = {"db": "postgresql", "cpus": os.cpu_count()}
            out.update(run(db, data, env, args.rate, args.seconds, args.inbound))
            print(json.dumps(out))
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
