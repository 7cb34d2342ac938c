"""`konsent broadcast`: newsletters to a topic's consented audience (M3)."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import typer

from konsent.cli import common
from konsent.cli.common import app, console

if TYPE_CHECKING:
    from konsent.flows.context import Konsent


broadcast_app = typer.Typer(help="Compose, send and follow newsletters to a topic's consented audience.")
app.add_typer(broadcast_app, name="broadcast")


def _bc_tenant(ctx: Konsent, slug: str) -> int:
    from konsent.flows.organisation.tenants import tenant_by_slug

    with ctx.db.read() as s:
        return tenant_by_slug(s, slug).id


def _bc_fail(exc: Exception) -> None:
    common.fail(str(exc))  # bad input: one line, exit code 2 (#12)


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
    segment: str = typer.Option("{}", help='Segment criteria as JSON, e.g. {"replied_within_days": 30}.'),
    segment_id: int = typer.Option(None, help="A saved segment (its criteria are copied in)."),
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
    from konsent.flows.outbound import broadcast as bc

    ctx = common._ctx()
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
                segment_id=segment_id,
                channel_account_id=account,
                author="cli",
                media_url=media_url or None,
                media_kind=media_kind or None,
                media_filename=media_filename or None,
            )
            count = bc.preview_count(s, b, ctx=ctx)
    except (DomainError, ValueError) as exc:
        _bc_fail(exc)
    console.print(f"broadcast {b.id} created as draft; audience now: [bold]{count}[/bold] contacts")


@broadcast_app.command("list")
def broadcast_list(tenant: str) -> None:
    """List a tenant's broadcasts with their state and counts."""
    from rich.table import Table

    from konsent.flows.outbound import broadcast as bc
    from konsent.flows.outbound import broadcast_stats

    ctx = common._ctx()
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
    from konsent.flows.outbound import broadcast as bc

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
    from konsent.flows.outbound import broadcast as bc

    ctx = common._ctx()
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

    from konsent.flows.outbound import broadcast as bc

    ctx = common._ctx()
    tid = _bc_tenant(ctx, tenant)
    if watch:
        _bc_follow(ctx, tid, broadcast_id, False, 24 * 3600)
    console.print_json(json.dumps(bc.progress(ctx, tid, broadcast_id)["stats"]))


def _bc_change(tenant: str, broadcast_id: int, action: str) -> None:
    from konsent.domain.errors import DomainError
    from konsent.flows.outbound import broadcast as bc

    ctx = common._ctx()
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
