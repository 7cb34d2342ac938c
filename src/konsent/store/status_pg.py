"""Group commit of status webhooks on PostgreSQL: constant statements over arrays (CH4, invariant 6).

Five constant statements over arrays, which PostgreSQL prepares once per kept
connection (going through the ORM with a pooled, pinged connection per batch cost
twice the time; see docs/PERFORMANCE.md):

1. check the accounts the requests were verified against;
2. insert the dedupe keys (ON CONFLICT DO NOTHING RETURNING the fresh ones);
3. lock the messages the statuses name, in id order;
4. write the changed status columns (and any early statuses);
5. commit.

The status rules themselves (`domain.status_batch.fold`) stay in Python, applied to the locked
rows in arrival order, as on SQLite (`status_sqlite`). Requests verified against an
account that has changed since (rare) store nothing and take the ordinary path.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from konsent.domain import status_batch as rules
from konsent.domain.events import StatusUpdate
from konsent.domain.status_batch import StatusItem, StatusState
from konsent.domain.webhooks import status_rows
from konsent.store import sql as webhook_sql
from konsent.store.types import utcnow

_CHECK = "SELECT id, active, secrets_sealed, settings FROM channel_accounts WHERE id = ANY(%s)"
_DEDUPE = (
    "INSERT INTO webhook_events (tenant_id, channel_account_id, dedupe_key, kind, received_at) "
    "SELECT t, a, k, 'StatusUpdate', %s FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS u(t, a, k) "
    "ON CONFLICT (channel_account_id, dedupe_key) DO NOTHING "
    "RETURNING channel_account_id, dedupe_key"
)
_LOCK = (
    "SELECT m.id, m.channel_account_id, m.provider_id, m.tenant_id, m.status, m.status_reason, m.updated_at,"
    " m.purpose "
    "FROM unnest(%s::bigint[], %s::text[]) AS u(a, p) "
    "JOIN messages AS m ON m.channel_account_id = u.a AND m.direction = 'out' AND m.provider_id = u.p "
    "ORDER BY m.id FOR UPDATE OF m"
)
_UPDATE = (
    "UPDATE messages AS m SET status = u.st, status_reason = u.rs, updated_at = u.up "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[]) AS u(id, st, rs, up) "
    "WHERE m.id = u.id"
)
_CHARGE = (
    "INSERT INTO message_charges (tenant_id, channel_account_id, message_ref, purpose, country, category,"
    " pricing_type, pricing_model, billable, month, at) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::boolean[], %s::text[], %s::timestamptz[])"
    " ON CONFLICT (tenant_id, message_ref) DO NOTHING"
)
_EARLY_COLUMNS = ("tenant_id", "channel_account_id", "provider_id", "status", "reason", "at", "ref")
_EARLY = (
    "INSERT INTO early_statuses (tenant_id, channel_account_id, provider_id, status, reason, at, ref) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],"
    " %s::text[])"
)


class Connections:
    """Connections kept checked out for the group commit: no pool checkout and pre-ping per batch.

    A kept connection that turns out broken (the server restarted) is dropped and the batch
    is written once more on a fresh one; that is safe because the dedupe keys make a batch
    that did commit count as duplicates the second time.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def store(self, batch: list[StatusItem]) -> list[tuple[int, int]]:
        """Dedupe, apply and keep early statuses; (handled, duplicates) per item once committed."""
        with self._lock:
            raw, kept = (self._idle.pop(), True) if self._idle else (None, False)
        if raw is None:
            raw = self._engine.raw_connection()
        try:
            results = _store(raw.driver_connection, batch)
        except psycopg.OperationalError:
            raw.invalidate()
            if not kept:
                raise
            return self.store(batch)
        except BaseException:
            raw.invalidate()  # whatever state the connection is in, it is not used again
            raise
        with self._lock:
            if self._closed:
                raw.close()
            else:
                self._idle.append(raw)
        return results

    def close(self) -> None:
        """Hand the kept connections back to the pool (before the engine is disposed)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for raw in idle:
            raw.close()


def _store(conn: Any, batch: list[StatusItem]) -> list[tuple[int, int]]:
    (results, todo), locked = _lock_fresh(conn, batch)
    _write(conn, todo, locked)
    return results


_Locked = dict[tuple[int, str], tuple[int, StatusState]]  # (account, provider id) -> (tenant, status columns)


def _lock_fresh(
    conn: Any, batch: list[StatusItem]
) -> tuple[tuple[list[tuple[int, int]], list[tuple[StatusItem, StatusUpdate]]], _Locked]:
    """Steps 1-3. The accounts are checked first: a request verified against a state that is
    gone is marked stale and stores nothing."""
    # Plain round trips, not pipeline mode: psycopg waits for a pipeline's results by polling a
    # socket that is always writable, a busy loop that took a quarter of the GIL from the server.
    checked = rules.accounts_to_check(batch)
    rules.mark_stale(batch, {row[0]: row[1:] for row in conn.execute(_CHECK, [checked])} if checked else {})
    keys: dict[tuple[int, str], int] = {}  # (account, dedupe key) -> tenant, first occurrence wins
    pairs: set[tuple[int, str]] = set()
    for item in batch:
        if item.stale:
            continue
        for ev in item.events:
            keys.setdefault((item.account_id, rules.dedupe_key(item, ev)), item.tenant_id)
            pairs.add((item.account_id, ev.provider_id))
    fresh: set[tuple[int, str]] = set()
    rows: list[Any] = []
    if keys:
        tenants, accs, dks = list(keys.values()), [a for a, _ in keys], [k for _, k in keys]
        fresh = {(a, k) for a, k in conn.execute(_DEDUPE, [utcnow(), tenants, accs, dks])}
        rows = conn.execute(_LOCK, [[a for a, _ in pairs], [p for _, p in pairs]]).fetchall()
    locked = {
        (acc, str(pid)): (tenant, StatusState(mid, status, reason or "", updated, purpose or ""))
        for mid, acc, pid, tenant, status, reason, updated, purpose in rows
    }
    return rules.split_fresh(batch, fresh), locked


def _emit(conn: Any, changed: list[tuple[int, int, str, str]]) -> None:
    """message.status webhook rows in the same commit (M4)."""
    tenants = sorted({c[0] for c in changed})
    sql = webhook_sql.ENDPOINTS_SQL.format(true="true", marks=", ".join(["%s"] * len(tenants)))
    rows = status_rows(changed, conn.execute(sql, tenants).fetchall(), utcnow())
    if rows:
        cols = webhook_sql.INSERT_COLUMNS
        marks = ", ".join(["%s"] * len(cols))
        with conn.cursor() as cur:
            cur.executemany(
                webhook_sql.INSERT_SQL.format(marks=marks),
                [tuple(r[c] for c in cols) for r in rows],
            )


def _write(conn: Any, todo: list[tuple[StatusItem, StatusUpdate]], locked: _Locked) -> None:
    """Steps 4-5: the status rules applied in arrival order, written back, committed."""
    changed, early = rules.fold(todo, locked)
    charges = rules.charge_rows(todo, locked)
    if charges:  # CH6: what the provider charges, in the same commit
        conn.execute(_CHARGE, [[row[c] for row in charges] for c in rules.CHARGE_COLUMNS])
    if changed:
        cols = ("id", "status", "status_reason", "updated_at")
        conn.execute(_UPDATE, [[getattr(m, c) for m in changed] for c in cols])
        tenant_of = {state.id: tenant for tenant, state in locked.values()}
        _emit(conn, [(tenant_of[m.id], m.id, m.status, m.status_reason) for m in changed])
    if early:
        conn.execute(_EARLY, [[row[c] for row in early] for c in _EARLY_COLUMNS])
    conn.commit()
