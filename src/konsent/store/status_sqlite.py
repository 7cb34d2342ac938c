"""Group commit of status webhooks on SQLite: plain statements on the driver connection (CH4, invariant 6).

On SQLite the group commit costs no round trips, only CPU in the web process, where the
event loop needs it too. The same steps as on PostgreSQL (`status_pg`) run as a handful
of plain sqlite3 statements in one `BEGIN IMMEDIATE` transaction, with the column types'
own converters for timestamps, so what is stored is exactly what SQLAlchemy would store:

1. check the accounts the requests were verified against;
2. insert the dedupe keys (ON CONFLICT DO NOTHING; a row counted means a fresh event);
3. read the messages the statuses name;
4. write the changed status columns and the early statuses;
5. commit.

The rules (stale requests, fresh events, how statuses fold) are `domain.status_batch`'s, passed
the rows read here; nothing in store imports flows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from konsent.domain import status_batch as rules
from konsent.domain.events import StatusUpdate
from konsent.domain.status_batch import StatusItem, StatusState
from konsent.domain.webhooks import status_rows
from konsent.store import sql as webhook_sql
from konsent.store.tables import Message
from konsent.store.types import utcnow

_CHECK = "SELECT id, active, secrets_sealed, settings FROM channel_accounts WHERE id IN ({})"
_MESSAGES = (
    "SELECT id, provider_id, tenant_id, status, status_reason, updated_at, purpose FROM messages"
    " WHERE channel_account_id = ? AND direction = 'out' AND provider_id IN ({})"
)
_DEDUPE = (
    "INSERT INTO webhook_events (tenant_id, channel_account_id, dedupe_key, kind, received_at) "
    "VALUES (?, ?, ?, 'StatusUpdate', ?) ON CONFLICT (channel_account_id, dedupe_key) DO NOTHING"
)
_UPDATE = "UPDATE messages SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?"
_CHARGE = (
    "INSERT INTO message_charges (tenant_id, channel_account_id, message_ref, purpose, country, category,"
    " pricing_type, pricing_model, billable, month, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant_id, message_ref) DO NOTHING"
)
_EARLY = (
    "INSERT INTO early_statuses (tenant_id, channel_account_id, provider_id, status, reason, at, ref) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _same(value: Any) -> Any:
    return value


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Writer:
    """Writes batches of statuses through the engine's pooled sqlite3 connections."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        impl = cast(Table, Message.__table__).c.updated_at.type.dialect_impl(engine.dialect)
        self._to_db = cast(Callable[[Any], Any], impl.bind_processor(engine.dialect))
        self._from_db = cast(Callable[[Any], Any], impl.result_processor(engine.dialect, None))

    def store(self, batch: list[StatusItem]) -> list[tuple[int, int]]:
        """Dedupe, apply and keep early statuses; (handled, duplicates) per item once committed."""
        raw = self._engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("BEGIN IMMEDIATE")
            try:
                (results, todo), messages = self._read(cur, batch)
                self._write(cur, todo, messages)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return results
        finally:
            raw.close()

    def close(self) -> None:
        """Nothing is kept between batches: each takes a pooled connection and gives it back."""

    def _read(
        self, cur: Any, batch: list[StatusItem]
    ) -> tuple[tuple[list[tuple[int, int]], list[tuple[StatusItem, StatusUpdate]]], dict[Any, Any]]:
        """Steps 1-3. The accounts are checked first, under the write lock: a request verified
        against a state that is gone is marked stale and stores nothing."""
        checked = rules.accounts_to_check(batch)
        accounts: dict[int, tuple[bool, bytes | None, dict[str, object]]] = {}
        if checked:
            cur.execute(_CHECK.format(_marks(len(checked))), checked)
            for acc_id, active, sealed, settings in cur.fetchall():
                accounts[acc_id] = (bool(active), sealed, json.loads(settings) if settings else {})
        rules.mark_stale(batch, accounts)
        now = self._to_db(utcnow())
        fresh: set[tuple[int, str]] = set()
        wanted: dict[int, set[str]] = {}
        for item in batch:
            if item.stale:
                continue
            for ev in item.events:
                key = rules.dedupe_key(item, ev)
                cur.execute(_DEDUPE, (item.tenant_id, item.account_id, key, now))
                if cur.rowcount == 1:
                    fresh.add((item.account_id, key))
                wanted.setdefault(item.account_id, set()).add(ev.provider_id)
        messages: dict[tuple[int, str], tuple[int, StatusState]] = {}
        for account_id, pids in wanted.items():
            ids = sorted(pids)
            cur.execute(_MESSAGES.format(_marks(len(ids))), [account_id, *ids])
            for mid, pid, tenant, status, reason, updated, purpose in cur.fetchall():
                state = StatusState(mid, status, reason or "", self._from_db(updated), purpose or "")
                messages[(account_id, str(pid))] = (tenant, state)
        return rules.split_fresh(batch, fresh), messages

    def _emit(self, cur: Any, changed: list[tuple[int, int, str, str]]) -> None:
        """message.status webhook rows in the same commit (M4)."""
        tenants = sorted({c[0] for c in changed})
        cur.execute(webhook_sql.ENDPOINTS_SQL.format(true=1, marks=_marks(len(tenants))), tenants)
        rows = status_rows(changed, cur.fetchall(), utcnow())
        if rows:
            cols = webhook_sql.INSERT_COLUMNS
            sql = webhook_sql.INSERT_SQL.format(marks=_marks(len(cols)))
            conv = {"run_at": self._to_db, "created_at": self._to_db}
            cur.executemany(sql, [tuple(conv.get(c, _same)(r[c]) for c in cols) for r in rows])

    def _write(self, cur: Any, todo: list[tuple[StatusItem, StatusUpdate]], messages: dict[Any, Any]) -> None:
        """Step 4: the status rules applied in arrival order, written back."""
        changed, early = rules.fold(todo, messages)
        charges = rules.charge_rows(todo, messages)
        if charges:  # CH6: what the provider charges, in the same commit
            conv = {"at": self._to_db}
            cur.executemany(
                _CHARGE, [tuple(conv.get(c, _same)(r[c]) for c in rules.CHARGE_COLUMNS) for r in charges]
            )
        if changed:
            cur.executemany(
                _UPDATE, [(m.status, m.status_reason, self._to_db(m.updated_at), m.id) for m in changed]
            )
            tenant_of = {state.id: tenant for tenant, state in messages.values()}
            self._emit(cur, [(tenant_of[m.id], m.id, m.status, m.status_reason) for m in changed])
        if early:
            cur.executemany(
                _EARLY,
                [
                    (r["tenant_id"], r["channel_account_id"], r["provider_id"], r["status"], r["reason"],
                     self._to_db(r["at"]), r["ref"])
                    for r in early
                ],
            )  # fmt: skip
