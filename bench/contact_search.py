"""Contact search at 100,000 contacts, for `python -m bench.inbox` (issue 17 item 2).

Seeds a tenant of its own ("search") with --contacts contacts, each with a real contact key, a
sealed German name drawn from common first and last names, a sealed simulator number with its
blind index, and the keyed trigram index of the name (written with COPY, as a rebuild would
produce it); one contact in a hundred carries the label "VIP" and a sealed `city` attribute.
Then measures GET /admin/contacts?... as the tenant's owner: the search, opening the candidates'
names to confirm them, the page's names and labels, and the audit entries, for a mix of name
fragments, numbers, a label and an attribute value. Reported: the 95th percentile.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from typing import Any

from sqlalchemy import event, text

from konsent import crypto
from konsent.domain.attributes import trigrams
from konsent.flows.contact_data import attributes, index, labels
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff, tenants
from konsent.store.keys import wrap_contact_key
from konsent.store.tables import (
    Contact,
    ContactAttribute,
    ContactIdentity,
    ContactLabel,
    ContactSearchGram,
    StaffUser,
    Tenant,
)
from konsent.store.types import utcnow


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Anna Anne Annette Hannah Johanna Maria Marie Sophie Sofia Emma Lena Laura Julia Lisa Sarah Katharina "
    "Christina Sabine Petra Monika Ursula Renate Erika Jürgen Jörg Klaus Peter Michael Thomas Andreas Stefan "
    "Frank Markus Christian Martin Alexander Daniel Tobias Lukas Jonas Leon Paul Felix Maximilian Ömer Ayşe "
    "Mehmet Zoë Noël Björn Sören Günter Dieter Uwe Horst Wolfgang Helmut Gerhard Heinz Bernd Ralf"
)
LAST = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter "
    "Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner "
    "Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs "
    "Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler "
    "Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher "
    "Krämer Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich "
    "Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Yılmaz Kaya"
)
CITIES = ("Köln", "Berlin", "Hamburg", "München", "Leipzig")
QUERIES = ("müller", "schmi", "anna", "jürgen w", "krämer", "yilmaz", "ter", "öme")


def _number(i: int) -> str:
    return f"+49151{i:08d}"


def seed(ctx: Konsent, n: int, batch: int = 10_000) -> tuple[int, str]:
    """The "search" tenant with n named contacts; returns its id and its owner's session cookie.

    Rows are computed in Python (real keys, sealed names and numbers, blind indexes, keyed grams as
    `index.rebuild` writes them) and written with COPY (PostgreSQL only), not through the ORM."""
    from konsent.flows.outbound.messaging import _copy_rows

    rnd = random.Random(17)
    with ctx.db.write() as s:
        tenant = tenants.create_tenant(ctx, s, "search", "Suche GmbH")
        account = tenants.create_channel_account(
            ctx, s, tenant, "simulator", "Sim", secrets_={"webhook_secret": "x"}
        )
        owner = staff.create_user(s, tenant, "bench.search@demo.example", "bench-password-1", "owner")
        vip = labels.define_label(s, tenant.id, "bench", "VIP").id
        city = attributes.define_attribute(
            s,
            tenant.id,
            "bench",
            key="city",
            name="Stadt",
            type="text",
            purpose="Events",
            retention="until_erasure",
        ).id
        tid, acc_id, kind, owner_id = tenant.id, account.id, account.kind, owner.id
        tkeys = ctx.keys.tenant(s, tid)
        skey = index.search_key(ctx, s, tid)
        first = int(s.scalar(text("SELECT coalesce(max(id), 0) FROM contacts")) or 0) + 1
    now = utcnow()
    gram_of: dict[str, str] = {}  # trigram -> token: names repeat, HMAC each trigram once
    for start in range(first, first + n, batch):
        ids = range(start, min(start + batch, first + n))
        contacts, secrets_, idents, grams, tags, values = [], [], [], [], [], []
        for cid in ids:
            key, secret = crypto.new_key(), crypto.new_key()
            name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
            secrets_.append((tid, cid, secret))
            contacts.append(
                {
                    "id": cid,
                    "tenant_id": tid,
                    "locale": "de",
                    "name_sealed": crypto.seal_text(key, name, f"contact:{cid}:name".encode()),
                    "wrapped_key": wrap_contact_key(tkeys.data_key, secret, key, cid),
                    "key_version": tkeys.version,
                    "has_contacted_us": True,
                    "unreachable": False,
                    "objected_marketing": False,
                    "created_at": now,
                }
            )
            idents.append(
                {
                    "tenant_id": tid,
                    "contact_id": cid,
                    "channel_account_id": acc_id,
                    "address_index": crypto.blind_index(tkeys.index_key, kind, _number(cid)),
                    "address_sealed": crypto.seal_text(key, _number(cid), f"contact:{cid}:address".encode()),
                    "created_at": now,
                }
            )
            for g in trigrams(name):
                tok = gram_of.get(g)
                if tok is None:
                    tok = gram_of[g] = index.gram_token(skey, g)
                grams.append({"tenant_id": tid, "gram": tok, "contact_id": cid})
            if cid % 100 == 0:
                tags.append({"tenant_id": tid, "contact_id": cid, "label_id": vip, "created_at": now})
                v = CITIES[cid % len(CITIES)]
                values.append(
                    {
                        "tenant_id": tid,
                        "contact_id": cid,
                        "attribute_id": city,
                        "value_sealed": crypto.seal_text(key, v, attributes.aad(cid, city)),
                        "value_index": index.value_token(skey, v),
                        "updated_at": now,
                    }
                )
        ctx.keys.store.put_many(secrets_)  # durable before the contacts that need them
        with ctx.db.write() as s:
            s.execute(text("SET LOCAL synchronous_commit = off"))  # bench data: no fsync wait per batch
            _copy_rows(s, Contact, contacts)
            _copy_rows(s, ContactIdentity, idents)
            _copy_rows(s, ContactSearchGram, grams)
            if tags:
                _copy_rows(s, ContactLabel, tags)
                _copy_rows(s, ContactAttribute, values)
    with ctx.db.write() as s:
        s.execute(
            text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT max(id) FROM contacts))")
        )
        t = s.get(Tenant, tid)
        assert t is not None
        t.settings = {**t.settings, index.SETTING: index.VERSION}
        owner_row = s.get(StaffUser, owner_id)
        assert owner_row is not None
        cookie = staff.start_session(s, owner_row, 2).cookie
    auto = ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with auto as conn:  # fresh bulk data: statistics and visibility map, as autovacuum would
        for table in TABLES:
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return tid, cookie


TABLES = ("contacts", "contact_identities", "contact_search_grams", "contact_labels", "contact_attributes")


def bench(
    ctx: Konsent, cookie: str, samples: int, n: int, profile: str = "", show_sql: bool = False
) -> dict[str, Any]:
    """p95 and median over `samples` rounds of every query in the mix, as the owner's page."""
    from fastapi.testclient import TestClient

    from konsent.web.app import create_app
    from konsent.web.deps import SESSION_COOKIE

    app = create_app(ctx)
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, cookie)
    mix = [f"q={q}" for q in QUERIES] + [
        f"q={_number(n // 2 + 7)}",
        "label=VIP",
        "attribute=city&value=k%C3%B6ln",
        "q=anna&label=VIP",
    ]
    for m in mix:  # warm the caches, check each query answers a page
        r = client.get(f"/admin/contacts?{m}")
        assert r.status_code == 200, (m, r.status_code)
    statements = [0]

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements[0] += 1
        if show_sql:
            print(" ".join(statement.split())[:300], file=sys.stderr)

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    prof = _profile_page() if profile else None
    times: list[float] = []
    cpu: list[float] = []  # CPU of this process (client and server threads), less sensitive to load
    per: dict[str, list[float]] = {m: [] for m in mix}
    for _ in range(samples):
        for m in mix:
            t0, c0 = time.perf_counter(), time.process_time()
            r = client.get(f"/admin/contacts?{m}")
            ms = (time.perf_counter() - t0) * 1000
            cpu.append((time.process_time() - c0) * 1000)
            times.append(ms)
            if show_sql:
                print(f"-- {m}: {ms:.1f} ms", file=sys.stderr)
            per[m].append(ms)
            assert r.status_code == 200
    event.remove(ctx.db.engine, "before_cursor_execute", count)
    if prof is not None:
        prof.dump_stats(profile)
    client.close()
    times.sort()
    return {
        "contact_search_100k_p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "contact_search_median_ms": round(statistics.median(times), 1),
        "contact_search_contacts": n,
        "contact_search_samples": len(times),
        "contact_search_cpu_median_ms": round(statistics.median(cpu), 1),
        "contact_search_cpu_p95_ms": round(sorted(cpu)[max(0, int(len(cpu) * 0.95) - 1)], 1),
        "contact_search_sql_statements_per_page": round(statements[0] / len(times), 1),
        "contact_search_by_query_median_ms": {m: round(statistics.median(v), 1) for m, v in per.items()},
    }


def _profile_page() -> Any:
    """cProfile (CPU time) of the server side of each request (endpoint and dependencies run in the server's
    worker threads, where a profiler started in the client's thread sees nothing)."""
    import cProfile

    import fastapi.dependencies.utils
    import fastapi.routing

    prof = cProfile.Profile(time.thread_time)  # CPU of the server threads: waits show as nothing
    for module in (fastapi.routing, fastapi.dependencies.utils):
        inner = module.run_in_threadpool

        async def profiled(func: Any, *args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            return await _inner(prof.runcall, func, *args, **kwargs)

        module.run_in_threadpool = profiled  # type: ignore[attr-defined]
    return prof


def _owner_cookie(ctx: Konsent) -> str:
    from sqlalchemy import select

    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.email == "bench.search@demo.example")).one()
        return staff.start_session(s, user, 2).cookie


def main() -> None:
    """Only the contact search figure, in a private PostgreSQL schema dropped afterwards:

    python -m bench.contact_search                      # 100,000 contacts, 5 rounds of the mix
    python -m bench.contact_search --contacts 20000 --profile /tmp/search.prof
    """
    import argparse
    import base64
    import json
    import shutil
    import tempfile
    import uuid
    from pathlib import Path

    from bench.inbox import DEFAULT_URL, MASTER
    from konsent.app import assemble
    from konsent.settings import Settings
    from konsent.store.db import Database, make_engine, migrate
    from konsent.store.keys import KeyRing
    from konsent.store.keystore import KeyStore, keystore_url

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5, help="rounds of the 12-query mix")
    parser.add_argument("--profile", default="", help="write a cProfile of the measured rounds here")
    parser.add_argument("--show-sql", action="store_true", help="print each page's SQL to stderr")
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema (printed) for --schema")
    parser.add_argument("--schema", default="", help="measure a schema seeded and kept by an earlier run")
    args = parser.parse_args()
    url = os.environ.get("KONSENT_BENCH_DATABASE_URL", DEFAULT_URL)
    schema = args.schema or f"bench_search_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    if not args.schema:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        data_dir = Path(tempfile.gettempdir()) / schema  # the key store, kept with the schema
        data_dir.mkdir(exist_ok=True)
        settings = Settings(data_dir=data_dir, master_key=MASTER, database_url=str(engine.url))
        ctx = assemble(
            settings,
            Database(engine),
            KeyRing(base64.urlsafe_b64decode(MASTER), KeyStore(keystore_url(settings.data_dir))),
        )
        t0 = time.perf_counter()
        if args.schema:
            cookie = _owner_cookie(ctx)
        else:
            migrate(engine)
            _, cookie = seed(ctx, args.contacts)
        seed_s = round(time.perf_counter() - t0, 1)
        figures = bench(
            ctx, cookie, args.samples, args.contacts, profile=args.profile, show_sql=args.show_sql
        )
        print(
            json.dumps(
                {
                    **figures,
                    "seed_s": seed_s,
                    **({"schema": schema} if args.keep else {}),
                    "database": "postgresql",
                    "command": "python -m bench.contact_search " + " ".join(sys.argv[1:]),
                }
            )
        )
    finally:
        engine.dispose()
        if not (args.keep or args.schema):
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            shutil.rmtree(data_dir, ignore_errors=True)
        admin.dispose()


if __name__ == "__main__":
    main()
