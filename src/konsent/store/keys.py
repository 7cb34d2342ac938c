"""Key ring: unwraps tenant and contact keys, with small caches (S1).

A contact's data key is wrapped under a key derived from two halves: the tenant key (in
the main database, wrapped by the master key) and the contact's secret in the separate
key store. Erasure destroys the secret, so no copy of the main database opens that
contact's data any more (D2). Wrapped keys from before the key store (format byte 0x01)
are still read and move to the split form on the next `konsent keys rotate`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.store.keystore import KeyStore
from konsent.store.tables import Contact, TenantKey

_SPLIT = b"\x02"  # wrapped under tenant key + key-store secret


@dataclass(frozen=True)
class TenantKeys:
    version: int
    data_key: bytes
    index_key: bytes


class KeyRing:
    """All key handling of one process; the master key never leaves it."""

    def __init__(
        self,
        master_key: bytes,
        store: KeyStore,
        cache_size: int = 10_000,  # recently used contacts; a broadcast opens each key once anyway
        previous_masters: tuple[bytes, ...] = (),
    ) -> None:
        self._master = master_key
        self._derived: dict[str, bytes] = {}
        self.store = store
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
        """Give a new contact its own data key; its secret is durable in the key store before we return."""
        tk = self.tenant(session, contact.tenant_id)
        key, secret = crypto.new_key(), crypto.new_key()
        self.store.put(contact.tenant_id, contact.id, secret)
        contact.wrapped_key = wrap_contact_key(tk.data_key, secret, key, contact.id)
        contact.key_version = tk.version
        self._remember(contact.wrapped_key, key)  # sealing the first message needs no key-store read
        return key

    def contact_key(self, session: Session, contact: Contact) -> bytes:
        """The contact's data key; raises DecryptionError once the key was shredded."""
        wrapped = contact.wrapped_key
        if wrapped is None:
            raise crypto.DecryptionError("the contact's key was destroyed")
        cached = self._contacts.get(wrapped)
        if cached is not None:
            return cached
        secret = None
        if wrapped[:1] == _SPLIT:
            secret = self.store.get_many([contact.id]).get(contact.id)
            if secret is None:
                raise crypto.DecryptionError("the contact's key was destroyed")
        return self._unwrap_contact(session, contact, secret)

    def preload(self, session: Session, contacts: Iterable[Any]) -> None:
        """Fetch the key-store secrets of many contacts (ORM objects or rows) in one query."""
        todo = [
            c
            for c in contacts
            if c.wrapped_key and c.wrapped_key[:1] == _SPLIT and c.wrapped_key not in self._contacts
        ]
        if not todo:
            return
        secrets = self.store.get_many(c.id for c in todo)
        for c in todo:
            if c.id in secrets:
                try:
                    self._unwrap_contact(session, c, secrets[c.id])
                except crypto.DecryptionError:
                    continue  # contact_key() raises it again for that contact

    def _unwrap_contact(self, session: Session, contact: Contact, secret: bytes | None) -> bytes:
        wrapped = contact.wrapped_key
        assert wrapped is not None
        tk = self.tenant(session, contact.tenant_id, contact.key_version)
        aad = f"contact:{contact.id}".encode()
        if secret is None:  # wrapped before the key store existed
            key = crypto.unwrap_key(tk.data_key, wrapped, aad)
        else:
            key = crypto.unwrap_key(_kek(tk.data_key, secret), wrapped[1:], aad)
        self._remember(wrapped, key)
        return key

    def _remember(self, wrapped: bytes, key: bytes) -> None:
        with self._lock:
            self._contacts[wrapped] = key
            if len(self._contacts) > self._cache_size:
                self._contacts.popitem(last=False)

    def rewrap_contacts(self, session: Session, contacts: list[Contact], new: TenantKeys) -> int:
        """Re-wrap contact keys under a new tenant key version; old-form wrappings get a key-store secret."""
        have = self.store.get_many(c.id for c in contacts if c.wrapped_key and c.wrapped_key[:1] == _SPLIT)
        fresh: list[tuple[int, int, bytes]] = []
        done = 0
        for c in contacts:
            if c.wrapped_key is None or c.key_version == new.version:
                continue
            split = c.wrapped_key[:1] == _SPLIT
            if split and c.id not in have:
                continue  # its secret is gone: nothing left to re-wrap
            key = self._unwrap_contact(session, c, have.get(c.id))
            secret = have[c.id] if split else crypto.new_key()
            if not split:
                fresh.append((c.tenant_id, c.id, secret))
            c.wrapped_key = wrap_contact_key(new.data_key, secret, key, c.id)
            c.key_version = new.version
            done += 1
        self.store.put_many(fresh)
        return done

    def shred_contact(self, session: Session, contact: Contact) -> None:
        """Destroy the contact's key: the wrapped key now, its secret once this transaction commits (D2).

        Should the process die in between, `flows.keystore.sweep` removes the orphaned secret.
        """
        wrapped, cid = contact.wrapped_key, contact.id
        contact.wrapped_key = None
        if wrapped is not None:
            with self._lock:
                self._contacts.pop(wrapped, None)
        event.listen(session, "after_commit", lambda _s: self.store.destroy([cid]), once=True)

    def derived_key(self, label: str) -> bytes:
        """A process-wide key for `label`, derived from the master key (never stored)."""
        found = self._derived.get(label)
        if found is None:
            found = hmac.new(self._master, b"konsent:derived:" + label.encode(), hashlib.sha256).digest()
            self._derived[label] = found
        return found

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


def _kek(tenant_data_key: bytes, secret: bytes) -> bytes:
    """The contact's key-encryption key: needs both the tenant key and the key-store secret."""
    return hmac.new(tenant_data_key, b"konsent:contact-kek:" + secret, hashlib.sha256).digest()


def wrap_contact_key(tenant_data_key: bytes, secret: bytes, key: bytes, contact_id: int) -> bytes:
    """A contact key in split form; the caller stores `secret` in the key store before committing."""
    return _SPLIT + crypto.wrap_key(_kek(tenant_data_key, secret), key, f"contact:{contact_id}".encode())
