"""Inbound webhook benchmark: prints ONE JSON line (issue 6, docs/PERFORMANCE.md).

Phase `webhooks`: signed simulator status webhooks (delivered/read for messages konsent sent)
are POSTed to /webhooks/{route_key} of a `uvicorn` konsent process; each is verified, parsed,
deduplicated and stored before the 200. The same load generator then hits a bare raw-ASGI
endpoint (no framework, like konsent's status fast path) in the same kind of process.

Phase `inbound`: signed customer text messages, half from contacts konsent knows and half from
new ones, through the same door: verified, stored sealed with the contact's key (a new contact
gets its key and identity first), keywords checked, then the inbox. Everything on 127.0.0.1.

    python -m bench.inbound                  # PostgreSQL (KONSENT_BENCH_DATABASE_URL), 20 s per run
    python -m bench.inbound --sqlite         # the embedded default
    python -m bench.inbound --only inbound --seconds 10
    python -m bench.inbound --only under_send --under-send-rate 1000

Phase `under_send` (bench/under_send.py): a broadcast sends at a paced rate while the fake
provider posts three status webhooks per accepted message back; do the statuses keep up?
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
MASTER = base64.urlsafe_b64encode(b"i" * 32).decode()


def _settings(db_url: str, data_dir: str):  # type: ignore[no-untyped-def]
    from konsent.settings import Settings

    return Settings(
        database_url=db_url,
        master_key=MASTER,
        data_dir=Path(data_dir),
        embedded_worker=False,
        log_level="WARNING",
    )


def _seed(db_url: str, data_dir: str, n: int) -> tuple[str, str, list[str]]:
    """A tenant with a simulator account and `n` sent messages; returns route key, secret, provider ids."""
    from sqlalchemy import insert, text

    from konsent import crypto
    from konsent.app import build
    from konsent.flows.organisation import tenants
    from konsent.store.tables import Contact, Message
    from konsent.store.types import utcnow

    ctx = build(_settings(db_url, data_dir), run_migrations=True)
    secret = "bench-" + uuid.uuid4().hex
    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, f"inb{uuid.uuid4().hex[:8]}", "Inbound Bench")
        acc = tenants.create_channel_account(
            ctx, s, t, "simulator", "sim", secrets_={"webhook_secret": secret}
        )
        key = crypto.new_key()
        c = Contact(tenant_id=t.id, wrapped_key=b"x", key_version=1)
        s.add(c)
        s.flush()
        body = crypto.seal_text(key, "{}", b"bench")
        now = utcnow()
        pids = [f"bench.{uuid.uuid4().hex[:12]}.{i}" for i in range(n)]
        s.execute(
            insert(Message),
            [
                {
                    "tenant_id": t.id,
                    "contact_id": c.id,
                    "channel_account_id": acc.id,
                    "direction": "out",
                    "purpose": "newsletter:news",
                    "body_sealed": body,
                    "provider_id": pid,
                    "status": "sent",
                    "status_reason": "",
                    "author": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
                for pid in pids
            ],
        )
        route = acc.route_key
    if ctx.db.is_postgres:  # fresh bulk data: give the planner statistics, as autovacuum would
        with ctx.db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    ctx.db.dispose()
    return route, secret, pids


async def bare_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
    """The denominator: raw ASGI, reads the whole body and answers 200 "OK" (no routing, no checks)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"OK"})


def serve_child(kind: str, port: int) -> None:
    import uvicorn

    if kind == "bare":
        app = bare_app  # type: ignore[assignment]
    else:
        import bench.benchhttp  # noqa: F401 - the accounts of the under-send phase
        from konsent.app import build
        from konsent.settings import Settings
        from konsent.web.app import create_app

        app = create_app(build(Settings(), run_migrations=False))  # type: ignore[assignment]
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def _status_body(pids: list[str], i: int) -> bytes:
    """Status webhook number i: each message delivered in the first round, read in the second."""
    status = "delivered" if (i // len(pids)) % 2 == 0 else "read"
    return json.dumps(
        {"statuses": [{"id": pids[i % len(pids)], "status": status, "timestamp": time.time()}]}
    ).encode()


KNOWN = 2000  # contacts who wrote before the measured run (the "known" half of the inbound load)


def _message_body(run: str, i: int) -> bytes:
    """Customer text message number i: even ones from a known contact, odd ones from a new one."""
    phone = f"+4917{(i // 2) % KNOWN:09d}" if i % 2 == 0 else f"+4916{run}{i:07d}"
    text = "Hallo, habt ihr am Samstag geöffnet?" if i % 3 else "Wo bleibt meine Bestellung 4711?"
    return json.dumps(
        {"messages": [{"id": f"simin.{run}.{i}", "from": phone, "text": text, "timestamp": time.time()}]}
    ).encode()


async def _load(
    url: str,
    secret: str,
    pids: list[str],
    seconds: float,
    concurrency: int,
    body_of=None,  # type: ignore[no-untyped-def]
) -> dict[str, float]:
    import aiohttp

    from konsent.channels.simulator import SIGNATURE_HEADER, sign

    lat: list[float] = []
    errors = 0
    i = 0
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as sess:

        async def one() -> None:
            nonlocal i, errors
            while time.monotonic() < stop_at:
                try:
                    body = _status_body(pids, i) if body_of is None else body_of(i)
                except _Done:
                    return
                i += 1
                t0 = time.perf_counter()
                async with sess.post(
                    url,
                    data=body,
                    headers={SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json"},
                ) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t0)

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        took = time.monotonic() - t0
    lat.sort()
    return {
        "per_s": len(lat) / took,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else 0,
        "errors": errors,
    }


def _run_server(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.inbound", "--serve", kind, "--port", str(port)], env=env
    )
    wait_port(port)
    return proc, port


def _webhooks(db: str, data: str, env: dict[str, str], seconds: float, concurrency: int) -> dict[str, object]:
    """Status webhooks alone: konsent's status path against a bare endpoint, same load."""
    route, secret, pids = _seed(db, data, 200_000)
    url = "http://127.0.0.1:{}/webhooks/" + route
    proc, port = _run_server("bare", env)
    try:
        bare = asyncio.run(_load(url.format(port), secret, pids, seconds / 2, concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    proc, port = _run_server("konsent", env)
    try:
        res = asyncio.run(_load(url.format(port), secret, pids, seconds, concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    return {
        "status_webhooks_per_s": round(res["per_s"]),
        "p50_ms": round(res["p50_ms"], 1),
        "p99_ms": round(res["p99_ms"], 1),
        "errors": int(res["errors"]),
        "bare_endpoint_per_s": round(bare["per_s"]),
        "ratio_to_bare_endpoint": round(res["per_s"] / bare["per_s"], 2),
    }


def _inbound(db: str, data: str, env: dict[str, str], seconds: float, concurrency: int) -> dict[str, object]:
    """Customer text messages from known and new contacts, each stored sealed before its 200."""
    route, secret, _ = _seed(db, data, 1)
    run = uuid.uuid4().hex[:4].translate(str.maketrans("abcdef", "123456"))
    url = "http://127.0.0.1:{}/webhooks/" + route
    proc, port = _run_server("konsent", env)
    try:
        # the known half: each of these contacts wrote once before the measured run
        warm = [json.dumps({"messages": [{"id": f"simin.warm.{run}.{k}", "from": f"+4917{k:09d}",
                                          "text": "Hallo", "timestamp": time.time()}]}).encode()
                for k in range(KNOWN)]  # fmt: skip
        asyncio.run(_load(url.format(port), secret, [], 600, concurrency, body_of=_once(warm)))
        res = asyncio.run(
            _load(url.format(port), secret, [], seconds, concurrency, body_of=lambda i: _message_body(run, i))
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    return {
        "inbound_messages_per_s": round(res["per_s"]),
        "inbound_p50_ms": round(res["p50_ms"], 1),
        "inbound_p99_ms": round(res["p99_ms"], 1),
        "inbound_errors": int(res["errors"]),
    }


class _Done(Exception):
    pass


def _once(bodies: list[bytes]):  # type: ignore[no-untyped-def]
    """A body source that ends the load when every body was sent once."""

    def body(i: int) -> bytes:
        if i >= len(bodies):
            raise _Done
        return bodies[i]

    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "KONSENT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--sqlite", action="store_true", help="use SQLite in a temporary directory")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--only", default="webhooks,inbound,under_send", help="phases to run (comma-separated)")
    ap.add_argument("--under-send-rate", type=float, default=1000.0, help="paced sends per second")
    ap.add_argument("--under-send-seconds", type=float, default=15.0, help="length of the broadcast")
    ap.add_argument("--serve", default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_child(args.serve, args.port)
        return
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from konsent.store.db import make_engine

    schema = admin = None
    with tempfile.TemporaryDirectory() as data:
        if args.sqlite:
            db = f"sqlite:///{data}/konsent.db"
        else:
            schema = f"konsent_inbench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.db)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            db = f"{args.db}{'&' if '?' in args.db else '?'}options=-csearch_path%3D{schema}"
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
            out: dict[str, object] = {"db": "sqlite" if args.sqlite else "postgresql", "cpus": os.cpu_count()}
            phases = set(args.only.split(","))
            if "webhooks" in phases:
                out.update(_webhooks(db, data, env, args.seconds, args.concurrency))
            if "inbound" in phases:
                out.update(_inbound(db, data, env, args.seconds, args.concurrency))
            if "under_send" in phases:
                from bench import under_send

                out.update(under_send.run(db, data, env, args.under_send_rate, args.under_send_seconds))
            print(json.dumps(out))
        finally:
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
