"""`konsent backup / restore / doctor`: operating an installation (#18, U1, U6, D2); the work is in
flows.operations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from sqlalchemy import make_url

from konsent.cli import common
from konsent.cli.common import app, console
from konsent.flows.operations import backup as ops_backup
from konsent.flows.operations.doctor import diagnose
from konsent.settings import get_settings
from konsent.store.types import utcnow

if TYPE_CHECKING:
    from konsent.flows.context import Konsent


def _show(console: Console, v: ops_backup.Verification) -> None:
    for c in v.chains:
        mark = "[green]✓[/green]" if c.ok else "[red]✗[/red]"
        console.print(f"  {mark} tenant {c.tenant_id} {c.chain} chain: {c.checked} entries")
    counts = ", ".join(f"{k} {n}" for k, n in sorted(v.row_counts.items()) if n)
    console.print(f"  schema {v.revision or 'none'} (this release: {v.head}); rows: {counts or 'none'}")
    if v.secrets is not None:
        console.print(f"  key store: {v.secrets} contact secrets")
    if v.contacts_without_secret:
        console.print(
            f"  {v.contacts_without_secret} contacts have no secret in this key store "
            "(erased after the database copy, or a key store from another time)"
        )
    if v.revision and v.revision != v.head:
        console.print("  run `konsent migrate` to bring it to this release")
    for p in v.problems:
        console.print(f"  [red]✗ {p}[/red]")


def run_backup(
    console: Console,
    target: Path | None,
    keystore_dir: Path | None,
    verify: str | None,
    keystore_url: str | None,
) -> None:
    if verify:
        v = ops_backup.verify_database(verify, keystore_url)
        console.print(f"checked {make_url(verify).render_as_string(hide_password=True)}")
        _show(console, v)
        if not v.ok:
            raise typer.Exit(1)
        console.print("[green]the database is intact[/green]")
        return
    if target is None:
        common.fail("name an empty folder for the backup, or --verify URL")
    rep = ops_backup.backup(get_settings(), target, keystore_dir)  # bad input: one line, exit 2
    for note in rep.notes:
        console.print(note)
    if rep.database:
        console.print(f"database copied to {rep.database}")
    if rep.keystore:
        console.print(f"key store copied to {rep.keystore} (keep it apart from the database copy)")
    if rep.database:
        _show(console, rep.verification)
        if not rep.verification.ok:
            console.print("[red]the copy fails its check[/red]")
            raise typer.Exit(1)
        console.print("[green]backup verified[/green]")


def run_restore(console: Console, source: Path, keystore_dir: Path | None, force: bool) -> None:
    v = ops_backup.restore(get_settings(), source, keystore_dir, force=force)  # refused: one line, exit 2
    _show(console, v)
    if not v.ok:
        console.print("[red]the restored database does not match the backup[/red]")
        raise typer.Exit(1)
    console.print("[green]restored and verified[/green]; start konsent (it migrates on start)")


def run_doctor(console: Console, ctx: Konsent) -> None:
    d = diagnose(ctx)
    for line in d.passed:
        console.print(f"[green]✓[/green] {line}")
    for f in d.findings:
        console.print(f"[red]✗ {f.problem}[/red]\n  fix: {f.fix}  [dim]({f.code})[/dim]")
    if not d.ok:
        console.print(f"[red]{len(d.findings)} finding(s)[/red]")
        raise typer.Exit(1)
    console.print("[green]nothing to fix[/green]")


@app.command()
def backup(
    target: Path | None = typer.Argument(None, help="Empty folder for the backup (SQLite)."),
    keystore_dir: Path | None = typer.Option(
        None, help="Put the key-store copy here instead of TARGET/keystore (keep it apart)."
    ),
    verify: str = typer.Option(
        None, "--verify", help="Check a restored database at this URL instead (e.g. after pg_restore)."
    ),
    keystore_url: str = typer.Option(None, help="With --verify: the key store that belongs to it."),
    dated: bool = typer.Option(
        False, "--dated", help="Write into a new subfolder named by the UTC time (for timers)."
    ),
) -> None:
    """Back up database and key store into two folders and verify the copies (U1, D2)."""
    if dated and target is not None:
        stamp = utcnow().strftime("%Y-%m-%dT%H%M%SZ")
        target, keystore_dir = target / stamp, keystore_dir / stamp if keystore_dir else None
    run_backup(console, target, keystore_dir, verify, keystore_url)


@app.command()
def restore(
    source: Path = typer.Argument(..., help="Folder `konsent backup` wrote."),
    keystore_dir: Path = typer.Option(None, help="The key-store copy, if not in SOURCE/keystore."),
    force: bool = typer.Option(False, "--force", help="Overwrite a database that holds tenants."),
) -> None:
    """Restore a SQLite backup (stop konsent first), then verify chains and row counts (U1)."""
    run_restore(console, source, keystore_dir, force)


@app.command()
def doctor() -> None:
    """Check this installation's production configuration; exit 0 only when nothing is wrong (U6)."""
    run_doctor(console, common._ctx(migrate=False))
