"""Helpers for the operations tests: a worker heartbeat, an unreachable database."""

from __future__ import annotations

from konsent.app import assemble
from konsent.flows.context import Konsent
from konsent.flows.operations import heartbeat
from konsent.store.db import Database, make_engine
from konsent.store.types import utcnow
from tests.conftest import on_postgres

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/konsent?connect_timeout=2"
UNREACHABLE_SQLITE = "sqlite:////nonexistent-konsent-dir/konsent.db"


def beat_now(ctx: Konsent, worker_id: str = "host-a:4242:1") -> None:
    """A delivery worker says it is alive now."""
    heartbeat.beat(ctx, worker_id, utcnow(), utcnow())


def unreachable(ctx: Konsent) -> Konsent:
    """The same installation with its database gone (refused connection or missing file)."""
    url = UNREACHABLE_PG if on_postgres() else UNREACHABLE_SQLITE
    return assemble(ctx.settings, Database(make_engine(url)), ctx.keys)
