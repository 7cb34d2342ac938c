"""Privacy-centre benchmark: export, erasure and a retention run under inbound traffic (D1, D2, L1).

Prints ONE JSON line. Talks only to PostgreSQL on 127.0.0.1 (a private schema, dropped at
the end) and is bounded in time (--max-seconds, default 900). Reproduce with:

    python bench/privacy.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Each measured key comes with a comparison measured in the same run:
- export_10k_messages_s   vs export_baseline_decrypt_s (only reading and decrypting the bodies)
- erase_10k_messages_s    vs erase_baseline_raw_delete_s (one raw DELETE of as many messages)
- retention_1m_messages_s vs retention_raw_delete_estimate_s (raw DELETE rate of this run × N)
- inbound_p99_ms_during_retention vs inbound_p99_ms_baseline (same inbound loop, no retention)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import insert, select, text

from konsent import crypto
from konsent.app import assemble
from konsent.flows.contacts import get_or_create_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.demo import seed_demo
from konsent.flows.inbound import simulator
from konsent.flows.organisation.tenants import channel_accounts
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy import retention
from konsent.flows.privacy import rights as privacy
from konsent.settings import Settings
from konsent.store.db import Database, make_engine, migrate
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url
from konsent.store.tables import Contact, Conversation, Message
from konsent.store.types import utcnow


def _only_local(url: str) -> None:
    host = urlparse(url.replace("postgresql+psycopg", "postgresql")).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark against {host!r}: only 127.0.0.1")


def _p99(samples: list[float]) -> float:
    if not samples:
        return 0.0
    if len(samples) < 100:
        return max(samples)
    return statistics.quantiles(samples, n=100)[98]


def _contact_with_messages(ctx: Konsent, account_id: int, phone: str, n: int) -> int:
    """One contact with n messages, each sealed with its own key like real traffic."""
    from konsent.store.tables import ChannelAccount

    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        contact, _, _ = get_or_create_contact(ctx, s, acc, phone, name="Bench Kontakt")
        contact.has_contacted_us = True
        conv = Conversation(tenant_id=acc.tenant_id, contact_id=contact.id, channel_account_id=acc.id)
        s.add(conv)
        s.flush()
        now = utcnow()
        rows = [
            {
                "tenant_id": acc.tenant_id,
                "conversation_id": conv.id,
                "contact_id": contact.id,
                "channel_account_id": acc.id,
                "direction": "in" if i % 2 else "out",
                "purpose": None if i % 2 else "service",
                "body_sealed": seal_for_contact(
                    ctx, s, contact, "message", json.dumps({"text": f"Nachricht Nummer {i} mit etwas Text"})
                ),
                "status": "received" if i % 2 else "delivered",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        for i in range(0, n, 5000):
            s.execute(insert(Message), rows[i : i + 5000])
        return contact.id


def _seed_retention(ctx: Konsent, tenant_id: int, account_id: int, n: int, per_conv: int = 1000) -> None:
    """n messages in closed conversations that fell due 10 days ago, generated inside PostgreSQL."""
    n_conv = max(1, n // per_conv)
    old = utcnow() - timedelta(days=100)
    blob = crypto.seal(crypto.new_key(), b'{"text": "old message"}')
    with ctx.db.write() as s:
        now = utcnow()
        s.execute(
            insert(Contact),
            [
                {
                    "tenant_id": tenant_id,
                    "wrapped_key": secrets.token_bytes(60),
                    "key_version": 1,
                    "has_contacted_us": True,
                    "unreachable": False,
                    "objected_marketing": False,
                    "last_activity_at": now,
                    "created_at": now,
                }
                for _ in range(n_conv)
            ],
        )
        s.execute(
            text(
                "INSERT INTO conversations (tenant_id, contact_id, channel_account_id, state, started_at,"
                " last_message_at, closed_at) SELECT :t, id, :a, 'closed', :old, :old, :old FROM contacts"
                " WHERE tenant_id = :t AND wrapped_key IS NOT NULL AND id NOT IN"
                " (SELECT contact_id FROM contact_identities)"
            ),
            {"t": tenant_id, "a": account_id, "old": old},
        )
    cols = {c.name: c for c in Message.__table__.columns}
    extra = {
        name: col.default.arg
        for name, col in cols.items()
        if col.default is not None
        and not callable(col.default.arg)
        and name
        not in (
            "tenant_id",
            "conversation_id",
            "contact_id",
            "channel_account_id",
            "direction",
            "body_sealed",
            "status",
            "created_at",
            "updated_at",
        )
    }
    names = ", ".join(extra)
    params = ", ".join(f":x_{k}" for k in extra)
    with ctx.db.write() as s:
        s.execute(
            text(
                "INSERT INTO messages (tenant_id, conversation_id, contact_id, channel_account_id, direction,"
                f" body_sealed, status, created_at, updated_at{', ' + names if names else ''})"
                f" SELECT :t, c.id, c.contact_id, :a, 'in', :blob, 'received', :old, :old"
                f"{', ' + params if params else ''}"
                " FROM conversations c CROSS JOIN generate_series(1, :per) g"
                " WHERE c.tenant_id = :t AND c.state = 'closed'"
            ),
            {"t": tenant_id, "a": account_id, "blob": blob, "old": old, "per": per_conv}
            | {f"x_{k}": v for k, v in extra.items()},
        )
        s.execute(text("ANALYZE messages"))


class Inbound:
    """Contacts keep writing in while something else runs; latency per webhook in ms."""

    def __init__(self, ctx: Konsent, account_id: int, prefix: str) -> None:
        self.ctx, self.account_id, self.prefix = ctx, account_id, prefix
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                simulator.phone_send(
                    self.ctx, self.account_id, f"+49160{self.prefix}{i % 500:05d}", f"Frage {i}"
                )
            except Exception:
                self.errors += 1
            self.samples.append((time.perf_counter() - t0) * 1000)
            i += 1
            time.sleep(0.005)

    def during(self, fn):  # type: ignore[no-untyped-def]
        th = threading.Thread(target=self.run, daemon=True)
        th.start()
        try:
            return fn()
        finally:
            self.stop.set()
            th.join(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=os.environ.get("KONSENT_BENCH_DB", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages the retention run deletes")
    ap.add_argument("--export-messages", type=int, default=10_000)
    ap.add_argument("--max-seconds", type=int, default=900, help="abort the whole run after this long")
    args = ap.parse_args()
    _only_local(args.db)
    signal.signal(
        signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("bench exceeded --max-seconds"))
    )
    signal.alarm(args.max_seconds)

    schema = f"konsent_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.db)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.db else "?"
    url = f"{args.db}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    out: dict[str, object] = {"bench": "privacy", "database": "postgresql", "host": "127.0.0.1"}
    try:
        migrate(engine)
        master = secrets.token_bytes(32)
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="konsent-bench-")),
            database_url=url,
            master_key=base64.urlsafe_b64encode(master).decode(),
            base_url="http://127.0.0.1:8000",
        )
        ctx = assemble(settings, Database(engine), KeyRing(master, KeyStore(keystore_url(settings.data_dir))))
        demo = seed_demo(ctx)
        with ctx.db.read() as s:
            account_id = next(a.id for a in channel_accounts(s, demo.tenant_id) if a.kind == "simulator")
        n_exp = args.export_messages

        # --- export and erasure of one contact with 10k messages (D1, D2)
        cid = _contact_with_messages(ctx, account_id, "+4915100000001", n_exp)
        ctx.keys.forget()
        with ctx.db.read() as s:
            c = s.get(Contact, cid)
            assert c is not None
            t0 = time.perf_counter()
            key = ctx.keys.contact_key(s, c)
            aad = f"contact:{cid}:message".encode()
            bodies = s.scalars(select(Message.body_sealed).where(Message.contact_id == cid)).all()
            for b in bodies:
                crypto.open_text(key, b, aad)
            out["export_baseline_decrypt_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        with ctx.db.write() as s:
            c = s.get(Contact, cid)
            assert c is not None
            privacy_export.create_export(ctx, s, c, actor="bench")
        out["export_10k_messages_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        with ctx.db.write() as s:
            c = s.get(Contact, cid)
            assert c is not None
            res = privacy.erase_contact(ctx, s, c, source="bench", actor="bench")
        out["erase_10k_messages_s"] = round(time.perf_counter() - t0, 3)
        assert res.messages == n_exp, res
        cid2 = _contact_with_messages(ctx, account_id, "+4915100000002", n_exp)
        t0 = time.perf_counter()
        with ctx.db.write() as s:
            s.execute(text("DELETE FROM messages WHERE contact_id = :c"), {"c": cid2})
        raw = time.perf_counter() - t0
        out["erase_baseline_raw_delete_s"] = round(raw, 3)
        out["export_erase_messages"] = n_exp

        # --- inbound baseline, then a retention run over N due messages with inbound flowing (L1)
        base = Inbound(ctx, account_id, "1")
        base.during(lambda: time.sleep(3))
        _seed_retention(ctx, demo.tenant_id, account_id, args.messages)
        live = Inbound(ctx, account_id, "2")
        t0 = time.perf_counter()
        rep = live.during(lambda: retention.run_retention(ctx, demo.tenant_id, actor="bench"))
        out["retention_1m_messages_s"] = round(time.perf_counter() - t0, 3)
        out["retention_messages"] = rep.counts["messages"]
        out["retention_raw_delete_estimate_s"] = round(raw / n_exp * rep.counts["messages"], 3)
        out["inbound_p99_ms_during_retention"] = round(_p99(live.samples), 1)
        out["inbound_p99_ms_baseline"] = round(_p99(base.samples), 1)
        out["inbound_webhooks_during_retention"] = len(live.samples)
        out["inbound_errors"] = base.errors + live.errors
        out["goals"] = {"export_10k_messages_s": 2.0, "erase_10k_messages_s": 1.0}
    finally:
        signal.alarm(0)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
