"""Backup, restore and verification of an installation (U1, D2, C3, S4).

On SQLite, `backup` copies the database and then the key store with SQLite's online backup
API, each into its own folder with a manifest, so the two can be kept in different places
(docs/PRIVACY.md, *Backups*): a database backup without the key store opens nothing an
erasure has since shredded. Each copy is then verified: integrity, every tenant's consent
ledger and audit chain, row counts. `restore` verifies a backup, copies it into place and
verifies the result against the manifest. On PostgreSQL the database is dumped with
`pg_dump`, and `verify_database` checks the restored copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, make_url, select

from konsent import __version__
from konsent.domain.errors import InvalidInput
from konsent.flows.operations.health import current_revision, head_revision
from konsent.flows.privacy.proof import verify_ledger
from konsent.settings import Settings
from konsent.store.chain import AUDIT, CONSENT
from konsent.store.db import Database, database_url, make_engine
from konsent.store.keystore import contact_secrets, keystore_url
from konsent.store.tables import Base, Contact, Tenant
from konsent.store.types import utcnow

DATABASE_DIR = "database"
KEYSTORE_DIR = "keystore"
MANIFEST = "manifest.json"
DATABASE_FILE = "konsent.db"
KEYSTORE_FILE = "keystore.db"


@dataclass
class ChainCheck:
    tenant_id: int
    chain: str
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


@dataclass
class Verification:
    """What a check of a database (and optionally its key store) found."""

    revision: str = ""
    head: str = ""
    integrity: str = "ok"
    row_counts: dict[str, int] = field(default_factory=dict)
    chains: list[ChainCheck] = field(default_factory=list)
    secrets: int | None = None
    contacts_without_secret: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class BackupReport:
    database: Path | None
    keystore: Path | None
    verification: Verification
    notes: list[str] = field(default_factory=list)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for any other database."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _online_copy(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy while konsent keeps writing (WAL readers never block)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def _forget_heartbeats(copy: Path) -> None:
    """A restored copy must not report the workers of the day it was taken as alive (U6)."""
    conn = sqlite3.connect(copy)
    try:
        with conn:
            conn.execute("DELETE FROM worker_heartbeats")
    except sqlite3.OperationalError:  # a schema from before heartbeats
        pass
    finally:
        conn.close()


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def verify_database(url: str, keystore: str | None = None) -> Verification:
    """Check a (restored or copied) database: schema revision, every tenant's ledger and audit
    chain, row counts; with a key store, how many contacts it can still open (C3, S4, D2)."""
    engine = make_engine(url)
    try:
        return _verify(engine, keystore)
    finally:
        engine.dispose()


def _verify(engine: Engine, keystore: str | None) -> Verification:
    v = Verification(head=head_revision())
    path = sqlite_path(str(engine.url))
    if path is not None:
        v.integrity = _integrity(path)
        if v.integrity != "ok":
            v.problems.append(f"SQLite integrity check: {v.integrity}")
    v.revision = current_revision(engine)
    if not v.revision:
        v.problems.append("not a konsent database (no schema revision)")
        return v
    db = Database(engine)
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            try:
                v.row_counts[table.name] = int(s.scalar(select(func.count()).select_from(table)) or 0)
            except Exception:  # a table of a newer release than the backup
                s.rollback()
        for tid in s.scalars(select(Tenant.id).order_by(Tenant.id)).all():
            for chain in (CONSENT, AUDIT):
                rep = verify_ledger(s, tid, chain)
                v.chains.append(
                    ChainCheck(tid, chain, rep.ok, rep.checked, rep.first_broken_seq, rep.reason or "")
                )
                if not rep.ok:
                    v.problems.append(
                        f"tenant {tid}: {chain} chain broken at entry {rep.first_broken_seq}: {rep.reason}"
                    )
        wrapped = set(s.scalars(select(Contact.id).where(Contact.wrapped_key.is_not(None))).all())
    if keystore:
        ks = make_engine(keystore)
        try:
            with ks.connect() as conn:
                have = {int(i) for i in conn.scalars(select(contact_secrets.c.contact_id))}
        finally:
            ks.dispose()
        v.secrets = len(have)
        v.contacts_without_secret = len(wrapped - have)
    return v


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput("{path} is missing or unreadable.", path=str(folder / MANIFEST)) from exc
    return data


def _write_manifest(folder: Path, data: dict[str, Any]) -> None:
    fd = os.open(folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)


def _empty_folder(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise InvalidInput("{path} is not empty; give each backup its own folder.", path=str(folder))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def backup(settings: Settings, target: Path, keystore_target: Path | None = None) -> BackupReport:
    """Copy database and key store into two folders and verify the copies (U1, D2)."""
    db_file = sqlite_path(database_url(settings))
    ks_file = sqlite_path(keystore_url(settings.data_dir, settings.keystore_url))
    ks_folder = keystore_target or target / KEYSTORE_DIR
    notes: list[str] = []
    now = utcnow()
    db_copy = ks_copy = None
    if db_file is not None:
        folder = target / DATABASE_DIR
        _empty_folder(folder)
        db_copy = folder / DATABASE_FILE
        _online_copy(db_file, db_copy)  # first the database: every contact in it has its secret next
        _forget_heartbeats(db_copy)
    else:
        notes.append("The database is PostgreSQL: back it up with pg_dump (docs/OPERATIONS.md, Backups).")
    if ks_file is not None:
        _empty_folder(ks_folder)
        ks_copy = ks_folder / KEYSTORE_FILE
        _online_copy(ks_file, ks_copy)
    else:
        notes.append("The key store is PostgreSQL: back it up with pg_dump, apart from the database.")
    v = Verification(head=head_revision())
    if db_copy is not None:
        v = verify_database(f"sqlite:///{db_copy}", f"sqlite:///{ks_copy}" if ks_copy else None)
        _write_manifest(db_copy.parent, _db_manifest(db_copy, v, now))
    if ks_copy is not None:
        _write_manifest(ks_folder, _ks_manifest(ks_copy, now))
    return BackupReport(db_copy, ks_copy, v, notes)


def _db_manifest(copy: Path, v: Verification, now: datetime) -> dict[str, Any]:
    return {
        "kind": "database",
        "file": copy.name,
        "sha256": _sha256(copy),
        "created_at": now.isoformat(),
        "konsent_version": __version__,
        "revision": v.revision,
        "row_counts": v.row_counts,
        "chains_ok": v.ok,
    }


def _ks_manifest(copy: Path, now: datetime) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        n = int(conn.execute("SELECT count(*) FROM contact_secrets").fetchone()[0])
    finally:
        conn.close()
    return {
        "kind": "keystore",
        "file": copy.name,
        "sha256": _sha256(copy),
        "created_at": now.isoformat(),
        "secrets": n,
    }


def _checked_file(folder: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    m = _manifest(folder)
    if m.get("kind") != kind:
        raise InvalidInput("{path} holds no {kind} backup.", path=str(folder), kind=kind)
    path = folder / str(m.get("file", ""))
    if not path.is_file() or _sha256(path) != m.get("sha256"):
        raise InvalidInput("{path} does not match its manifest (changed or incomplete).", path=str(path))
    return path, m


def restore(
    settings: Settings, source: Path, keystore_source: Path | None = None, *, force: bool = False
) -> Verification:
    """Verify a SQLite backup, copy it into place, and check the result against the manifest."""
    db_target = sqlite_path(database_url(settings))
    ks_target = sqlite_path(keystore_url(settings.data_dir, settings.keystore_url))
    if db_target is None or ks_target is None:
        raise InvalidInput("Restore is for SQLite; on PostgreSQL use pg_restore (docs/OPERATIONS.md).")
    db_copy, m = _checked_file(source / DATABASE_DIR, "database")
    ks_copy, ks_m = _checked_file(keystore_source or source / KEYSTORE_DIR, "keystore")
    before = verify_database(f"sqlite:///{db_copy}")
    if not before.ok:
        raise InvalidInput("The backup fails its check: {problems}", problems="; ".join(before.problems))
    if not force and _has_tenants(db_target):
        raise InvalidInput(
            "{path} already holds tenants; stop konsent and pass --force.", path=str(db_target)
        )
    for copy, target in ((db_copy, db_target), (ks_copy, ks_target)):
        target.parent.mkdir(parents=True, exist_ok=True)
        _restore_file(copy, target)
    after = verify_database(f"sqlite:///{db_target}", f"sqlite:///{ks_target}")
    expected = m.get("row_counts", {})
    for name, n in expected.items():
        if after.row_counts.get(name) != n:
            after.problems.append(f"{name}: {after.row_counts.get(name)} rows restored, {n} in the backup")
    if after.secrets != ks_m.get("secrets"):
        after.problems.append(
            f"key store: {after.secrets} secrets restored, {ks_m.get('secrets')} in the backup"
        )
    return after


def _has_tenants(path: Path) -> bool:
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bool(conn.execute("SELECT count(*) FROM tenants").fetchone()[0])
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _restore_file(copy: Path, target: Path) -> None:
    """Copy page by page through SQLite, so a target in WAL mode ends up consistent."""
    if not target.exists():
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        dst.close()
        src.close()
