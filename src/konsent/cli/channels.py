"""`konsent channels`: channel accounts at their providers (CH2)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from konsent.cli import common
from konsent.cli.common import app, console

if TYPE_CHECKING:
    pass


channels_app = typer.Typer(help="Channel accounts: register webhooks at the provider (CH2).")
app.add_typer(channels_app, name="channels")


@channels_app.command("register-webhook")
def channels_register_webhook(
    tenant: str,
    account_id: int,
    base_url: str = typer.Option(None, help="Public base URL of konsent (default: KONSENT_BASE_URL)."),
) -> None:
    """Point the provider (Telegram, 360dialog) at this account's webhook URL with its secret."""

    from konsent.domain.errors import DomainError
    from konsent.flows.organisation.channel_setup import register_webhook
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
    try:
        with ctx.db.read() as s:
            tenant_id = tenant_by_slug(s, tenant).id
        outcome = asyncio.run(register_webhook(ctx, tenant_id, "cli", account_id, base_url))
    except DomainError as exc:
        common.fail(f"not registered: {exc}")  # bad input: one line, exit code 2 (#12)
    if outcome.ok:
        console.print("[green]webhook registered[/green]")
        return
    console.print(f"[red]not registered ({outcome.problem})[/red]: {outcome.detail}")
    raise typer.Exit(1)


# --- privacy centre: keys, retention, audit, import, export (S1, L1, S4, C7, D1) ------------------
