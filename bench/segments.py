"""Segment preview benchmark (#17 item 3): how long the size preview of a segment takes over a
topic with one million contacts, on PostgreSQL.

    python -m bench.segments                    # 1,000,000 contacts; prints one JSON line
    python -m bench.segments --n 100000

`python -m bench.inbox` runs the same measurement (`bench_segment_preview`) and adds its figures
to its own JSON line. Seeding is plain SQL (generate_series), not the ORM: one tenant, two topics
(90 % active consent to "news", every third contact also to "offers"), one identity per contact
with the time it last wrote, 5 % of contacts labelled "VIP"; then VACUUM ANALYZE, as autovacuum
leaves a live database. Names and addresses are not sealed (the preview without names opens nothing).

Figures:
- segment_preview_1m_s: median time of `flows.outbound.segments.preview_for` (the count the
  admin and the API show) for topic "news" with the segment {"topics": ["offers"],
  "replied_within_days": 30, "contact_labels": ["VIP"]}; goal <= 5 s.
- segment_preview_topic_only_1m_s: the same without a segment (the bare consent count).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from konsent.app import assemble
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.outbound import segments
from konsent.settings import Settings
from konsent.store.db import Database, make_engine, migrate
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MASTER = base64.urlsafe_b64encode(b"s" * 32).decode()
SEGMENT = {"topics": ["offers"], "replied_within_days": 30, "contact_labels": ["VIP"]}


def seed_audience(ctx: Konsent, n: int) -> int:
    """A tenant with `n` contacts, consents, identities and labels, written by generate_series."""
    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, f"seg{uuid.uuid4().hex[:8]}", "Segment GmbH")
        tenants.add_topic(s, t, "news", {"de": "News", "en": "News"})
        tenants.add_topic(s, t, "offers", {"de": "Angebote", "en": "Offers"})
        secret = base64.b64encode(b"b" * 20).decode()
        acc = tenants.create_channel_account(
            ctx, s, t, "simulator", "Sim", secrets_={"webhook_secret": secret}
        )
        tid, acc_id = t.id, acc.id
    with ctx.db.engine.begin() as conn:
        p: dict[str, Any] = {"t": tid, "n": n, "a": acc_id}
        # load, not evidence: skip the per-row foreign-key triggers of this bulk load (superuser only)
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                "INSERT INTO contacts (tenant_id, locale, wrapped_key, key_version, has_contacted_us,"
                " unreachable, objected_marketing, last_activity_at, created_at)"
                " SELECT :t, CASE WHEN g % 4 = 0 THEN 'en' ELSE 'de' END, '\\x00'::bytea, 1, true,"
                " false, false, now() - (g % 120) * interval '1 day', now()"
                " FROM generate_series(1, :n) g"
            ),
            p,
        )
        first = conn.execute(text("SELECT min(id) FROM contacts WHERE tenant_id = :t"), p).scalar()
        p["f"] = first
        conn.execute(
            text(
                "INSERT INTO consents (tenant_id, contact_id, purpose, status, text_version, changed_at)"
                " SELECT :t, id, 'newsletter:news', CASE WHEN id % 10 = 7 THEN 'withdrawn' ELSE 'active' END,"
                " 1, now() - (id % 365) * interval '1 day' FROM contacts WHERE tenant_id = :t"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO consents (tenant_id, contact_id, purpose, status, text_version, changed_at)"
                " SELECT :t, id, 'newsletter:offers', 'active', 1, now() - interval '10 days'"
                " FROM contacts WHERE tenant_id = :t AND id % 3 = 0"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO contact_identities (tenant_id, contact_id, channel_account_id, address_index,"
                " address_sealed, last_inbound_at, created_at)"
                " SELECT :t, id, :a, md5(id::text), '\\x00'::bytea,"
                " now() - (id % 60) * interval '1 day', now()"
                " FROM contacts WHERE tenant_id = :t"
            ),
            p,
        )
        label = conn.execute(
            text(
                "INSERT INTO label_definitions (tenant_id, name, created_at)"
                " VALUES (:t, 'VIP', now()) RETURNING id"
            ),
            p,
        ).scalar()
        p["l"] = label
        conn.execute(
            text(
                "INSERT INTO contact_labels (tenant_id, contact_id, label_id, created_at)"
                " SELECT :t, id, :l, now() FROM contacts WHERE tenant_id = :t AND id % 20 = 0"
            ),
            p,
        )
    # As autovacuum leaves a live database: statistics, visibility map and hint bits set.
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("contacts", "consents", "contact_identities", "contact_labels"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return tid


def _median_s(fn: Any, samples: int) -> tuple[float, Any]:
    out = fn()  # warm-up
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2), out


def bench_segment_preview(ctx: Konsent, n: int, samples: int = 5) -> dict[str, Any]:
    """Seed `n` contacts in a tenant of their own and time the segment preview (figures above)."""
    t0 = time.perf_counter()
    tid = seed_audience(ctx, n)
    seeded = round(time.perf_counter() - t0, 1)
    seg_s, shown = _median_s(lambda: segments.preview_for(ctx, tid, "news", SEGMENT), samples)
    topic_s, everyone = _median_s(lambda: segments.preview_for(ctx, tid, "news", {}), samples)
    return {
        "segment_preview_1m_s": seg_s,
        "segment_preview_topic_only_1m_s": topic_s,
        "segment_preview_contacts": n,
        "segment_preview_count": shown.count,
        "segment_preview_topic_count": everyone.count,
        "segment_preview_seed_s": seeded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts in the tenant")
    parser.add_argument("--samples", type=int, default=5, help="measurements per figure")
    args = parser.parse_args()
    url = os.environ.get("KONSENT_BENCH_DATABASE_URL", DEFAULT_URL)
    schema = f"bench_segments_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        migrate(engine)
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()), master_key=MASTER, database_url=str(engine.url)
        )
        ctx = assemble(
            settings,
            Database(engine),
            KeyRing(base64.urlsafe_b64decode(MASTER), KeyStore(keystore_url(settings.data_dir))),
        )
        out = bench_segment_preview(ctx, args.n, args.samples)
        out.update(
            {
                "goals": {"segment_preview_1m_s": 5},
                "database": "postgresql",
                "command": "python -m bench.segments " + " ".join(sys.argv[1:]),
            }
        )
        print(json.dumps(out))
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
