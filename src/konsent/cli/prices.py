"""`konsent prices`: the operator's price table, budgets and what messages cost (CH6, #16 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from konsent.cli import common
from konsent.cli.common import app, console

prices_app = typer.Typer(help="Import per-message prices, set budgets, show what messages cost.")
app.add_typer(prices_app, name="prices")


def _date(text: str) -> datetime:
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d")  # a calendar day, taken as UTC
    except ValueError:
        common.fail("--valid-from must be a date such as 2026-10-01")
    return day.replace(tzinfo=UTC)


@prices_app.command("import")
def prices_import(
    file: Path = typer.Argument(..., help="CSV with the columns country, category, price (per message)."),
    valid_from: str = typer.Option(..., "--valid-from", help="First day (UTC) the prices apply, YYYY-MM-DD."),
    tenant: str = typer.Option("", help="Only for this tenant (slug); default: every tenant."),
    currency: str = typer.Option("EUR", help="Currency of the prices (ISO 4217)."),
) -> None:
    """Import a new version of the price table; earlier versions stay for the months they covered."""
    from sqlalchemy import select

    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.outbound import costs
    from konsent.i18n import t
    from konsent.store.tables import Tenant

    start = _date(valid_from)
    text = file.read_text(encoding="utf-8-sig")
    ctx = common._ctx()
    with ctx.db.write() as s:
        everyone = select(Tenant.id).order_by(Tenant.id)
        ids = [tenant_by_slug(s, tenant).id] if tenant else list(s.scalars(everyone))
        try:
            for tid in ids:
                pl = costs.import_prices(
                    s, tid, text, start, currency=currency, source=file.name, actor="cli:prices import"
                )
        except costs.PriceTableInvalid as exc:
            for p in exc.problems:
                typer.echo(t("en", p.reason, **dict(p.params)), err=True)
            common.fail(f"{len(exc.problems)} problem(s) in {file.name}: nothing was imported")
        rows = len(costs.table_of(s, ids[-1], pl.id)) if ids else 0
    console.print(f"imported {rows} prices valid from {start.date()} for {len(ids)} tenant(s)")


@prices_app.command("list")
def prices_list(tenant: str) -> None:
    """The imported versions of a tenant's price table, the one in force marked."""
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.outbound import costs

    ctx = common._ctx()
    with ctx.db.read() as s:
        lists = costs.price_lists(s, tenant_by_slug(s, tenant).id)
    for pl in lists:
        mark = "*" if pl.current else " "
        since = pl.valid_from.date()
        console.print(f"{mark} #{pl.id} from {since} {pl.currency} {pl.rows} prices ({pl.source})")


@prices_app.command("budget")
def prices_budget(
    tenant: str,
    monthly: str = typer.Option(..., help="The tenant's monthly cap, e.g. 500 or 99.50; empty: no cap."),
) -> None:
    """Set the tenant's monthly budget: broadcasts pause before it would be exceeded."""
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.outbound import budget

    amount = budget.parse_amount(monthly)
    ctx = common._ctx()
    with ctx.db.write() as s:
        budget.set_tenant_budget(s, tenant_by_slug(s, tenant).id, amount, actor="cli:prices budget")
    console.print("monthly budget cleared" if amount is None else f"monthly budget set to {monthly}")


@prices_app.command("costs")
def prices_costs(tenant: str) -> None:
    """What went out per month, purpose and channel, priced at the table of its day."""
    from konsent.domain.costs import money
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.flows.outbound import costs

    ctx = common._ctx()
    with ctx.db.read() as s:
        lines, currency = costs.monthly_costs(s, tenant_by_slug(s, tenant).id)
    for ln in lines:
        console.print(
            f"{ln.month} {ln.purpose:<30} {ln.channel:<10} {ln.account:<20} "
            f"{ln.messages:>7} msgs {ln.billable:>7} billable {money(ln.total_micros, currency):>14}"
        )
