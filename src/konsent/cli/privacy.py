"""`konsent ledger, keys, retention, audit, privacy, import, export`: the privacy centre (S1, S4, D1, T1)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from konsent.cli import common
from konsent.cli.common import app, console

if TYPE_CHECKING:
    from konsent.flows.context import Konsent


ledger_app = typer.Typer(help="Check the consent ledger.")
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(tenant: str, chain: str = typer.Option("consent", help="consent or audit")) -> None:
    """Recompute a tenant's hash chain; name the first broken entry (C3)."""
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.privacy.proof import verify_ledger

    ctx = common._ctx()
    with ctx.db.read() as s:
        report = verify_ledger(s, tenant_by_slug(s, tenant).id, chain)
    if report.ok:
        console.print(f"[green]ledger intact[/green]: {report.checked} entries checked")
        return
    console.print(f"[red]ledger broken at entry {report.first_broken_seq}[/red]: {report.reason}")
    raise typer.Exit(1)


keys_app = typer.Typer(help="Encryption keys (S1).")
retention_app = typer.Typer(help="The deletion concept (L1).")
audit_app = typer.Typer(help="The audit log of staff access (S4).")
privacy_app = typer.Typer(help="Privacy notice and Art. 30 record (T1, T2).")
app.add_typer(keys_app, name="keys")
app.add_typer(retention_app, name="retention")
app.add_typer(audit_app, name="audit")
app.add_typer(privacy_app, name="privacy")


def _tenant_ids(ctx: Konsent, slug: str | None) -> list[int]:
    from sqlalchemy import select

    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.store.tables import Tenant

    with ctx.db.read() as s:
        if slug:
            return [tenant_by_slug(s, slug).id]
        return list(s.scalars(select(Tenant.id).order_by(Tenant.id)).all())


@keys_app.command("rotate")
def keys_rotate(
    tenant: str = typer.Option(None, help="Only this tenant (default: all)."),
    master: bool = typer.Option(
        False,
        "--master",
        help="Re-wrap tenant keys under the current master key (old one in "
        "KONSENT_PREVIOUS_MASTER_KEYS) instead of rotating tenant keys.",
    ),
) -> None:
    """Rotate tenant keys (re-wrapping every contact key) or the master key, while traffic flows."""
    from rich.progress import Progress, TaskID

    from konsent.flows.privacy import keyrotation

    ctx = common._ctx()
    if master:
        n = keyrotation.rotate_master(ctx)
        console.print(f"[green]{n} tenant key versions re-wrapped under the current master key[/green]")
        return
    for tid in _tenant_ids(ctx, tenant):
        with Progress(console=console) as bar:
            task = bar.add_task(f"tenant {tid}", total=None)

            def show(done: int, total: int, task: TaskID = task, bar: Progress = bar) -> None:
                bar.update(task, completed=done, total=total)

            rep = keyrotation.rotate_tenant(ctx, tid, progress=show)
        console.print(
            f"tenant {tid}: key v{rep.version}, {rep.contacts} contact keys and {rep.accounts} channel "
            f"secrets re-wrapped, {rep.remaining} left for the next run"
        )


@keys_app.command("sweep")
def keys_sweep(
    min_age_minutes: int = typer.Option(60, help="Leave secrets younger than this (creations in flight)."),
) -> None:
    """Destroy key-store secrets of erased contacts that an interrupted erasure left behind (D2)."""
    from datetime import timedelta

    from konsent.flows.privacy import keyrotation

    n = keyrotation.sweep_keystore(common._ctx(), min_age=timedelta(minutes=max(0, min_age_minutes)))
    console.print(f"{n} orphaned contact secrets destroyed")


@retention_app.command("run")
def retention_run(
    tenant: str = typer.Option(None, help="Only this tenant (default: all)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
) -> None:
    """Apply the retention rules now, in batches; counts go to the audit log (L1)."""
    from konsent.flows.privacy import retention

    ctx = common._ctx()
    for tid in _tenant_ids(ctx, tenant):
        rep = retention.run_retention(ctx, tid, dry_run=dry_run, actor="system:cli")
        label = "would delete" if dry_run else "deleted"
        counts = ", ".join(f"{k} {v}" for k, v in rep.counts.items())
        console.print(f"tenant {tid}: {label}: {counts}")


@audit_app.command("verify")
def audit_verify(tenant: str = typer.Argument(None, help="Tenant slug (default: all).")) -> None:
    """Recompute the audit log's hash chain (also after pruning) and name the first broken entry (S4)."""
    from konsent.flows.privacy.retention import verify_audit

    ctx = common._ctx()
    broken = False
    for tid in _tenant_ids(ctx, tenant):
        with ctx.db.read() as s:
            rep = verify_audit(s, tid)
        if rep.ok:
            console.print(f"tenant {tid}: [green]audit log intact[/green], {rep.checked} entries checked")
        else:
            broken = True
            console.print(f"tenant {tid}: [red]broken at entry {rep.first_broken_seq}[/red]: {rep.reason}")
    if broken:
        raise typer.Exit(1)


@app.command("import")
def import_contacts(
    tenant: str,
    csv_file: Path,
    account: int = typer.Option(None, help="Channel account id (default: the tenant's first)."),
    without_evidence: str = typer.Option(
        "service_only", help="Rows without consent evidence: service_only or reject."
    ),
    topics: str = typer.Option("", help="Comma-separated topics for rows without a topics column."),
    report: Path = typer.Option(None, help="Write the per-row report as CSV here."),
) -> None:
    """Import contacts from a UTF-8 CSV; consent only with evidence per row (C7)."""
    import csv as csvmod

    from rich.progress import Progress

    from konsent.domain.errors import DomainError
    from konsent.flows.organisation.tenants import channel_accounts, tenant_by_slug
    from konsent.flows.privacy import importer

    ctx = common._ctx()
    with ctx.db.read() as s:
        t = tenant_by_slug(s, tenant)
        accs = channel_accounts(s, t.id)
        account_id = account or (accs[0].id if accs else 0)
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("importing", total=None)
            rep = importer.import_csv(
                ctx,
                t.id,
                account_id,
                csv_file.read_bytes(),
                actor="system:cli",
                without_evidence=without_evidence,
                default_topics=[x.strip() for x in topics.split(",") if x.strip()],
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except DomainError as exc:
        common.fail(f"nothing imported: {exc.as_dict().get('message')}")  # one line, exit code 2 (#12)
    console.print(
        f"consented {rep.count('consented')}, service-only {rep.count('service_only')}, "
        f"rejected {rep.count('rejected')}"
    )
    for r in rep.rows:
        if r.outcome == "rejected":
            console.print(f"  line {r.line}: {r.reason}")
    if report:
        with report.open("w", newline="") as fh:
            w = csvmod.writer(fh)
            w.writerow(["line", "outcome", "reason"])
            for r in rep.rows:
                w.writerow([r.line, r.outcome, r.reason])


@app.command("export")
def export_contact(
    tenant: str,
    contact_id: int,
    out: Path = typer.Option(None, help="Where to write the ZIP (default: export-<id>.zip)."),
) -> None:
    """Write a contact's data export (data.json + index.html in a ZIP); audited (D1)."""
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.privacy.export import staff_export

    ctx = common._ctx()
    with ctx.db.write() as s:
        blob = staff_export(ctx, s, tenant_by_slug(s, tenant).id, "system:cli", contact_id)
    target = out or Path(f"export-{contact_id}.zip")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    console.print(f"written {target} ({len(blob)} bytes)")


@privacy_app.command("notice")
def privacy_notice(
    tenant: str,
    locale: str = typer.Option("de", help="de or en"),
    art30: bool = typer.Option(False, "--art30", help="The Art. 30 record instead of the notice."),
    html_out: bool = typer.Option(False, "--html", help="HTML instead of Markdown."),
) -> None:
    """Print the privacy-notice block or the Art. 30 record, from the tenant's configuration (T1, T2)."""
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.privacy import transparency

    ctx = common._ctx()
    with ctx.db.read() as s:
        t = tenant_by_slug(s, tenant)
        md = (transparency.art30_record if art30 else transparency.privacy_notice)(ctx, s, t, locale)
    print(transparency.markdown_to_html(md) if html_out else md)


# --- end of privacy centre block ------------------------------------------------------------------


# --- broadcasts (M3, U4) --------------------------------------------------------------------------
