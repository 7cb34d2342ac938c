"""The services a konsent process works with, as one injected object (built by `konsent.app.build`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from konsent.channels import adapter_class
from konsent.channels.base import ChannelAdapter
from konsent.settings import Settings
from konsent.store.db import Database
from konsent.store.keys import KeyRing
from konsent.store.types import utcnow

__all__ = ["Konsent", "utcnow"]


def _no_deps(ctx: Konsent, kind: str) -> dict[str, Any]:
    return {}


@dataclass
class Konsent:
    """One installation as seen from one process: settings, database, keys and the services built on them.

    Every service is a declared field, set by the composition root (`konsent.app.build`) or made once
    on first use; nothing is stashed on the instance behind the type checker's back.
    """

    settings: Settings
    db: Database
    keys: KeyRing
    adapters: dict[str, ChannelAdapter] = field(default_factory=dict)
    # keyword arguments for a channel adapter's constructor (the simulator's mailbox), by kind
    adapter_deps: Callable[[Konsent, str], dict[str, Any]] = _no_deps
    # the status sink's group-commit writer for this database (`store(batch)`, `close()`)
    status_writer_factory: Callable[[Any], Any] | None = None
    # the status sink and its caches of account configs and known webhook routes (flows.inbound)
    status_sink: Any = None
    account_configs: dict[int, Any] = field(default_factory=dict)
    known_routes: dict[str, Any] = field(default_factory=dict)

    def adapter(self, kind: str) -> ChannelAdapter:
        """The adapter instance for a channel kind, created once per process."""
        if kind not in self.adapters:
            cls = adapter_class(kind)
            self.adapters[kind] = cls(**self.adapter_deps(self, kind))
        return self.adapters[kind]

    async def close(self) -> None:
        if self.status_sink is not None:
            self.status_sink.close()
        for adapter in self.adapters.values():
            await adapter.close()
        self.keys.store.dispose()
