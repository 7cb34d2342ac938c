"""Liveness and readiness (U6): is the database there, the schema current, the key store
reachable, and a delivery worker alive? Each check names itself; none reads personal data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select, text

from konsent.flows.context import Konsent
from konsent.flows.operations import heartbeat
from konsent.store.db import alembic_config
from konsent.store.keystore import contact_secrets
from konsent.store.types import utcnow

CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Readiness:
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self, details: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ready" if self.ready else "not_ready"}
        if details:
            out["checks"] = {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks}
        return out


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration this release ships."""
    from sqlalchemy import create_engine

    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    return ",".join(sorted(script.get_heads()))


def current_revision(engine: Engine) -> str:
    """The migration the database is at ('' when it was never migrated)."""
    with engine.connect() as conn:
        return ",".join(sorted(MigrationContext.configure(conn).get_current_heads()))


def _database(ctx: Konsent) -> list[Check]:
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return [
            Check("database", False, f"unreachable ({type(exc).__name__})"),
            Check("migrations", False, "unknown: the database is unreachable"),
        ]
    try:
        current, head = current_revision(ctx.db.engine), head_revision()
    except Exception as exc:
        return [Check("database", True, ctx.db.dialect), Check("migrations", False, type(exc).__name__)]
    mig = Check(
        "migrations",
        current == head,
        f"at {current or 'none'}"
        + ("" if current == head else f", this release needs {head}: konsent migrate"),
    )
    return [Check("database", True, ctx.db.dialect), mig]


def _keystore(ctx: Konsent) -> Check:
    try:
        with ctx.keys.store.engine.connect() as conn:
            conn.execute(select(contact_secrets.c.contact_id).limit(1)).all()
    except Exception as exc:
        return Check("keystore", False, f"unreachable ({type(exc).__name__})")
    return Check("keystore", True, ctx.keys.store.engine.dialect.name)


def _worker(ctx: Konsent, now: datetime) -> Check:
    try:
        with ctx.db.read() as s:
            found = heartbeat.beats(s)
    except Exception as exc:
        return Check("worker", False, f"unknown ({type(exc).__name__})")
    fresh = [b for b in found if b.fresh(now)]
    if fresh:
        age = min(b.age_s(now) for b in fresh)
        return Check("worker", True, f"{len(fresh)} alive, last heartbeat {age:.0f} s ago")
    if found:
        age = min(b.age_s(now) for b in found)
        return Check("worker", False, f"no heartbeat for {age:.0f} s: start `konsent worker`")
    return Check("worker", False, "no worker has reported: start `konsent worker` or the embedded one")


def readiness(ctx: Konsent, now: datetime | None = None) -> Readiness:
    """Every readiness check, in order (U6)."""
    now = now or utcnow()
    checks = _database(ctx)
    checks.append(_keystore(ctx))
    db_ok = checks[0].ok
    checks.append(
        _worker(ctx, now) if db_ok else Check("worker", False, "unknown: the database is unreachable")
    )
    return Readiness(checks)


async def readiness_async(ctx: Konsent) -> Readiness:
    """`readiness` off the event loop, answering within CHECK_TIMEOUT_S even if a database hangs."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(readiness, ctx), CHECK_TIMEOUT_S)
    except TimeoutError:
        return Readiness([Check("database", False, f"no answer within {CHECK_TIMEOUT_S:.0f} s")])
