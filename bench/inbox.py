"""Inbox benchmark: prints ONE JSON line (issue 5).

    python -m bench.inbox                   # 100,000 conversations (about 1-2 minutes)
    python -m bench.inbox --n 20000 --samples 10

Runs against PostgreSQL (KONSENT_BENCH_DATABASE_URL, default the local test server) in a
private schema that is dropped afterwards; everything talks to 127.0.0.1 only.

Figures:
- inbox_list_100k_ms: median server time to render a tenant's inbox page (GET /admin/inbox,
  the default "open" view, 50 rows with sealed names opened) with --n conversations; goal <= 200.
- inbox_list_select_ceiling_ms: the bare SELECT of the same page, measured in the same run.
- live_update_median_ms: a signed simulator webhook POSTed over HTTP until a connected
  server-sent-events client has read the inbox event for it; goal <= 500.
- dashboard_year_ms: median server time to render the dashboard (GET /admin: the counts, the
  subscriptions table and both charts over 52 weeks) with --ledger consent-ledger entries spread over
  the last year (grants and withdrawals on two topics); goal <= 500.
- dashboard_charts_query_ceiling_ms: the two aggregate queries of the charts alone, same run.
- segment_preview_1m_s: the size preview of a segment over a topic of --segment-contacts contacts
  (1,000,000 by default; seeded with generate_series); goal <= 5. See bench/segments.py.
- contact_search_100k_p95_ms: 95th percentile of the contact list page searched by name fragment,
  number, label and attribute in a tenant of --contacts named contacts; goal <= 300
  (bench/contact_search.py says what is seeded and measured).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import secrets
import statistics
import sys
import threading
import time
import uuid
import warnings
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text

from bench.ports import free_port
from bench.segments import bench_segment_preview
from konsent import crypto
from konsent.app import assemble
from konsent.channels.simulator import SIGNATURE_HEADER, sign
from konsent.flows.context import Konsent
from konsent.flows.demo import seed_demo
from konsent.flows.organisation import staff, teams
from konsent.flows.organisation.tenants import account_config, channel_accounts, tenant_by_slug
from konsent.settings import Settings
from konsent.store.db import Database, make_engine, migrate
from konsent.store.keys import KeyRing, wrap_contact_key
from konsent.store.keystore import KeyStore, keystore_url
from konsent.store.tables import Contact, Conversation, LedgerEntry, StaffUser
from konsent.store.types import utcnow

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MASTER = base64.urlsafe_b64encode(b"i" * 32).decode()


def _seed(ctx: Konsent, n: int) -> tuple[int, int, str]:
    """The demo tenant with n conversations over n/4 contacts (sealed names); returns ids."""
    seed_demo(ctx)
    with ctx.db.write() as s:
        tenant = tenant_by_slug(s, "demo")
        account = next(a for a in channel_accounts(s, tenant.id) if a.kind == "simulator")
        team_ids = [t.id for t in teams.list_teams(s, tenant.id)]
        owner = staff.create_user(s, tenant, "bench.owner@demo.example", "bench-password-1", "owner")
        agent = staff.create_user(s, tenant, "bench.agent@demo.example", "bench-password-1", "agent")
        teams.add_member(s, tenant.id, team_ids[0], agent.id)
        tenant_id, account_id, owner_id = tenant.id, account.id, owner.id
    contacts_n = max(1, n // 4)
    now = utcnow()
    contact_ids: list[int] = []
    with ctx.db.write() as s:
        tkeys = ctx.keys.tenant(s, tenant_id)
    batch = 5000
    for start in range(0, contacts_n, batch):
        rows = []
        for _ in range(start, min(start + batch, contacts_n)):
            rows.append({"tenant_id": tenant_id, "locale": "de", "has_contacted_us": True, "created_at": now})
        with ctx.db.write() as s:
            ids = s.execute(insert(Contact).returning(Contact.id), rows).scalars().all()
            params, secrets_ = [], []
            for cid in ids:  # a real key and a real sealed name per contact, as inbound creates them
                key, secret = crypto.new_key(), crypto.new_key()
                secrets_.append((tenant_id, cid, secret))
                params.append(
                    {
                        "w": wrap_contact_key(tkeys.data_key, secret, key, cid),
                        "v": tkeys.version,
                        "n": crypto.seal_text(key, f"Kontakt {cid}", f"contact:{cid}:name".encode()),
                        "id": cid,
                    }
                )
            ctx.keys.store.put_many(secrets_)
            s.execute(
                text(
                    "UPDATE contacts SET wrapped_key = :w, key_version = :v, name_sealed = :n WHERE id = :id"
                ),
                params,
            )
            contact_ids.extend(ids)
    states = ["closed"] * 6 + ["open"] * 3 + ["pending"]
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(start + batch, n)):
            at = now - timedelta(seconds=(n - i) * 60)
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "contact_id": contact_ids[i % len(contact_ids)],
                    "channel_account_id": account_id,
                    "state": states[i % len(states)],
                    "started_at": at,
                    "last_message_at": at,
                    "team_id": team_ids[i % len(team_ids)] if i % 5 else None,
                    "version": 0,
                }
            )
        with ctx.db.write() as s:
            s.execute(insert(Conversation), rows)
    with ctx.db.write() as s:
        s.execute(text("ANALYZE conversations"))
        s.execute(text("ANALYZE contacts"))
    _ = owner_id
    return tenant_id, account_id, f"user:{owner_id}"


def _seed_ledger(ctx: Konsent, tenant_id: int, n: int) -> None:
    """n ledger entries over the last 52 weeks: four grants to every withdrawal, on two topics.
    The hashes are placeholders: the chart reads actions and times, never verifies the chain."""
    now = utcnow()
    with ctx.db.read() as s:
        first_seq = int(s.execute(text("SELECT coalesce(max(seq), 0) FROM consent_ledger")).scalar() or 0)
    batch = 20_000
    for start in range(0, n, batch):
        rows = [
            {
                "tenant_id": tenant_id,
                "seq": first_seq + i + 1,
                "contact_id": i % 25_000 + 1,
                "purpose": ("newsletter:angebote", "newsletter:news")[i % 2],
                "action": "withdrawn" if i % 5 == 4 else "granted",
                "payload": {"source": "bench"},
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
                "created_at": now - timedelta(seconds=(n - i) * (364 * 86400 // n)),
            }
            for i in range(start, min(start + batch, n))
        ]
        with ctx.db.write() as s:
            s.execute(insert(LedgerEntry), rows)
    with ctx.db.write() as s:
        s.execute(text("ANALYZE consent_ledger"))


def bench_dashboard(ctx: Konsent, tenant_id: int, cookie: str, samples: int) -> tuple[float, float]:
    """The whole dashboard page, and the charts' two aggregates alone."""
    from fastapi.testclient import TestClient

    from konsent.flows.inbox.charts import dashboard_charts
    from konsent.web.app import create_app
    from konsent.web.deps import SESSION_COOKIE

    client = TestClient(create_app(ctx))
    client.cookies.set(SESSION_COOKIE, cookie)

    def render() -> None:
        r = client.get("/admin")
        assert r.status_code == 200 and "<polyline" in r.text, r.status_code

    def queries() -> None:
        with ctx.db.read() as s:
            assert dashboard_charts(s, tenant_id).topics

    page_ms, ceiling_ms = _median_ms(render, samples), _median_ms(queries, samples)
    client.close()
    return page_ms, ceiling_ms


def _keyring_check(ctx: Konsent, tenant_id: int) -> None:
    """Fail early if the bench's hand-made contact keys do not open like real ones."""
    from sqlalchemy import select

    from konsent.flows.contacts import contact_name

    with ctx.db.read() as s:
        c = s.scalars(select(Contact).where(Contact.tenant_id == tenant_id).limit(1)).one()
        assert contact_name(ctx, s, c).startswith("Kontakt ")


def _session_cookie(ctx: Konsent, email: str) -> str:
    from sqlalchemy import select

    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.email == email)).one()
        return staff.start_session(s, user, 2).cookie


def _median_ms(fn: Any, samples: int) -> float:
    fn()  # warm caches (keys, templates, plans)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def bench_list(ctx: Konsent, tenant_id: int, cookie: str, samples: int) -> tuple[float, float]:
    """The owner's view (all teams) and the bare SELECT of the same page."""
    from fastapi.testclient import TestClient

    from konsent.web.app import create_app
    from konsent.web.deps import SESSION_COOKIE

    client = TestClient(create_app(ctx))
    client.cookies.set(SESSION_COOKIE, cookie)

    def render() -> None:
        r = client.get("/admin/inbox")
        assert r.status_code == 200 and r.text.count("data-conversation=") == 50, r.status_code

    page_ms = _median_ms(render, samples)
    sql = text(
        "SELECT * FROM conversations WHERE tenant_id = :t AND state = 'open' "
        "AND (snoozed_until IS NULL OR snoozed_until <= now()) "
        "ORDER BY last_message_at DESC, id DESC LIMIT 51"
    )

    def bare() -> None:
        with ctx.engine_connect() as conn:  # type: ignore[attr-defined]
            assert len(conn.execute(sql, {"t": tenant_id}).all()) == 51

    ceiling_ms = _median_ms(bare, samples)
    client.close()
    return page_ms, ceiling_ms


def bench_live(ctx: Konsent, account_id: int, cookie: str, samples: int) -> list[float]:
    """Signed webhook over HTTP → SSE event read by a client, per sample."""
    import uvicorn

    from konsent.web.app import create_app
    from konsent.web.deps import SESSION_COOKIE

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx), host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    with ctx.db.read() as s:
        from konsent.store.tables import ChannelAccount

        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        secret = account_config(ctx, s, acc).secrets["webhook_secret"]
        route_key = acc.route_key
    arrivals: queue.Queue[float] = queue.Queue()
    stop = threading.Event()
    connected = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}, timeout=None) as c,
            c.stream("GET", "/admin/inbox/events?timeout=50") as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("retry:"):
                    connected.set()
                if line.startswith("data:") and '"message_in"' in line:
                    arrivals.put(time.perf_counter())
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    connected.wait(10)
    results = []
    with httpx.Client(base_url=base, timeout=10) as web:
        for i in range(samples + 1):
            body = json.dumps(
                {
                    "messages": [
                        {
                            "id": "bench." + secrets.token_hex(8),
                            "from": f"+49155{i:08d}",
                            "text": "Hallo",
                            "timestamp": time.time(),
                        }
                    ]
                }
            ).encode()
            t0 = time.perf_counter()
            r = web.post(
                f"/webhooks/{route_key}",
                content=body,
                headers={SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json"},
            )
            assert r.status_code == 200, r.status_code
            got = arrivals.get(timeout=10)
            if i:  # the first one warms up
                results.append((got - t0) * 1000)
            time.sleep(0.05)
            while not arrivals.empty():
                arrivals.get_nowait()
    stop.set()
    with httpx.Client(base_url=base, timeout=10) as web:  # one more event lets the listener see `stop`
        body = json.dumps({"messages": [{"id": "bench.end", "from": "+4915599999999", "text": "x"}]}).encode()
        web.post(f"/webhooks/{route_key}", content=body, headers={SIGNATURE_HEADER: sign(secret, body)})
    listener.join(timeout=5)
    server.should_exit = True
    thread.join(timeout=5)
    return results


def main() -> None:
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="conversations in the tenant")
    parser.add_argument("--samples", type=int, default=20, help="measurements per figure")
    parser.add_argument("--ledger", type=int, default=200_000, help="ledger entries over the year")
    parser.add_argument(
        "--segment-contacts", type=int, default=1_000_000, help="contacts of the segment preview"
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="named contacts for the search figure")
    args = parser.parse_args()
    url = os.environ.get("KONSENT_BENCH_DATABASE_URL", DEFAULT_URL)
    schema = f"bench_inbox_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        migrate(engine)
        import tempfile
        from pathlib import Path

        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()), master_key=MASTER, database_url=str(engine.url)
        )
        ctx = assemble(
            settings,
            Database(engine),
            KeyRing(base64.urlsafe_b64decode(MASTER), KeyStore(keystore_url(settings.data_dir))),
        )
        ctx.engine_connect = engine.connect  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        tenant_id, account_id, _ = _seed(ctx, args.n)
        seed_s = round(time.perf_counter() - t0, 1)
        _keyring_check(ctx, tenant_id)
        cookie = _session_cookie(ctx, "bench.owner@demo.example")
        page_ms, ceiling_ms = bench_list(ctx, tenant_id, cookie, args.samples)
        agent_ms, _ = bench_list(
            ctx, tenant_id, _session_cookie(ctx, "bench.agent@demo.example"), args.samples
        )
        live = bench_live(ctx, account_id, cookie, args.samples)
        _seed_ledger(ctx, tenant_id, args.ledger)
        dash_ms, charts_ms = bench_dashboard(ctx, tenant_id, cookie, args.samples)
        segment_figures = bench_segment_preview(ctx, args.segment_contacts)
        from bench import contact_search

        search = contact_search.bench(
            ctx, contact_search.seed(ctx, args.contacts)[1], args.samples, args.contacts
        )
        print(
            json.dumps(
                {
                    "inbox_list_100k_ms": page_ms,
                    "inbox_list_n": args.n,
                    "inbox_list_select_ceiling_ms": ceiling_ms,
                    "inbox_list_agent_one_team_ms": agent_ms,
                    "live_update_median_ms": round(statistics.median(live), 1),
                    "live_update_p95_ms": round(sorted(live)[int(len(live) * 0.95) - 1], 1),
                    "live_update_samples": len(live),
                    "dashboard_year_ms": dash_ms,
                    "dashboard_charts_query_ceiling_ms": charts_ms,
                    "dashboard_ledger_entries": args.ledger,
                    **segment_figures,
                    **search,
                    "goals": {
                        "inbox_list_100k_ms": 200,
                        "live_update_median_ms": 500,
                        "dashboard_year_ms": 500,
                        "segment_preview_1m_s": 5,
                        "contact_search_100k_p95_ms": 300,
                    },
                    "database": "postgresql",
                    "seed_s": seed_s,
                    "command": "python -m bench.inbox " + " ".join(sys.argv[1:]),
                }
            )
        )
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
