"""The services a konsent process works with: settings, database, keys, channel adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from konsent import crypto
from konsent.channels import adapter_class
from konsent.channels.base import ChannelAdapter
from konsent.channels.transport import Policy, Transport
from konsent.settings import Settings, get_settings
from konsent.store.db import Database, database_url, make_engine, migrate
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url


@dataclass
class Konsent:
    """One installation as seen from one process."""

    settings: Settings
    db: Database
    keys: KeyRing
    adapters: dict[str, ChannelAdapter] = field(default_factory=dict)
    # The one HTTP transport of every adapter of this process, under the operator's URL policy.
    http: Transport | None = None

    def transport(self) -> Transport:
        if self.http is None:
            self.http = Transport(Policy.from_settings(self.settings))
        return self.http

    def adapter(self, kind: str) -> ChannelAdapter:
        """The adapter instance for a channel kind, created once per process."""
        if kind not in self.adapters:
            cls = adapter_class(kind)
            self.adapters[kind] = cls(**self._adapter_deps(kind))
        return self.adapters[kind]

    def _adapter_deps(self, kind: str) -> dict[str, Any]:
        if kind == "simulator":
            from konsent.flows.simulator import StoreMailbox

            return {"mailbox_factory": lambda: StoreMailbox(self)}
        return {"transport": self.transport()}

    async def close(self) -> None:
        sink = self.__dict__.get("_status_sink")
        if sink is not None:
            sink.close()
        for adapter in self.adapters.values():
            await adapter.close()
        if self.http is not None:
            await self.http.close()
        self.keys.store.dispose()


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
    return Konsent(settings=settings, db=Database(engine), keys=keys)
