"""The composition root: settings, database, key ring, channel adapters and services, built and injected.

Nothing imports a use case from here; the web app, the CLI, the worker and the benchmarks call `build`.
"""

from __future__ import annotations

from typing import Any

from konsent import crypto
from konsent.flows.context import Konsent
from konsent.flows.inbound.simulator import StoreMailbox
from konsent.settings import Settings, get_settings
from konsent.store.db import Database, database_url, make_engine, migrate
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url
from konsent.store.status_pg import Connections
from konsent.store.status_sqlite import Writer


def _adapter_deps(ctx: Konsent, kind: str) -> dict[str, Any]:
    if kind == "simulator":
        return {"mailbox_factory": lambda: StoreMailbox(ctx)}
    return {}


def build(settings: Settings | None = None, run_migrations: bool = True) -> Konsent:
    """Connect to the configured database, migrate it (under a lock) and load the keys."""
    settings = settings or get_settings()
    engine = make_engine(database_url(settings))
    if run_migrations:
        migrate(engine, settings.data_dir)
    master = crypto.load_master_key(
        settings.master_key.get_secret_value() if settings.master_key else None, settings.data_dir
    )
    previous = tuple(
        crypto.load_master_key(k.strip(), settings.data_dir)
        for k in (
            settings.previous_master_keys.get_secret_value() if settings.previous_master_keys else ""
        ).split(",")
        if k.strip()
    )
    store = KeyStore(keystore_url(settings.data_dir, settings.keystore_url))
    keys = KeyRing(master, store, previous_masters=previous)
    return assemble(settings, Database(engine), keys)


def assemble(settings: Settings, db: Database, keys: KeyRing) -> Konsent:
    """Wire the services of one process around a database and a key ring."""
    return Konsent(
        settings=settings,
        db=db,
        keys=keys,
        adapter_deps=_adapter_deps,
        status_writer_factory=Connections if db.is_postgres else Writer,
    )
