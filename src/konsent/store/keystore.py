"""The contact key store: one random secret per contact, kept apart from the main database (S1, D2).

A contact's data key is wrapped under a key derived from the tenant key *and* this secret
(see `store.keys`). Erasure deletes the secret here, so a backup of the main database
taken before the erasure still holds the wrapped key but nothing that opens it. The store
is its own database (by default `keystore.db` in the data directory) with its own,
short-lived backups; the secret alone opens nothing without the tenant key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError

_meta = MetaData()
contact_secrets = Table(
    "contact_secrets",
    _meta,
    Column("contact_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant_id", Integer, nullable=False, index=True),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_CHUNK = 900  # below SQLite's bound-parameter limit


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


class _Put:
    """One caller's rows waiting for a group commit; `woken` once written (or failed) or asked to lead."""

    __slots__ = ("error", "lead", "rows", "woken")

    def __init__(self, rows: list[tuple[int, int, bytes]]) -> None:
        self.rows = rows
        self.woken = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class KeyStore:
    """Durable per-contact secrets; every write commits on its own before the caller's transaction does.

    Concurrent `put`s share one transaction (a group commit): one caller writes what every waiting
    caller brought, and each returns once its row is durable. On the default SQLite store with
    `synchronous=FULL`, one fsync then covers many new contacts instead of 40 threads queuing for
    the write lock one fsync at a time (bench/inbound.py, new contacts)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        try:
            _meta.create_all(self.engine)
        except DBAPIError:  # another process created it between the check and the CREATE
            _meta.create_all(self.engine)
        self._queue: list[_Put] = []
        self._queue_lock = threading.Lock()
        self._writing = False

    def put(self, tenant_id: int, contact_id: int, secret: bytes) -> None:
        """Store a new contact's secret (replacing a stale one left by a rolled-back creation);
        durable when this returns, committed together with other threads' concurrent puts."""
        mine = _Put([(tenant_id, contact_id, secret)])
        with self._queue_lock:
            self._queue.append(mine)
            mine.lead = not self._writing
            self._writing = True
        if not mine.lead:
            mine.woken.wait()  # written by the leader, or handed the lead while still queued
        if mine.lead:  # write the queue, this row included
            self._write_queued()
        if mine.error is not None:
            raise mine.error

    def _write_queued(self) -> None:
        """Commit everything queued in one transaction, then hand the lead to the next waiter."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            self.put_many([row for put in batch for row in put.rows])
        except BaseException as exc:  # each caller of this batch learns that its row is not stored
            for put in batch:
                put.error = exc
        for put in batch:
            put.woken.set()
        with self._queue_lock:
            if self._queue:  # arrived during the write: the first of them writes the next batch
                nxt = self._queue[0]
                nxt.lead = True
                nxt.woken.set()
            else:
                self._writing = False

    def put_many(self, rows: Iterable[tuple[int, int, bytes]]) -> None:
        rows = list(rows)
        if not rows:
            return
        now = _now()
        batch = [{"tenant_id": t, "contact_id": c, "secret": s, "created_at": now} for t, c, s in rows]
        with self.engine.begin() as conn:
            for ids in _chunks([c for _t, c, _s in rows]):
                conn.execute(delete(contact_secrets).where(contact_secrets.c.contact_id.in_(ids)))
            conn.execute(insert(contact_secrets), batch)

    def get_many(self, contact_ids: Iterable[int]) -> dict[int, bytes]:
        ids = sorted(set(contact_ids))
        out: dict[int, bytes] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                q = select(contact_secrets.c.contact_id, contact_secrets.c.secret).where(
                    contact_secrets.c.contact_id.in_(chunk)
                )
                out.update({int(cid): bytes(sec) for cid, sec in conn.execute(q)})
        return out

    def destroy(self, contact_ids: Iterable[int]) -> int:
        """Delete secrets for good; the contacts' data can no longer be decrypted anywhere (D2)."""
        ids = sorted(set(contact_ids))
        n = 0
        with self.engine.begin() as conn:
            for chunk in _chunks(ids):
                n += conn.execute(
                    delete(contact_secrets).where(contact_secrets.c.contact_id.in_(chunk))
                ).rowcount
        return n

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(contact_secrets)) or 0)

    def ids_older_than(self, age: timedelta, after: int = 0, limit: int = 5000) -> list[int]:
        """Contact ids whose secret is older than `age` (the sweep leaves fresh ones to their creators)."""
        q = (
            select(contact_secrets.c.contact_id)
            .where(contact_secrets.c.created_at < _now() - age, contact_secrets.c.contact_id > after)
            .order_by(contact_secrets.c.contact_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [int(r) for r in conn.scalars(q)]

    def dispose(self) -> None:
        self.engine.dispose()


def keystore_url(data_dir: Path, configured: str = "") -> str:
    """The configured key-store URL, else a SQLite file next to the master key."""
    if configured:
        return configured
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'keystore.db').resolve()}"


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a lost secret is lost data: every write reaches the disk
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine
