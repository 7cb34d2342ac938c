"""`konsent backup` / `restore` / `backup --verify`: database and key store in two folders,
verified copies, a restore that keeps every chain intact and every contact readable; on
PostgreSQL the documented pg_dump → pg_restore → verify procedure (U1, D2, C3, S4, #18)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import make_url, update
from typer.testing import CliRunner

from konsent.app import build
from konsent.cli import app
from konsent.flows import audit
from konsent.flows.contacts import address_of, identities
from konsent.settings import Settings, get_settings
from konsent.store.tables import Contact, LedgerEntry
from tests.conftest import MASTER_KEY, on_postgres
from tests.flows.support import contact_of
from tests.helpers import demo_tenant, subscribe
from tests.ops.support import beat_now

PHONE = "+4915112345678"
sqlite_only = pytest.mark.skipif(on_postgres(), reason="the SQLite backup; PostgreSQL uses pg_dump")
pg_only = pytest.mark.skipif(not on_postgres() or not shutil.which("pg_dump"), reason="needs PostgreSQL")


@pytest.fixture
def installation(ctx, demo, cli, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo tenant with a subscribed contact and audit entries; the CLI pointed at it."""
    subscribe(ctx, PHONE, ["angebote"])
    with ctx.db.write() as s:
        audit.record(s, demo_tenant(ctx).id, "user:1", "contact.view", f"contact:{contact_of(ctx, PHONE).id}")
    monkeypatch.setenv("KONSENT_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("KONSENT_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("KONSENT_MASTER_KEY", MASTER_KEY)
    return ctx


def run(cli: CliRunner, *args: str):  # type: ignore[no-untyped-def]
    return cli.invoke(app, list(args))


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def point_at(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """The CLI now serves a fresh, empty installation in `data_dir`."""
    monkeypatch.setenv("KONSENT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KONSENT_DATABASE_URL", "")
    get_settings.cache_clear()


def rehash(manifest_dir: Path) -> None:
    """What a careful forger does: make the manifest match the altered file."""
    m = json.loads((manifest_dir / "manifest.json").read_text())
    m["sha256"] = hashlib.sha256((manifest_dir / m["file"]).read_bytes()).hexdigest()
    (manifest_dir / "manifest.json").write_text(json.dumps(m))


@sqlite_only
def test_backup_writes_database_and_key_store_apart_and_restore_brings_back_a_readable_installation(
    installation, cli, tmp_path, monkeypatch
):
    ctx = installation
    contact_id = contact_of(ctx, PHONE).id
    beat_now(ctx)
    out = tmp_path / "backup"
    r = run(cli, "backup", str(out))
    assert r.exit_code == 0, r.output
    assert "backup verified" in r.output and "consent chain" in r.output
    db_copy, ks_copy = out / "database" / "konsent.db", out / "keystore" / "keystore.db"
    assert "contact_secrets" not in tables(db_copy) and "contacts" in tables(db_copy)
    assert tables(ks_copy) == {"contact_secrets"}  # never together
    assert oct(db_copy.stat().st_mode & 0o777) == "0o600"
    assert not (out / "database" / "master.key").exists() and not (out / "keystore" / "master.key").exists()
    conn = sqlite3.connect(db_copy)
    assert conn.execute("SELECT count(*) FROM worker_heartbeats").fetchone()[0] == 0  # alive then, not now
    conn.close()

    fresh = tmp_path / "restored"
    point_at(monkeypatch, fresh)
    r = run(cli, "restore", str(out))
    assert r.exit_code == 0, r.output
    assert "restored and verified" in r.output
    for args in (["ledger", "verify", "demo"], ["audit", "verify", "demo"]):
        r = run(cli, *args)
        assert r.exit_code == 0 and "intact" in r.output, r.output
    restored = build(Settings(data_dir=fresh, master_key=MASTER_KEY), run_migrations=False)
    try:
        with restored.db.read() as s:
            c = s.get(Contact, contact_id)
            assert c is not None
            ident = identities(s, c)[0]
            assert address_of(restored, s, c, ident) == PHONE  # the key-store copy opens sealed data
    finally:
        restored.db.dispose()
        restored.keys.store.dispose()


@sqlite_only
def test_key_store_copy_can_go_to_its_own_folder(installation, cli, tmp_path):
    r = run(cli, "backup", str(tmp_path / "db-backups" / "monday"), "--keystore-dir", str(tmp_path / "keys"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "keys" / "keystore.db").exists()
    assert not (tmp_path / "db-backups" / "monday" / "keystore").exists()


@sqlite_only
def test_backup_refuses_a_folder_that_is_not_empty(installation, cli, tmp_path):
    (tmp_path / "old" / "database").mkdir(parents=True)
    (tmp_path / "old" / "database" / "konsent.db").write_bytes(b"yesterday")
    r = run(cli, "backup", str(tmp_path / "old"))
    assert r.exit_code == 2 and "not empty" in r.output


@sqlite_only
def test_restore_refuses_a_backup_whose_consent_ledger_was_altered(installation, cli, tmp_path, monkeypatch):
    out = tmp_path / "backup"
    assert run(cli, "backup", str(out)).exit_code == 0
    conn = sqlite3.connect(out / "database" / "konsent.db")
    with conn:
        conn.execute("UPDATE consent_ledger SET purpose = 'newsletter:produktnews' WHERE seq = 1")
    conn.close()
    point_at(monkeypatch, tmp_path / "restored")
    r = run(cli, "restore", str(out))
    assert r.exit_code == 2 and "does not match its manifest" in r.output
    rehash(out / "database")
    r = run(cli, "restore", str(out))
    assert r.exit_code == 2 and "consent chain broken at entry 1" in r.output, r.output
    assert not (tmp_path / "restored" / "konsent.db").exists()


@sqlite_only
def test_restore_names_a_table_whose_row_count_differs_from_the_manifest(
    installation, cli, tmp_path, monkeypatch
):
    out = tmp_path / "backup"
    assert run(cli, "backup", str(out)).exit_code == 0
    conn = sqlite3.connect(out / "database" / "konsent.db")
    with conn:
        conn.execute("DELETE FROM webhook_events")
    conn.close()
    rehash(out / "database")
    point_at(monkeypatch, tmp_path / "restored")
    r = run(cli, "restore", str(out))
    assert r.exit_code == 1
    assert "webhook_events: 0 rows restored" in r.output


@sqlite_only
def test_restore_does_not_overwrite_an_installation_with_tenants_unless_forced(installation, cli, tmp_path):
    out = tmp_path / "backup"
    assert run(cli, "backup", str(out)).exit_code == 0
    r = run(cli, "restore", str(out))
    assert r.exit_code == 2 and "--force" in r.output


def test_verify_url_checks_every_chain_and_fails_on_an_altered_ledger(installation, cli):
    ctx = installation
    r = run(cli, "backup", "--verify", ctx.settings.database_url)
    assert r.exit_code == 0 and "the database is intact" in r.output, r.output
    assert "consent chain" in r.output and "audit chain" in r.output
    with ctx.db.write() as s:
        s.execute(update(LedgerEntry).where(LedgerEntry.seq == 1).values(purpose="newsletter:produktnews"))
    r = run(cli, "backup", "--verify", ctx.settings.database_url)
    assert r.exit_code == 1 and "consent chain broken at entry 1" in r.output


@pg_only
def test_backup_on_postgres_copies_only_the_key_store_and_points_to_pg_dump(installation, cli, tmp_path):
    r = run(cli, "backup", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    assert "pg_dump" in r.output
    assert (tmp_path / "b" / "keystore" / "keystore.db").exists()
    assert not (tmp_path / "b" / "database").exists()


@pg_only
def test_documented_pg_dump_and_pg_restore_procedure_gives_a_database_that_verifies(
    installation, cli, tmp_path, scratch_database
):
    """docs/OPERATIONS.md, Backups on PostgreSQL: the commands as written there, then the check."""
    ctx = installation
    url = make_url(ctx.settings.database_url)
    schema = url.query["options"].split("=", 1)[1]
    libpq = f"postgresql://{url.username}@{url.host}:{url.port or 5432}"
    dump = tmp_path / "konsent.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", f"{libpq}/{url.database}"],
        check=True,
    )
    subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={libpq}/{scratch_database}", str(dump)], check=True
    )
    restored = url.set(database=scratch_database).render_as_string(hide_password=False)
    r = run(cli, "backup", "--verify", restored)
    assert r.exit_code == 0 and "the database is intact" in r.output, r.output
    assert "consent chain" in r.output


@sqlite_only
def test_dated_backups_from_a_timer_each_get_their_own_folders(installation, cli, tmp_path):
    """docs/OPERATIONS.md's timer runs the same command daily: each run a new pair of folders."""
    args = ["backup", str(tmp_path / "db"), "--keystore-dir", str(tmp_path / "keys"), "--dated"]
    with time_machine.travel("2026-12-07T03:15:00Z", tick=False):
        assert run(cli, *args).exit_code == 0
    with time_machine.travel("2026-12-08T03:15:00Z", tick=False):
        assert run(cli, *args).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["2026-12-07T031500Z", "2026-12-08T031500Z"]
    assert (tmp_path / "keys" / "2026-12-08T031500Z" / "keystore.db").exists()
    assert not (tmp_path / "db" / "2026-12-08T031500Z" / "keystore").exists()
