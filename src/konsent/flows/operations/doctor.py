"""`konsent doctor`: checks a production configuration; every finding names its fix (U1, U6, S6, D2)."""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, make_url, select, text
from sqlalchemy.orm import Session

from konsent.flows.context import Konsent
from konsent.flows.operations import heartbeat
from konsent.flows.operations.health import current_revision, head_revision
from konsent.flows.organisation import tenants
from konsent.store.db import database_url
from konsent.store.keystore import keystore_url
from konsent.store.tables import ChannelAccount, OutboxRow
from konsent.store.types import utcnow

MIN_POSTGRES = 15
MAX_CLOCK_SKEW_S = 5.0
BACKLOG_AFTER = timedelta(minutes=10)
FAILURES_SINCE = timedelta(hours=24)


@dataclass(frozen=True)
class Finding:
    code: str
    problem: str
    fix: str


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, code: str, problem: str, fix: str) -> None:
        self.findings.append(Finding(code, problem, fix))


def diagnose(ctx: Konsent, now: datetime | None = None) -> Diagnosis:
    """Run every check; nothing is changed (the schema is not migrated, no key is created)."""
    now = now or utcnow()
    d = Diagnosis()
    _web(ctx, d)
    _master_key(ctx, d)
    _keystore(ctx, d)
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        d.add(
            "database_unreachable",
            f"The database does not answer ({type(exc).__name__}).",
            "Check KONSENT_DATABASE_URL, the network and the database server; then run doctor again.",
        )
        return d
    _database(ctx, d, now)
    with ctx.db.read() as s:
        _workers(s, d, now)
        _channels(ctx, s, d, now)
    return d


def _private_host(host: str) -> bool:
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified


def _web(ctx: Konsent, d: Diagnosis) -> None:
    s = ctx.settings
    url = urlsplit(s.base_url)
    host = url.hostname or ""
    if url.scheme != "https":
        d.add(
            "base_url_not_https",
            f"KONSENT_BASE_URL is {s.base_url}: links and QR codes would send people to plain http.",
            "Serve konsent behind a TLS reverse proxy and set KONSENT_BASE_URL=https://<your host> "
            "(docs/OPERATIONS.md, Reverse proxy).",
        )
    else:
        d.passed.append(f"base URL is https ({host})")
    if not s.secure_cookies:
        d.add(
            "cookies_not_secure",
            "Staff session cookies are not marked Secure: a browser would send them over plain http.",
            "Set KONSENT_SECURE_COOKIES=true (with https in front of konsent).",
        )
    else:
        d.passed.append("cookies are Secure")
    if url.scheme != "https" or _private_host(host):
        d.add(
            "webhooks_unreachable",
            f"Providers cannot call {s.base_url.rstrip('/')}/webhooks/…: "
            "they only post to public https URLs.",
            "Give konsent a public https name (KONSENT_BASE_URL) and register the webhooks again "
            "(`konsent channels register-webhook`).",
        )
    else:
        d.passed.append("webhook URLs are public https")


def _master_key(ctx: Konsent, d: Diagnosis) -> None:
    if ctx.settings.master_key is not None:
        d.passed.append("master key comes from KONSENT_MASTER_KEY")
        return
    path = ctx.settings.data_dir / "master.key"
    d.add(
        "master_key_in_data_dir",
        f"The master key is read from {path}, next to the data: "
        "a copy of the data directory opens everything.",
        "Keep the key in a secret store and pass it as KONSENT_MASTER_KEY (the file's content); "
        "then remove the file from the data directory and from its backups.",
    )
    if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        d.add("master_key_file_mode", f"{path} is readable by others.", f"chmod 600 {path}")


def _keystore(ctx: Konsent, d: Diagnosis) -> None:
    s = ctx.settings
    db = make_url(database_url(s))
    ks = make_url(keystore_url(s.data_dir, s.keystore_url))
    same = (db.get_backend_name(), db.host, db.port, db.database) == (
        ks.get_backend_name(),
        ks.host,
        ks.port,
        ks.database,
    )
    if same:
        d.add(
            "keystore_in_database",
            "The key store lives in the main database: an erasure would not reach old database backups (D2).",
            "Give KONSENT_KEYSTORE_URL its own database and back it up apart (docs/PRIVACY.md, Backups).",
        )
    elif db.get_backend_name() != "sqlite" and ks.get_backend_name() == "sqlite":
        d.add(
            "keystore_local_file",
            f"The database is PostgreSQL but the key store is a local file ({ks.database}): "
            "each machine would have its own key store.",
            "Set KONSENT_KEYSTORE_URL to its own PostgreSQL database, e.g. "
            "postgresql+psycopg://konsent@keys.internal/konsent_keys.",
        )
    else:
        d.passed.append("the key store is apart from the database")
    try:
        with ctx.keys.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        d.add(
            "keystore_unreachable",
            f"The key store does not answer ({type(exc).__name__}).",
            "Check KONSENT_KEYSTORE_URL and its database server.",
        )


def _database(ctx: Konsent, d: Diagnosis, now: datetime) -> None:
    with ctx.db.engine.connect() as conn:
        if ctx.db.is_postgres:
            version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            db_now = conn.execute(text("SELECT now()")).scalar_one()
            if version // 10000 < MIN_POSTGRES:
                d.add(
                    "postgres_too_old",
                    f"PostgreSQL {version // 10000} is older than {MIN_POSTGRES}.",
                    f"Upgrade the database server to PostgreSQL {MIN_POSTGRES} or newer.",
                )
            else:
                d.passed.append(f"PostgreSQL {version // 10000}")
            skew = abs((db_now - utcnow()).total_seconds())
            if skew > MAX_CLOCK_SKEW_S:
                d.add(
                    "clock_skew",
                    f"This machine's clock is {skew:.0f} s off the database server's.",
                    "Run time synchronisation (systemd-timesyncd or chrony) on every machine.",
                )
            else:
                d.passed.append(f"clock within {MAX_CLOCK_SKEW_S:.0f} s of the database server")
        else:
            d.passed.append("SQLite: one machine, clock shared with the database")
    current, head = current_revision(ctx.db.engine), head_revision()
    if current != head:
        d.add(
            "migrations_pending",
            f"The database schema is at {current or 'nothing'}; this release needs {head}.",
            "Run `konsent migrate` once (it waits for other starters under a lock).",
        )
    else:
        d.passed.append(f"schema current ({head})")


def _workers(s: Session, d: Diagnosis, now: datetime) -> None:
    try:
        beats = heartbeat.beats(s)
    except Exception:
        return  # the schema is behind: migrations_pending says so
    fresh = [b for b in beats if b.fresh(now)]
    if not fresh:
        d.add(
            "no_worker",
            "No delivery worker has sent a heartbeat in the last minute: nothing is being sent.",
            "Start `konsent worker` (or `konsent serve` with KONSENT_EMBEDDED_WORKER=true) "
            "and check its log.",
        )
    else:
        d.passed.append(f"{len(fresh)} worker(s) alive")


def _channels(ctx: Konsent, s: Session, d: Diagnosis, now: datetime) -> None:
    accounts = s.scalars(select(ChannelAccount).where(ChannelAccount.active.is_(True))).all()
    healthy = 0
    for acc in accounts:
        where = f"channel account {acc.id} (tenant {acc.tenant_id}, {acc.kind})"
        problems = len(d.findings)
        try:
            tenants.account_config(ctx, s, acc)
        except Exception as exc:
            d.add(
                "channel_secrets_unreadable",
                f"{where}: its secrets cannot be opened ({type(exc).__name__}).",
                "Check KONSENT_MASTER_KEY (and KONSENT_PREVIOUS_MASTER_KEYS during a rotation); "
                "then enter the account's secrets again in the admin.",
            )
        oldest = s.scalar(
            select(func.min(OutboxRow.run_at)).where(
                OutboxRow.channel_account_id == acc.id,
                OutboxRow.state == "available",
                OutboxRow.run_at <= now - BACKLOG_AFTER,
            )
        )
        if oldest is not None:
            d.add(
                "channel_backlog",
                f"{where}: messages have waited since {oldest:%Y-%m-%d %H:%M} UTC.",
                "Check that a worker runs and the provider accepts the account's credentials; "
                "see the account's last errors in the admin.",
            )
        failed = s.execute(
            select(OutboxRow.last_error, func.count())
            .where(
                OutboxRow.channel_account_id == acc.id,
                OutboxRow.state == "discarded",
                OutboxRow.finished_at >= now - FAILURES_SINCE,
            )
            .group_by(OutboxRow.last_error)
        ).all()
        if failed:
            total = sum(n for _, n in failed)
            code = max(failed, key=lambda r: r[1])[0].split(":", 1)[0] or "unknown"
            d.add(
                "channel_failures",
                f"{where}: {total} message(s) given up in the last 24 hours (mostly {code}).",
                "Fix the cause the provider names (credentials, template, quality rating), then resend.",
            )
        healthy += len(d.findings) == problems
    if accounts:
        d.passed.append(f"{healthy} of {len(accounts)} channel account(s) healthy")
