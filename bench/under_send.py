"""Status webhooks at three times the send rate, while the broadcast is sending (issue 6).

One worker process sends a broadcast through one account paced at `rate` messages per
second to the fake provider; for every message it accepts, the fake posts three signed
status webhooks (sent, delivered, read) to a konsent web process, as fast as konsent
takes them. konsent keeps up if the statuses are stored at three times the send rate
while it runs, the fake's queue of statuses stays short, and the last status is stored
shortly after the last send. Everything on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from sqlalchemy import func, select


def run(db: str, data: str, env: dict[str, str], rate: float, seconds: float) -> dict[str, object]:
    """Run the phase against a prepared database; the figures as `under_send_*` keys."""
    from bench.broadcast import _broadcast, _spawn_workers, _stats, _stop
    from bench.inbound import _run_server, _settings
    from bench.ports import free_port, wait_port
    from bench.seedbulk import seed_bulk, setup_tenant
    from konsent.app import build
    from konsent.flows.outbound import broadcast as bc
    from konsent.store.tables import ChannelAccount, Message

    ctx = build(_settings(db, data), run_migrations=True)  # the master key of the processes in `env`
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    secret = "under-send-" + uuid.uuid4().hex
    tenant_id, (acc,) = setup_tenant(ctx, fake, accounts=1, rate=rate, secrets_={"webhook_secret": secret})
    n = int(rate * seconds)
    seed_bulk(ctx, tenant_id, [acc], n)
    with ctx.db.read() as s:
        route = s.get(ChannelAccount, acc).route_key  # type: ignore[union-attr]
    server, port = _run_server("konsent", env)
    fake_proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fakeprovider",
            "--port",
            str(fake_port),
            "--no-track",
            "--status-url",
            f"http://127.0.0.1:{port}/webhooks/{route}",
            "--status-secret",
            secret,
        ],
        env=env,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_port(fake_port)
        bid = _broadcast(ctx, tenant_id)
        bc.queue_all(ctx, tenant_id, bid, size=5000)
        workers = _spawn_workers(
            1, {**env, "KONSENT_WORKER_BATCH": "500", "KONSENT_WORKER_CONCURRENCY": "100"}
        )
        deadline = time.monotonic() + seconds * 4 + 30
        while time.monotonic() < deadline:
            st = _stats(fake)
            hooks = st["webhooks"]
            if st["total"] >= n and hooks["ok"] + hooks["errors"] >= 3 * n:
                break
            time.sleep(0.5)
        st = _stats(fake)
        # Stored is not yet applied: a status that overtook its send waits as an early status
        # until the worker records the send (or its periodic reconcile runs); wait for "read".
        read, applied_at = 0, 0.0
        while time.monotonic() < deadline:
            with ctx.db.read() as s:
                read = s.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.tenant_id == tenant_id, Message.status == "read")
                )
            if read >= st["total"]:
                applied_at = time.monotonic()
                break
            time.sleep(0.2)
    finally:
        _stop(workers)
        for proc in (server, fake_proc):
            proc.send_signal(signal.SIGTERM)
        for proc in (server, fake_proc):
            proc.wait(20)
    ctx.db.dispose()
    hooks = st["webhooks"]
    send_s = max(1e-9, st["last_at"] - st["first_at"])
    hook_s = max(1e-9, hooks["last_ok"] - hooks["first_ok"])
    sent = st["total"]
    return {
        "under_send_rate_paced": rate,
        "under_send_msgs_per_s": round(sent / send_s),
        "under_send_status_per_s": round(hooks["ok"] / hook_s),
        "under_send_status_p99_ms": round(hooks["p99_ms"], 1),
        "under_send_backlog_max": hooks["backlog_max"],
        "under_send_drain_s": round(max(0.0, hooks["last_ok"] - st["last_at"]), 2),
        "under_send_statuses_stored": f"{hooks['ok']}/{3 * sent}",
        "under_send_read": f"{read}/{sent}",
        "under_send_all_read_after_s": round(applied_at - st["last_at"], 2) if applied_at else None,
        "under_send_errors": hooks["errors"],
    }


if __name__ == "__main__":  # pragma: no cover - use `python -m bench.inbound --only under_send`
    sys.exit(f"run it through bench.inbound: {os.path.basename(sys.argv[0])} is a phase of it")
