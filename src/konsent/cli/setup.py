"""`konsent topic / consent-text`: a company's newsletter topics and versioned consent texts (U5, C6, #12)."""

from __future__ import annotations

from pathlib import Path

import typer

from konsent.cli import common
from konsent.cli.common import app, console

# --- topics and consent texts (U5, C6, issue #12) ------------------------------------------------

topic_app = typer.Typer(help="Newsletter topics of a tenant.")
consent_text_app = typer.Typer(help="Consent texts per language, versioned (C6).")
app.add_typer(topic_app, name="topic")
app.add_typer(consent_text_app, name="consent-text")


@topic_app.command("add")
def topic_add(
    tenant: str,
    slug: str,
    name_de: str = typer.Option("", "--name-de", help="German name."),
    name_en: str = typer.Option("", "--name-en", help="English name."),
    description_de: str = typer.Option("", "--description-de", help="German description."),
    description_en: str = typer.Option("", "--description-en", help="English description."),
) -> None:
    """Add a topic; contacts consent to it as purpose newsletter:<slug>."""
    from konsent.flows.organisation import tenants, topics

    ctx = common._ctx()
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, tenant)
        tp = topics.create_topic(
            s, t, slug, {"de": name_de, "en": name_en}, {"de": description_de, "en": description_en},
            actor="system:cli",
        )  # fmt: skip
        console.print(f"topic {tp.slug} added (purpose newsletter:{tp.slug})", markup=False)


@topic_app.command("list")
def topic_list(tenant: str) -> None:
    """List topics in their order; archived ones last."""
    from konsent.flows.organisation import tenants, topics

    ctx = common._ctx()
    with ctx.db.read() as s:
        t = tenants.tenant_by_slug(s, tenant)
        for tp in topics.all_topics(s, t.id):
            state = "active" if tp.active else "archived"
            de, en = tp.names.get("de", ""), tp.names.get("en", "")
            typer.echo(f"{tp.slug}\t{state}\t{de}\t{en}")


@topic_app.command("rename")
def topic_rename(
    tenant: str,
    slug: str,
    name_de: str = typer.Option(None, "--name-de"),
    name_en: str = typer.Option(None, "--name-en"),
    description_de: str = typer.Option(None, "--description-de"),
    description_en: str = typer.Option(None, "--description-en"),
) -> None:
    """Change a topic's names or descriptions; the slug and every consent stay."""
    from konsent.flows.organisation import tenants, topics

    names = {k: v for k, v in (("de", name_de), ("en", name_en)) if v is not None}
    descs = {k: v for k, v in (("de", description_de), ("en", description_en)) if v is not None}
    ctx = common._ctx()
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, tenant)
        topics.update_topic(
            s, t.id, slug, names=names or None, descriptions=descs or None, actor="system:cli"
        )
    console.print(f"topic {slug} updated", markup=False)


@topic_app.command("archive")
def topic_archive(tenant: str, slug: str) -> None:
    """Archive a topic: gone from the widget and new broadcasts; consents and history stay."""
    from konsent.flows.organisation import tenants, topics

    ctx = common._ctx()
    with ctx.db.write() as s:
        topics.archive_topic(s, tenants.tenant_by_slug(s, tenant).id, slug, actor="system:cli")
    console.print(f"topic {slug} archived", markup=False)


@topic_app.command("restore")
def topic_restore(tenant: str, slug: str) -> None:
    """Offer an archived topic again."""
    from konsent.flows.organisation import tenants, topics

    ctx = common._ctx()
    with ctx.db.write() as s:
        topics.restore_topic(s, tenants.tenant_by_slug(s, tenant).id, slug, actor="system:cli")
    console.print(f"topic {slug} restored", markup=False)


@consent_text_app.command("set")
def consent_text_set(
    tenant: str,
    lang: str = typer.Option(..., "--lang", help="de or en"),
    file: Path = typer.Option(..., "--file", help="A UTF-8 text file with the consent text."),
) -> None:
    """Publish the consent text of one language as a new version (an unchanged text keeps the version)."""
    from konsent.flows.organisation import consent_texts, tenants

    consent_texts.check_locale(lang)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        common.fail(f"cannot read {file}: {exc.__class__.__name__}")
    ctx = common._ctx()
    with ctx.db.write() as s:
        ct = consent_texts.publish(s, tenants.tenant_by_slug(s, tenant), lang, text, actor="system:cli")
        console.print(f"consent text {lang} version {ct.version} is current", markup=False)


@consent_text_app.command("list")
def consent_text_list(tenant: str, lang: str = typer.Option("de", "--lang", help="de or en")) -> None:
    """List the versions of one language, newest first."""
    from konsent.flows.organisation import consent_texts, tenants

    ctx = common._ctx()
    with ctx.db.read() as s:
        t = tenants.tenant_by_slug(s, tenant)
        for ct in consent_texts.versions(s, t.id, lang):
            mark = "current" if ct.current else ""
            console.print(
                f"v{ct.version}\t{ct.created_at:%Y-%m-%d %H:%M}\t{ct.text_hash[:12]}\t{mark}", markup=False
            )


@consent_text_app.command("show")
def consent_text_show(tenant: str, version: int, lang: str = typer.Option("de", "--lang")) -> None:
    """Print one version exactly as it was given."""
    from konsent.flows.organisation import consent_texts, tenants

    ctx = common._ctx()
    with ctx.db.read() as s:
        typer.echo(consent_texts.get_version(s, tenants.tenant_by_slug(s, tenant).id, lang, version).text)


@consent_text_app.command("diff")
def consent_text_diff(tenant: str, old: int, new: int, lang: str = typer.Option("de", "--lang")) -> None:
    """What changed between two versions (unified diff, one sentence a line)."""
    from konsent.flows.organisation import consent_texts, tenants

    ctx = common._ctx()
    with ctx.db.read() as s:
        typer.echo(consent_texts.unified_diff(s, tenants.tenant_by_slug(s, tenant).id, lang, old, new))
