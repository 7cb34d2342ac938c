"""`konsent` command line: serve, worker, migrate, demo, tenant, user, token, ledger (U4)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from konsent.settings import get_settings

if TYPE_CHECKING:
    from konsent.flows.context import Konsent

app = typer.Typer(
    help="konsent: messenger conversations and newsletters with a provable legal basis.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Manage tenants.")
user_app = typer.Typer(help="Manage staff users.")
token_app = typer.Typer(help="Manage API tokens.")
ledger_app = typer.Typer(help="Check the consent ledger.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(ledger_app, name="ledger")
console = Console()


def _ctx(migrate: bool = True) -> Konsent:
    from konsent.flows.context import build
    from konsent.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level)
    return build(settings, run_migrations=migrate)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (run once per release on PostgreSQL)."""
    _ctx(migrate=True)
    console.print("[green]Database is up to date.[/green]")


def _serve(ctx: Konsent, host: str, port: int, worker: bool) -> None:
    import uvicorn

    from konsent.delivery.worker import run_in_thread
    from konsent.web.app import create_app

    stop = None
    if worker:
        _, stop = run_in_thread(ctx)
    try:
        uvicorn.run(create_app(ctx), host=host, port=port, log_config=None, access_log=False)
    finally:
        if stop is not None:
            stop.set()


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (KONSENT_HOST)."),
    port: int = typer.Option(None, help="Port (KONSENT_PORT)."),
    worker: bool = typer.Option(
        None, help="Run a delivery worker in this process (KONSENT_EMBEDDED_WORKER)."
    ),
) -> None:
    """Run the web application, with an embedded delivery worker by default."""
    ctx = _ctx()
    s = ctx.settings
    _serve(ctx, host or s.host, port or s.port, s.embedded_worker if worker is None else worker)


@app.command()
def demo(
    host: str = typer.Option(None, help="Interface to bind."),
    port: int = typer.Option(None, help="Port."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Only create the demo tenant."),
) -> None:
    """Create the demo tenant "Demo GmbH" (once) and serve konsent with the simulator channel."""
    from konsent.flows.demo import seed_demo

    ctx = _ctx()
    ctx.settings.simulator_enabled = True  # the demo is played on the simulator phone (CH1)
    seed = seed_demo(ctx)
    base = ctx.settings.base_url.rstrip("/")
    if seed.created:
        console.print('[bold green]Demo tenant "Demo GmbH" created.[/bold green]')
        console.print(
            f"Admin login: {base}/admin/login  tenant [bold]demo[/bold]  user [bold]{seed.admin_email}[/bold]"
        )
        console.print(f"One-time password (shown only now): [bold yellow]{seed.admin_password}[/bold yellow]")
    else:
        console.print(
            f"Demo tenant exists. Admin: {base}/admin/login ({seed.admin_email}); "
            "reset the password with `konsent user password`."
        )
    console.print(f"Try it: {base}/demo to sign up, then {base}/simulator to act as the contact.")
    if not no_serve:
        s = ctx.settings
        _serve(ctx, host or s.host, port or s.port, s.embedded_worker)


@app.command()
def worker(processes: int = typer.Option(1, help="Worker processes to start.")) -> None:
    """Run delivery workers without the web application (PostgreSQL scale-out)."""
    if processes > 1:
        import multiprocessing

        procs = [multiprocessing.Process(target=_run_worker) for _ in range(processes)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return
    _run_worker()


def _run_worker() -> None:
    from konsent.delivery.worker import Worker

    ctx = _ctx(migrate=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"worker started (pid {os.getpid()})")
    asyncio.run(Worker(ctx).run(stop))


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: str,
    privacy_url: str = typer.Option("", help="The tenant's privacy policy."),
    locale: str = typer.Option("de", help="Default language of contacts."),
) -> None:
    """Create a tenant (a data controller) with its own keys."""
    from konsent.flows.tenants import create_tenant

    ctx = _ctx()
    with ctx.db.write() as s:
        t = create_tenant(ctx, s, slug, name, privacy_url=privacy_url, default_locale=locale)
        console.print(f"tenant {t.slug} created (id {t.id})")


@user_app.command("create")
def user_create(
    tenant: str,
    email: str,
    role: str = typer.Option("admin", help="owner, admin, agent, dpo or viewer"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a staff user."""
    from konsent.flows import staff
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
    with ctx.db.write() as s:
        staff.create_user(s, tenant_by_slug(s, tenant), email, password, role)
    console.print(f"user {email} created")


@user_app.command("password")
def user_password(
    tenant: str,
    email: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Set a staff user's password."""
    from sqlalchemy import select

    from konsent.flows import staff
    from konsent.flows.tenants import tenant_by_slug
    from konsent.store.tables import StaffUser

    ctx = _ctx()
    with ctx.db.write() as s:
        t = tenant_by_slug(s, tenant)
        user = s.scalars(
            select(StaffUser).where(StaffUser.tenant_id == t.id, StaffUser.email == email.lower())
        ).one()
        staff.set_password(s, user, password)
    console.print("password set")


@token_app.command("create")
def token_create(tenant: str, name: str, role: str = typer.Option("admin")) -> None:
    """Create an API token; it is shown once and stored only as a hash."""
    from konsent.flows import staff
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
    with ctx.db.write() as s:
        token = staff.create_api_token(s, tenant_by_slug(s, tenant), name, role)
    console.print(token)


@ledger_app.command("verify")
def ledger_verify(tenant: str, chain: str = typer.Option("consent", help="consent or audit")) -> None:
    """Recompute a tenant's hash chain; name the first broken entry (C3)."""
    from konsent.flows.proof import verify_ledger
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
    with ctx.db.read() as s:
        report = verify_ledger(s, tenant_by_slug(s, tenant).id, chain)
    if report.ok:
        console.print(f"[green]ledger intact[/green]: {report.checked} entries checked")
        return
    console.print(f"[red]ledger broken at entry {report.first_broken_seq}[/red]: {report.reason}")
    raise typer.Exit(1)


channels_app = typer.Typer(help="Channel accounts: register webhooks at the provider (CH2).")
app.add_typer(channels_app, name="channels")


@channels_app.command("register-webhook")
def channels_register_webhook(
    tenant: str,
    account_id: int,
    base_url: str = typer.Option(None, help="Public base URL of konsent (default: KONSENT_BASE_URL)."),
) -> None:
    """Point the provider (Telegram, 360dialog) at this account's webhook URL with its secret."""
    import asyncio

    from konsent.domain.errors import DomainError
    from konsent.flows.channel_setup import register_webhook
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
    try:
        with ctx.db.read() as s:
            tenant_id = tenant_by_slug(s, tenant).id
        outcome = asyncio.run(register_webhook(ctx, tenant_id, "cli", account_id, base_url))
    except DomainError as exc:
        console.print(f"[red]not registered[/red]: {exc}")
        raise typer.Exit(1) from exc
    if outcome.ok:
        console.print("[green]webhook registered[/green]")
        return
    console.print(f"[red]not registered ({outcome.problem})[/red]: {outcome.detail}")
    raise typer.Exit(1)


# --- privacy centre: keys, retention, audit, import, export (S1, L1, S4, C7, D1) ------------------

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

    from konsent.flows.tenants import tenant_by_slug
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

    from konsent.flows import keyrotation

    ctx = _ctx()
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

    from konsent.flows import keyrotation

    n = keyrotation.sweep_keystore(_ctx(), min_age=timedelta(minutes=max(0, min_age_minutes)))
    console.print(f"{n} orphaned contact secrets destroyed")


@retention_app.command("run")
def retention_run(
    tenant: str = typer.Option(None, help="Only this tenant (default: all)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
) -> None:
    """Apply the retention rules now, in batches; counts go to the audit log (L1)."""
    from konsent.flows import retention

    ctx = _ctx()
    for tid in _tenant_ids(ctx, tenant):
        rep = retention.run_retention(ctx, tid, dry_run=dry_run, actor="system:cli")
        label = "would delete" if dry_run else "deleted"
        counts = ", ".join(f"{k} {v}" for k, v in rep.counts.items())
        console.print(f"tenant {tid}: {label}: {counts}")


@audit_app.command("verify")
def audit_verify(tenant: str = typer.Argument(None, help="Tenant slug (default: all).")) -> None:
    """Recompute the audit log's hash chain (also after pruning) and name the first broken entry (S4)."""
    from konsent.flows.retention import verify_audit

    ctx = _ctx()
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
    from konsent.flows import importer
    from konsent.flows.tenants import channel_accounts, tenant_by_slug

    ctx = _ctx()
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
        console.print(f"[red]nothing imported[/red]: {exc.as_dict().get('message')}")
        raise typer.Exit(1) from exc
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
    from konsent.flows.privacy_export import staff_export
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
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
    from konsent.flows import transparency
    from konsent.flows.tenants import tenant_by_slug

    ctx = _ctx()
    with ctx.db.read() as s:
        t = tenant_by_slug(s, tenant)
        md = (transparency.art30_record if art30 else transparency.privacy_notice)(ctx, s, t, locale)
    print(transparency.markdown_to_html(md) if html_out else md)


# --- end of privacy centre block ------------------------------------------------------------------


# --- broadcasts (M3, U4) --------------------------------------------------------------------------

broadcast_app = typer.Typer(help="Compose, send and follow newsletters to a topic's consented audience.")
app.add_typer(broadcast_app, name="broadcast")


def _bc_tenant(ctx: Konsent, slug: str) -> int:
    from konsent.flows.tenants import tenant_by_slug

    with ctx.db.read() as s:
        return tenant_by_slug(s, slug).id


def _bc_fail(exc: Exception) -> None:
    console.print(f"[red]{exc}[/red]")
    raise typer.Exit(1)


@broadcast_app.command("create")
def broadcast_create(
    tenant: str,
    name: str = typer.Option(..., help="Internal name of the broadcast."),
    topic: str = typer.Option(..., help="Topic slug: the audience is its consented contacts."),
    text: str = typer.Option("", help="Free text; {name} and {first_name|fallback} are filled in."),
    template: str = typer.Option("", help="Approved template name (used outside the 24-hour window)."),
    template_language: str = typer.Option("", help="Template language code, e.g. de."),
    param: list[str] = typer.Option([], help="Template variable, repeatable; may use {first_name}."),
    min_text_version: int = typer.Option(
        0, help="Only contacts who consented to this text version or later."
    ),
    segment: str = typer.Option("{}", help='Segment filters as JSON, e.g. {"locale": "de"}.'),
    account: int = typer.Option(
        None, help="Send from this channel account (default: where each subscribed)."
    ),
    media_url: str = typer.Option("", help="https link to an image, document, video or audio file."),
    media_kind: str = typer.Option("", help="image, document, video or audio; the text is its caption."),
    media_filename: str = typer.Option("", help="File name the recipient sees (documents only)."),
) -> None:
    """Create a draft broadcast and show how many contacts it would reach now."""
    import json

    from konsent.domain.errors import DomainError
    from konsent.flows import broadcast as bc

    ctx = _ctx()
    tid = _bc_tenant(ctx, tenant)
    try:
        with ctx.db.write() as s:
            b = bc.create_broadcast(
                ctx,
                s,
                tid,
                name=name,
                topic=topic,
                text=text,
                template=template or None,
                template_language=template_language or None,
                template_params=list(param),
                min_text_version=min_text_version,
                segment=json.loads(segment),
                channel_account_id=account,
                author="cli",
                media_url=media_url or None,
                media_kind=media_kind or None,
                media_filename=media_filename or None,
            )
            count = bc.preview_count(s, b)
    except (DomainError, ValueError) as exc:
        _bc_fail(exc)
    console.print(f"broadcast {b.id} created as draft; audience now: [bold]{count}[/bold] contacts")


@broadcast_app.command("list")
def broadcast_list(tenant: str) -> None:
    """List a tenant's broadcasts with their state and counts."""
    from rich.table import Table

    from konsent.flows import broadcast as bc
    from konsent.flows import broadcast_stats

    ctx = _ctx()
    tid = _bc_tenant(ctx, tenant)
    table = Table("id", "name", "topic", "state", "queued", "sent", "delivered", "read", "failed", "opt-outs")
    with ctx.db.read() as s:
        for b in bc.list_broadcasts(s, tid):
            st = broadcast_stats.stats(s, b)
            table.add_row(
                str(b.id),
                b.name,
                b.purpose.split(":", 1)[1],
                b.state,
                str(st.queued),
                str(st.sent),
                str(st.delivered),
                str(st.read),
                str(st.failed),
                str(st.opt_outs),
            )
    console.print(table)


def _bc_follow(ctx: Konsent, tid: int, bid: int, work: bool, timeout: float) -> None:
    """A rich progress bar over queuing and delivery; with `work`, an in-process worker sends."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from konsent.delivery.worker import Worker
    from konsent.flows import broadcast as bc

    stop = threading.Event()
    thread = None
    if work:
        thread = threading.Thread(target=lambda: asyncio.run(Worker(ctx).run(stop)), daemon=True)
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("queuing", total=None)
            while time.monotonic() < deadline:
                p = bc.progress(ctx, tid, bid)
                st = p["stats"]
                desc = (
                    f"{p['state']}: sent {st['sent']} · delivered {st['delivered']} · failed {st['failed']}"
                    f" · skipped {st['skipped']}"
                )
                bar.update(task, description=desc, completed=p["handled"], total=p["total"] or None)
                if p["state"] in ("done", "cancelled", "paused", "draft"):
                    break
                time.sleep(0.5)
    finally:
        stop.set()
        if thread is not None:
            thread.join(30)


@broadcast_app.command("send")
def broadcast_send(
    tenant: str,
    broadcast_id: int,
    at: str = typer.Option("", help="ISO time with zone to schedule for later (default: now)."),
    work: bool = typer.Option(False, "--work", help="Also run a worker in this process until it is done."),
    follow: bool = typer.Option(True, help="Show a progress bar until done."),
    timeout: float = typer.Option(3600, help="Stop following after this many seconds."),
) -> None:
    """Send a draft now (queuing with a progress bar) or schedule it."""
    from datetime import datetime

    from konsent.domain.errors import DomainError
    from konsent.flows import broadcast as bc

    ctx = _ctx()
    tid = _bc_tenant(ctx, tenant)
    try:
        when = datetime.fromisoformat(at) if at else None
        b = bc.act(ctx, tid, broadcast_id, "send", "cli", when)
    except (DomainError, ValueError) as exc:
        _bc_fail(exc)
    if b.state == "scheduled":
        console.print(f"broadcast {b.id} scheduled for {b.scheduled_at}")
        return
    from rich.progress import Progress

    with Progress(console=console) as bar:
        task = bar.add_task("queuing", total=None)
        while bc.queue_batch(ctx, tid, broadcast_id):
            with ctx.db.read() as s:
                bar.update(task, completed=bc.get_broadcast(s, tid, broadcast_id).audience)
    if follow:
        _bc_follow(ctx, tid, broadcast_id, work, timeout)


@broadcast_app.command("status")
def broadcast_status(
    tenant: str,
    broadcast_id: int,
    watch: bool = typer.Option(False, "--watch", help="Follow with a progress bar until done."),
) -> None:
    """Show a broadcast's funnel: queued, sent, delivered, read, failed, skipped, opt-outs."""
    import json

    from konsent.flows import broadcast as bc

    ctx = _ctx()
    tid = _bc_tenant(ctx, tenant)
    if watch:
        _bc_follow(ctx, tid, broadcast_id, False, 24 * 3600)
    console.print_json(json.dumps(bc.progress(ctx, tid, broadcast_id)["stats"]))


def _bc_change(tenant: str, broadcast_id: int, action: str) -> None:
    from konsent.domain.errors import DomainError
    from konsent.flows import broadcast as bc

    ctx = _ctx()
    try:
        b = bc.act(ctx, _bc_tenant(ctx, tenant), broadcast_id, action, "cli")
    except DomainError as exc:
        _bc_fail(exc)
    console.print(f"broadcast {b.id}: {b.state}")


@broadcast_app.command("pause")
def broadcast_pause(tenant: str, broadcast_id: int) -> None:
    """Pause: workers hand nothing more of it to the provider (survives restarts)."""
    _bc_change(tenant, broadcast_id, "pause")


@broadcast_app.command("resume")
def broadcast_resume(tenant: str, broadcast_id: int) -> None:
    """Resume a paused broadcast where it stopped."""
    _bc_change(tenant, broadcast_id, "resume")


@broadcast_app.command("cancel")
def broadcast_cancel(tenant: str, broadcast_id: int) -> None:
    """Cancel every message not yet handed to the provider."""
    _bc_change(tenant, broadcast_id, "cancel")


# --- end of broadcasts block ----------------------------------------------------------------------


if __name__ == "__main__":
    app()
