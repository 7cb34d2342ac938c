"""`konsent migrate / serve / demo / worker`: run konsent (U1, U4)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

import typer

from konsent import __version__
from konsent.cli import common
from konsent.cli.common import app, console
from konsent.logs import STARTUP_FORMAT

if TYPE_CHECKING:
    from konsent.flows.context import Konsent


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (run once per release on PostgreSQL)."""
    common._ctx(migrate=True)
    console.print("[green]Database is up to date.[/green]")


def _serve(ctx: Konsent, host: str, port: int, worker: bool) -> None:
    import uvicorn

    from konsent.delivery.worker import run_in_thread
    from konsent.web.app import create_app

    stop = None
    if worker:
        _, stop = run_in_thread(ctx)
    fmt = ctx.settings.log_format
    logging.getLogger("konsent").info(STARTUP_FORMAT, __version__, "http", host, port, worker, fmt)
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
    ctx = common._ctx(host=host, port=port, links=True)
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

    ctx = common._ctx(host=host, port=port, links=True)
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
def worker(
    processes: int = typer.Option(1, help="Worker processes to start."),
    metrics_port: int = typer.Option(
        0, help="Serve this worker's /metrics on 127.0.0.1 at this port (the next ones for more processes)."
    ),
) -> None:
    """Run delivery workers without the web application (PostgreSQL scale-out)."""
    if processes > 1:
        import multiprocessing

        procs = [
            multiprocessing.Process(target=_run_worker, args=(metrics_port + i if metrics_port else 0,))
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return
    _run_worker(metrics_port)


def _run_worker(metrics_port: int = 0) -> None:
    from konsent.delivery.worker import Worker

    ctx = common._ctx(migrate=False)
    if metrics_port:
        from prometheus_client import start_http_server

        from konsent.metrics import REGISTRY

        start_http_server(metrics_port, addr="127.0.0.1", registry=REGISTRY)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"worker started (pid {os.getpid()})")
    asyncio.run(Worker(ctx).run(stop))
