"""`konsent` command line: serve, worker, migrate, demo, tenant, user, token, ledger (U4)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
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
    console.print(f"Try it: {base}/demo (sign up) and {base}/simulator (the contact's phone).")
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


if __name__ == "__main__":
    app()
