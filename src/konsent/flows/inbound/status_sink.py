"""The fast path for delivery-status webhooks: group commit, and statuses that overtake their send (CH4).

Status webhooks arrive at several times the send rate. Instead of two transactions
per event, concurrent requests hand their statuses to a `StatusSink`; one of them
(the leader) writes everything pending in one transaction — dedupe rows with ON
CONFLICT DO NOTHING, message updates, early statuses — and every request answers
200 only after that commit (durable, like the slow path). The transaction itself is
written by `store.status_pg` or `store.status_sqlite`, with the rules in `domain.status_batch`
(`mark_stale`, `split_fresh`, `fold`, `apply_status`), which the writers call.

A status may arrive before the worker recorded the provider id of its message
(the provider answered the send and the webhook overtook our completion). It is
kept as an `EarlyStatus` and applied when the provider id is recorded
(`status_early.apply_early`, called by the worker in the same transaction) or by the
periodic `reconcile` that closes the remaining race.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from konsent import metrics
from konsent.channels.base import AccountConfig, WebhookRequest
from konsent.domain.events import StatusUpdate
from konsent.domain.inputs import checked_event
from konsent.domain.status_batch import StatusItem, StatusState, apply_status
from konsent.flows.context import Konsent
from konsent.flows.inbound.dedupe import dedupe_secret
from konsent.flows.inbound.routes import account_by_route
from konsent.flows.organisation.tenants import account_config
from konsent.store.tables import ChannelAccount, Message

# ------------------------------------------------------------------ account configs


def account_for_route(ctx: Konsent, route_key: str) -> tuple[ChannelAccount, AccountConfig]:
    """The active account behind a webhook URL and its config, read now.

    Only the decryption of the secrets is reused, keyed by the sealed bytes and the
    settings, so a new secret takes effect with the next request. The result is
    remembered for `try_fast_path`.
    """
    configs: dict[int, tuple[bytes | None, dict[str, object], AccountConfig]]
    configs = ctx.account_configs
    with ctx.db.read() as s:
        account = account_by_route(s, route_key)
        hit = configs.get(account.id)
        if hit is not None and hit[0] == account.secrets_sealed and hit[1] == account.settings:
            cfg = hit[2]
        else:
            cfg = account_config(ctx, s, account)
            configs[account.id] = (account.secrets_sealed, dict(account.settings), cfg)
    routes: dict[str, KnownAccount] = ctx.known_routes
    routes[route_key] = KnownAccount(
        account.id, account.tenant_id, account.kind, account.secrets_sealed, dict(account.settings), cfg
    )
    return account, cfg


@dataclass(frozen=True)
class KnownAccount:
    """An account as last read for a route: enough to verify and parse without the database."""

    account_id: int
    tenant_id: int
    kind: str
    secrets_sealed: bytes | None
    settings: dict[str, object]
    cfg: AccountConfig


def try_fast_path(ctx: Konsent, route_key: str, request: WebhookRequest) -> tuple[int, int] | None:
    """Handle a status-only delivery for a known route without reading the account first.

    The request is verified with the account as last read; the group-commit transaction
    then checks that the account is still active with the same secrets and settings
    before anything is stored. Anything else (unknown route, a changed account, a
    rejected signature, other events) returns None and takes the ordinary path.
    """
    found = _fast_statuses(ctx, route_key, request)
    if found is None:
        return None
    known, statuses = found
    stored = sink(ctx).submit(known.account_id, known.tenant_id, statuses, expect=known)
    if stored is not None:
        metrics.webhook_received(known.kind)
    return stored


# Verifying and parsing run on the event loop in the async path: only for small bodies.
FAST_BODY_LIMIT = 64 * 1024


async def try_fast_path_async(
    ctx: Konsent, route_key: str, request: WebhookRequest
) -> tuple[int, int] | None:
    """`try_fast_path` for the web server: no thread per request, one thread hop per batch."""
    if len(request.body) > FAST_BODY_LIMIT:
        return None
    found = _fast_statuses(ctx, route_key, request)
    if found is None:
        return None
    known, statuses = found
    stored = await sink(ctx).submit_async(known.account_id, known.tenant_id, statuses, expect=known)
    if stored is not None:
        metrics.webhook_received(known.kind)
    return stored


def _fast_statuses(
    ctx: Konsent, route_key: str, request: WebhookRequest
) -> tuple[KnownAccount, list[StatusUpdate]] | None:
    known: KnownAccount | None = ctx.known_routes.get(route_key)
    if known is None or request.method != "POST":
        return None
    adapter = ctx.adapter(known.kind)
    try:
        adapter.verify(known.cfg, request)
        events = [checked_event(ev) for ev in adapter.parse(known.cfg, request.body)]
    except Exception:
        return None
    if not events or not all(isinstance(ev, StatusUpdate) for ev in events):
        return None
    return known, [ev for ev in events if isinstance(ev, StatusUpdate)]


# ------------------------------------------------------------------ group commit


@dataclass
class _LoopQueue:
    """Requests of one event loop waiting for the next group commit."""

    pending: list[tuple[StatusItem, asyncio.Future[None]]] = field(default_factory=list)
    # One group commit in flight per event loop: two or three concurrent ones made smaller batches
    # and fewer webhooks per second (PostgreSQL, session 3: 4,730/s with one, 4,270 two, 4,010 three).
    task: asyncio.Task[None] | None = None


@dataclass
class StatusSink:
    """Leader/follower group commit of status events across request threads."""

    ctx: Konsent
    max_batch: int = 500
    _pending: list[StatusItem] = field(default_factory=list)
    _flushing: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _writer: Any = None  # store.status_pg.Connections or store.status_sqlite.Writer, made at the first batch
    _loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def _secret(self, tenant_id: int) -> bytes:
        """The tenant's dedupe key; the key ring caches it, so this reads the database once."""
        with self.ctx.db.read() as s:
            return dedupe_secret(self.ctx, s, tenant_id)

    def submit(
        self,
        account_id: int,
        tenant_id: int,
        events: Sequence[StatusUpdate],
        expect: KnownAccount | None = None,
    ) -> tuple[int, int] | None:
        """Store these statuses durably; (handled, duplicates) once committed, None if `expect` is stale."""
        item = StatusItem(account_id, tenant_id, events, expect, secret=self._secret(tenant_id))
        with self._cond:
            self._pending.append(item)
            while not item.done:
                if not self._flushing:
                    self._flushing = True
                    batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                    self._cond.release()
                    try:
                        self._flush(batch)
                    finally:
                        self._cond.acquire()
                        self._flushing = False
                        self._cond.notify_all()
                else:
                    self._cond.wait(1.0)
        if item.error is not None:
            raise item.error
        if item.stale:
            return None
        return item.handled, item.duplicates

    async def submit_async(
        self,
        account_id: int,
        tenant_id: int,
        events: Sequence[StatusUpdate],
        expect: KnownAccount | None = None,
    ) -> tuple[int, int] | None:
        """`submit` for coroutines: requests of one event loop queue up while one batch is written."""
        loop = asyncio.get_running_loop()
        item = StatusItem(account_id, tenant_id, events, expect, secret=self._secret(tenant_id))
        queue = self._loops.setdefault(loop, _LoopQueue())
        waiter: asyncio.Future[None] = loop.create_future()
        queue.pending.append((item, waiter))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))  # the reference keeps it alive
        await waiter
        if item.error is not None:
            raise item.error
        if item.stale:
            return None
        return item.handled, item.duplicates

    async def _drain(self, queue: _LoopQueue) -> None:
        try:
            while queue.pending:
                taken, queue.pending = queue.pending[: self.max_batch], queue.pending[self.max_batch :]
                await asyncio.to_thread(self._flush, [item for item, _ in taken])
                for _, waiter in taken:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            queue.task = None
            for item, waiter in queue.pending:  # only if the task was cancelled: nobody would answer these
                item.error = item.error or RuntimeError("status sink stopped")
                if not waiter.done():
                    waiter.set_result(None)
            queue.pending = []

    def _batch_writer(self) -> Any:
        """The database's writer of group commits (`store(batch)`, `close()`), made once."""
        with self._cond:
            if self._writer is None:
                factory = self.ctx.status_writer_factory
                if factory is None:
                    raise RuntimeError("no status writer: build the context with konsent.app.build")
                self._writer = factory(self.ctx.db.engine)
            return self._writer

    def close(self) -> None:
        """Give back what the sink holds (the kept PostgreSQL connections)."""
        if self._writer is not None:
            self._writer.close()

    def _flush(self, batch: list[StatusItem]) -> None:
        try:
            results = self._batch_writer().store(batch)
            for item, (handled, dups) in zip(batch, results, strict=True):
                item.handled, item.duplicates = handled, dups
        except BaseException as exc:  # every waiter learns of the failure: their provider retries
            for item in batch:
                item.error = exc
        for item in batch:
            item.done = True


_sinks_lock = threading.Lock()


def sink(ctx: Konsent) -> StatusSink:
    """The process's sink for this installation (kept on the context)."""
    with _sinks_lock:
        found = ctx.status_sink
        if not isinstance(found, StatusSink):
            found = ctx.status_sink = StatusSink(ctx)
        return found


def _write_states(s: Session, states: Iterable[StatusState]) -> None:
    """Write changed status columns back in one executemany statement."""
    rows = [{"mid": m.id, "st": m.status, "rs": m.status_reason, "up": m.updated_at} for m in states]
    if rows:
        table = cast(Table, Message.__table__)
        s.connection().execute(
            update(table)
            .where(table.c.id == bindparam("mid"))
            .values(status=bindparam("st"), status_reason=bindparam("rs"), updated_at=bindparam("up")),
            rows,
        )


__all__ = [
    "ChannelAccount",
    "StatusItem",
    "StatusSink",
    "StatusState",
    "account_for_route",
    "apply_status",
    "sink",
]
