"""`konsent tenant / user / token`: tenants, staff users and API tokens (U4, S3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from konsent.cli import common
from konsent.cli.common import app, console

if TYPE_CHECKING:
    pass


tenant_app = typer.Typer(help="Manage tenants.")
user_app = typer.Typer(help="Manage staff users.")
token_app = typer.Typer(help="Manage API tokens.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: str,
    privacy_url: str = typer.Option("", help="The tenant's privacy policy."),
    locale: str = typer.Option("de", help="Default language of contacts."),
) -> None:
    """Create a tenant (a data controller) with its own keys."""
    from konsent.flows.organisation.consent_texts import check_locale
    from konsent.flows.organisation.tenants import create_tenant

    check_locale(locale)
    ctx = common._ctx()
    with ctx.db.write() as s:
        t = create_tenant(ctx, s, slug, name, privacy_url=privacy_url, default_locale=locale)
        console.print(f"tenant {t.slug} created (id {t.id})")
    base = ctx.settings.base_url.rstrip("/")
    typer.echo(
        "Next steps:\n"
        f"  1. konsent user create {slug} owner@example.com --role owner   (the first owner)\n"
        f"  2. sign in at {base}/admin/login (organisation: {slug}); the dashboard guides through the\n"
        "     setup: company and privacy policy, topics, consent texts, first channel, widget.\n"
        "  Or from here:\n"
        f'     konsent topic add {slug} news --name-de "Neuigkeiten" --name-en "News"\n'
        f"     konsent consent-text set {slug} --lang de --file einwilligung-de.txt\n"
        "  See docs/SETUP.md."
    )


@tenant_app.command("list")
def tenant_list() -> None:
    """List the tenants of this installation."""
    from sqlalchemy import select

    from konsent.store.tables import Tenant

    ctx = common._ctx()
    with ctx.db.read() as s:
        for t in s.scalars(select(Tenant).order_by(Tenant.id)):
            typer.echo(f"{t.slug}\t{t.name}")


@user_app.command("create")
def user_create(
    tenant: str,
    email: str,
    role: str = typer.Option("admin", help="owner, admin, agent, dpo or viewer"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a staff user."""
    from konsent.flows.organisation import staff
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
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

    from konsent.flows.organisation import staff
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.store.tables import StaffUser

    ctx = common._ctx()
    with ctx.db.write() as s:
        t = tenant_by_slug(s, tenant)
        user = s.scalars(
            select(StaffUser).where(StaffUser.tenant_id == t.id, StaffUser.email == email.lower())
        ).one_or_none()
        if user is None:
            common.fail(f"no user {email} in tenant {tenant}")
        staff.set_password(s, user, password)
    console.print("password set")


@user_app.command("invite")
def user_invite(
    tenant: str,
    email: str,
    role: str = typer.Option("agent", help="owner, admin, agent, dpo or viewer"),
    name: str = typer.Option("", help="The person's name."),
) -> None:
    """Invite a staff member: prints a one-time link (72 hours) to choose a password (S3)."""
    from konsent.flows.organisation import staff_admin
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
    with ctx.db.write() as s:
        link = staff_admin.invite(s, tenant_by_slug(s, tenant).id, "cli", "owner", email, role, name=name)
    typer.echo(f"{ctx.settings.base_url.rstrip('/')}/admin/invite/{link.token}")


@user_app.command("deactivate")
def user_deactivate(tenant: str, email: str) -> None:
    """Switch a staff member off: their sessions and API tokens end at once (S3)."""
    from sqlalchemy import select

    from konsent.domain.errors import NotFound
    from konsent.flows.organisation import staff_admin
    from konsent.flows.organisation.tenants import tenant_by_slug
    from konsent.store.tables import StaffUser

    ctx = common._ctx()
    with ctx.db.write() as s:
        t = tenant_by_slug(s, tenant)
        uid = s.scalars(
            select(StaffUser.id).where(StaffUser.tenant_id == t.id, StaffUser.email == email.strip().lower())
        ).one_or_none()
        if uid is None:
            raise NotFound(message="No such staff member.")
        revoked = staff_admin.deactivate(s, t.id, "cli", "owner", uid)
    typer.echo(f"{email} deactivated; sessions ended, {revoked} API token(s) revoked")


@token_app.command("create")
def token_create(
    tenant: str,
    name: str,
    role: str = typer.Option("admin", help="owner, admin, agent, dpo or viewer"),
    expires_days: int = typer.Option(None, help="Expire after this many days (default: never)."),
    scope: list[str] | None = typer.Option(None, help="e.g. contacts:read; repeat; none = all the role may."),
) -> None:
    """Create an API token; it is shown once and stored only as a hash."""
    from konsent.flows.organisation import api_tokens
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
    with ctx.db.write() as s:
        t = tenant_by_slug(s, tenant)
        token = api_tokens.create(s, t.id, "cli", "owner", name, role, expires_days, scopes=scope or None)
    console.print(token)


@token_app.command("list")
def token_list(tenant: str) -> None:
    """The tenant's API tokens with role, expiry, last use and state (never their values)."""
    from konsent.flows.organisation import api_tokens
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
    with ctx.db.read() as s:
        rows = api_tokens.listing(s, tenant_by_slug(s, tenant).id)

    def day(v: object) -> str:
        return v.strftime("%Y-%m-%d %H:%M UTC") if hasattr(v, "strftime") else "-"

    for r in rows:
        typer.echo(
            f"{r.id}\t{r.name}\t{r.role}\t{r.state}\texpires {day(r.expires_at) if r.expires_at else 'never'}"
            f"\tlast used {day(r.last_used_at)}"
        )
    if not rows:
        typer.echo("no API tokens")


@token_app.command("revoke")
def token_revoke(tenant: str, token_id: int) -> None:
    """Revoke a token by its id (see `konsent token list`); it stops working at once."""
    from konsent.flows.organisation import api_tokens
    from konsent.flows.organisation.tenants import tenant_by_slug

    ctx = common._ctx()
    with ctx.db.write() as s:
        api_tokens.revoke(s, tenant_by_slug(s, tenant).id, "cli", token_id)
    typer.echo(f"token {token_id} revoked")
