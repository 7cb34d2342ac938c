"""Round trips of one customer message on the inbound path, counted in-process (issue 11).

The same load as `bench.inbound`'s inbound phase (signed simulator text messages, every other one
from a contact who wrote before), handed to `receive_webhook` one at a time in this process, with
SQLAlchemy listeners counting what reaches the database. Prints ONE JSON line:

- `inbound_statements_per_msg`: SQL statements (SELECT/INSERT/UPDATE …), BEGIN and COMMIT not counted;
- `inbound_transactions_per_msg`: transactions begun (each also costs a BEGIN and a COMMIT);
- `inbound_checkouts_per_msg`: pool checkouts (each costs a pre-ping round trip);
- `inbound_cpu_ms_per_msg`: this process's CPU time per message (the database's not included).

    python -m bench.inbound_statements                 # PostgreSQL (KONSENT_BENCH_DATABASE_URL)
    python -m bench.inbound_statements --sqlite -n 400
    python -m bench.inbound_statements --top 30        # also the statements, most frequent first
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(db: str, data: str, n: int) -> tuple[dict[str, float], collections.Counter[str]]:
    from sqlalchemy import event

    from bench.inbound import _seed, _settings
    from konsent.app import build
    from konsent.channels.base import WebhookRequest
    from konsent.channels.simulator import SIGNATURE_HEADER, sign
    from konsent.flows.inbound.receive import receive_webhook

    route, secret, _ = _seed(db, data, 1)
    ctx = build(_settings(db, data), run_migrations=False)
    known = n // 2 + 1
    run = uuid.uuid4().hex[:4].translate(str.maketrans("abcdef", "123456"))

    def request(i: int, phone: str, text: str) -> WebhookRequest:
        body = json.dumps(
            {"messages": [{"id": f"simin.{run}.{i}", "from": phone, "text": text, "timestamp": time.time()}]}
        ).encode()
        return WebhookRequest("POST", {SIGNATURE_HEADER: sign(secret, body)}, {}, body)

    for k in range(known):  # the known half wrote once before
        receive_webhook(ctx, route, request(-k - 1, f"+4917{k:09d}", "Hallo"))
    load = [
        request(i, f"+4917{(i // 2) % known:09d}" if i % 2 == 0 else f"+4916{run}{i:07d}",
                "Hallo, habt ihr am Samstag geöffnet?" if i % 3 else "Wo bleibt meine Bestellung 4711?")
        for i in range(n)
    ]  # fmt: skip
    statements: collections.Counter[str] = collections.Counter()
    counts = {"transactions": 0, "checkouts": 0}
    engine = ctx.db.engine

    def on_statement(_c, _cur, statement, *_a) -> None:  # type: ignore[no-untyped-def]
        statements[re.sub(r"\s+", " ", statement)[:100]] += 1

    def on_begin(_conn) -> None:  # type: ignore[no-untyped-def]
        counts["transactions"] += 1

    def on_checkout(*_a) -> None:  # type: ignore[no-untyped-def]
        counts["checkouts"] += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on_begin)
    event.listen(engine.pool, "checkout", on_checkout)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for req in load:
        result = receive_webhook(ctx, route, req)
        assert result.status == 200 and result.events == 1, result
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ctx.db.dispose()
    statements.pop("BEGIN IMMEDIATE", None)  # SQLite's BEGIN is a statement there; counted as a transaction
    statements.pop("BEGIN", None)
    return {
        "inbound_statements_per_msg": round(sum(statements.values()) / n, 2),
        "inbound_transactions_per_msg": round(counts["transactions"] / n, 2),
        "inbound_checkouts_per_msg": round(counts["checkouts"] / n, 2),
        "inbound_cpu_ms_per_msg": round(cpu / n * 1000, 2),
        "inbound_sequential_ms_per_msg": round(wall / n * 1000, 2),
    }, statements


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "KONSENT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--sqlite", action="store_true", help="use SQLite in a temporary directory")
    ap.add_argument("-n", type=int, default=200, help="measured messages (half known, half new contacts)")
    ap.add_argument("--top", type=int, default=0, help="also print the N most frequent statements")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from konsent.store.db import make_engine

    with tempfile.TemporaryDirectory() as data:
        schema = admin = None
        if args.sqlite:
            db = f"sqlite:///{data}/konsent.db"
        else:
            schema = f"konsent_stmts_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.db)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            db = f"{args.db}{'&' if '?' in args.db else '?'}options=-csearch_path%3D{schema}"
        try:
            out, statements = measure(db, data, args.n)
            print(json.dumps({"db": "sqlite" if args.sqlite else "postgresql", "messages": args.n, **out}))
            for stmt, k in statements.most_common(args.top):
                print(f"{k / args.n:6.2f}  {stmt}")
        finally:
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
