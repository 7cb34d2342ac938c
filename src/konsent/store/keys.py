"""Key ring: unwraps tenant and contact keys from the database, with small caches (S1)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.store.tables import Contact, TenantKey


@dataclass(frozen=True)
class TenantKeys:
    version: int
    data_key: bytes
    index_key: bytes


class KeyRing:
    """All key handling of one process; the master key never leaves it."""

    def __init__(
        self, master_key: bytes, cache_size: int = 50_000, previous_masters: tuple[bytes, ...] = ()
    ) -> None:
        self._master = master_key
        self._previous = previous_masters  # still accepted for unwrapping during a master rotation
        self._tenants: dict[tuple[int, int], TenantKeys] = {}
        self._active: dict[int, int] = {}
        self._contacts: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def create_tenant_keys(self, session: Session, tenant_id: int) -> TenantKeys:
        keys = TenantKeys(1, crypto.new_key(), crypto.new_key())
        aad = f"tenant:{tenant_id}:v1".encode()
        session.add(
            TenantKey(
                tenant_id=tenant_id,
                version=1,
                wrapped_key=crypto.wrap_key(self._master, keys.data_key, aad),
                wrapped_index_key=crypto.wrap_key(self._master, keys.index_key, aad + b":index"),
                active=True,
            )
        )
        session.flush()
        return keys

    def tenant(self, session: Session, tenant_id: int, version: int | None = None) -> TenantKeys:
        """The tenant's keys (active version unless one is named)."""
        if version is None:
            version = self._active.get(tenant_id)
        if version is not None and (tenant_id, version) in self._tenants:
            return self._tenants[(tenant_id, version)]
        q = select(TenantKey).where(TenantKey.tenant_id == tenant_id)
        q = q.where(TenantKey.version == version) if version else q.where(TenantKey.active.is_(True))
        row = session.scalars(q).one()
        aad = f"tenant:{tenant_id}:v{row.version}".encode()
        keys = TenantKeys(
            row.version,
            self._unwrap_master(row.wrapped_key, aad),
            self._unwrap_master(row.wrapped_index_key, aad + b":index"),
        )
        with self._lock:
            self._tenants[(tenant_id, row.version)] = keys
            if row.active:
                self._active[tenant_id] = row.version
        return keys

    def forget(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._active.clear()
            self._contacts.clear()

    def new_contact_key(self, session: Session, contact: Contact) -> bytes:
        """Give a new contact its own data key, wrapped by the tenant key."""
        tk = self.tenant(session, contact.tenant_id)
        key = crypto.new_key()
        contact.wrapped_key = crypto.wrap_key(tk.data_key, key, f"contact:{contact.id}".encode())
        contact.key_version = tk.version
        return key

    def contact_key(self, session: Session, contact: Contact) -> bytes:
        """The contact's data key; raises DecryptionError once the key was shredded."""
        wrapped = contact.wrapped_key
        if wrapped is None:
            raise crypto.DecryptionError("the contact's key was destroyed")
        cached = self._contacts.get(wrapped)
        if cached is not None:
            return cached
        tk = self.tenant(session, contact.tenant_id, contact.key_version)
        key = crypto.unwrap_key(tk.data_key, wrapped, f"contact:{contact.id}".encode())
        with self._lock:
            self._contacts[wrapped] = key
            if len(self._contacts) > self._cache_size:
                self._contacts.popitem(last=False)
        return key

    def drop_contact(self, wrapped: bytes) -> None:
        """Forget a shredded contact's key in this process too (D2)."""
        with self._lock:
            self._contacts.pop(wrapped, None)

    def index(self, session: Session, tenant_id: int, kind: str, value: str) -> str:
        return crypto.blind_index(self.tenant(session, tenant_id).index_key, kind, value)

    def keyed_hash(self, session: Session, tenant_id: int, value: str) -> str:
        return crypto.keyed_hash(self.tenant(session, tenant_id).index_key, value)

    def seal_for_tenant(self, session: Session, tenant_id: int, text: str, aad: str) -> bytes:
        return crypto.seal_text(self.tenant(session, tenant_id).data_key, text, aad.encode())

    def open_for_tenant(self, session: Session, tenant_id: int, blob: bytes, aad: str) -> str:
        try:
            return crypto.open_text(self.tenant(session, tenant_id).data_key, blob, aad.encode())
        except crypto.DecryptionError:
            # Sealed before a rotation (or by a process that had not seen it yet): try the other versions.
            versions = session.scalars(
                select(TenantKey.version).where(TenantKey.tenant_id == tenant_id)
            ).all()
            for v in sorted(versions, reverse=True):
                try:
                    return crypto.open_text(self.tenant(session, tenant_id, v).data_key, blob, aad.encode())
                except crypto.DecryptionError:
                    continue
            raise

    # --- rotation (S1): used by flows.keyrotation -------------------------------------------------

    def _unwrap_master(self, wrapped: bytes, aad: bytes) -> bytes:
        for master in (self._master, *self._previous):
            try:
                return crypto.unwrap_key(master, wrapped, aad)
            except crypto.DecryptionError:
                continue
        raise crypto.DecryptionError("no configured master key opens this tenant key")

    def add_tenant_version(self, session: Session, tenant_id: int) -> TenantKeys:
        """A new active data key for the tenant; the blind-index key stays, so look-ups keep working."""
        current = self.tenant(session, tenant_id)
        top = max(session.scalars(select(TenantKey.version).where(TenantKey.tenant_id == tenant_id)).all())
        keys = TenantKeys(top + 1, crypto.new_key(), current.index_key)
        aad = f"tenant:{tenant_id}:v{keys.version}".encode()
        for row in session.scalars(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all():
            row.active = False
        session.add(
            TenantKey(
                tenant_id=tenant_id,
                version=keys.version,
                wrapped_key=crypto.wrap_key(self._master, keys.data_key, aad),
                wrapped_index_key=crypto.wrap_key(self._master, keys.index_key, aad + b":index"),
                active=True,
            )
        )
        session.flush()
        with self._lock:
            self._tenants[(tenant_id, keys.version)] = keys
            self._active[tenant_id] = keys.version
        return keys

    def rewrap_under_current_master(self, row: TenantKey) -> None:
        """Re-wrap one tenant key row with the current master key (master rotation)."""
        aad = f"tenant:{row.tenant_id}:v{row.version}".encode()
        data = self._unwrap_master(row.wrapped_key, aad)
        index = self._unwrap_master(row.wrapped_index_key, aad + b":index")
        row.wrapped_key = crypto.wrap_key(self._master, data, aad)
        row.wrapped_index_key = crypto.wrap_key(self._master, index, aad + b":index")
