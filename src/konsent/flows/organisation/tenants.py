"""Tenants, topics, consent texts and channel accounts: the configuration a tenant owns."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from konsent.channels import adapter_class
from konsent.channels.base import AccountConfig
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.domain.ledger import text_hash
from konsent.flows.context import Konsent
from konsent.i18n import LOCALES
from konsent.store.tables import ChannelAccount, ConsentText, Tenant, Topic

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")  # \Z: `$` would accept a trailing newline
TOPIC_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
_TOPIC = TOPIC_SLUG


def create_tenant(ctx: Konsent, s: Session, slug: str, name: str, **fields: Any) -> Tenant:
    """A new tenant (data controller) with its own keys."""
    if not _SLUG.match(slug):
        raise InvalidInput(detail="tenant slug: 2-63 lower-case letters, digits or dashes")
    if s.scalars(select(Tenant).where(Tenant.slug == slug)).first():
        raise Conflict("a tenant {slug} exists already", slug=repr(slug))
    tenant = Tenant(slug=slug, name=name, settings={}, **fields)
    s.add(tenant)
    s.flush()
    ctx.keys.create_tenant_keys(s, tenant.id)
    return tenant


def tenant_by_slug(s: Session, slug: str) -> Tenant:
    t = s.scalars(select(Tenant).where(Tenant.slug == slug)).one_or_none()
    if t is None:
        raise NotFound()
    return t


def add_topic(
    s: Session,
    tenant: Tenant,
    slug: str,
    names: dict[str, str],
    descriptions: dict[str, str] | None = None,
) -> Topic:
    if not _TOPIC.match(slug):
        raise InvalidInput(detail="topic slug: lower-case letters, digits, _ or -")
    topic = Topic(tenant_id=tenant.id, slug=slug, names=names, descriptions=descriptions or {})
    s.add(topic)
    s.flush()
    return topic


def topics(s: Session, tenant_id: int, active_only: bool = True) -> list[Topic]:
    q = select(Topic).where(Topic.tenant_id == tenant_id)
    if active_only:
        q = q.where(Topic.active.is_(True))
    return list(s.scalars(q.order_by(Topic.position, Topic.id)).all())


def set_consent_text(s: Session, tenant: Tenant, locale: str, text: str, author: str = "") -> ConsentText:
    """Publish a new version of the consent text for one locale (C6); old versions stay for proofs."""
    if locale not in LOCALES:
        raise InvalidInput(detail="unknown language: use de or en")
    text = text.strip()
    if not text:
        raise InvalidInput(detail="the consent text must not be empty")
    latest = s.scalars(
        select(ConsentText)
        .where(ConsentText.tenant_id == tenant.id, ConsentText.locale == locale)
        .order_by(ConsentText.version.desc())
    ).first()
    if latest is not None and latest.text == text:
        return latest
    s.execute(
        update(ConsentText)
        .where(ConsentText.tenant_id == tenant.id, ConsentText.locale == locale)
        .values(current=False)
    )
    ct = ConsentText(
        tenant_id=tenant.id,
        locale=locale,
        version=(latest.version + 1) if latest else 1,
        text=text,
        text_hash=text_hash(text),
        current=True,
        author=author[:120],
    )
    s.add(ct)
    s.flush()
    return ct


def current_consent_text(s: Session, tenant: Tenant, locale: str) -> ConsentText:
    q = select(ConsentText).where(ConsentText.tenant_id == tenant.id, ConsentText.current.is_(True))
    ct = s.scalars(q.where(ConsentText.locale == locale)).first()
    ct = ct or s.scalars(q.where(ConsentText.locale == tenant.default_locale)).first()
    if ct is None:
        raise NotFound(message="This tenant has no consent text yet.")
    return ct


def create_channel_account(
    ctx: Konsent,
    s: Session,
    tenant: Tenant,
    kind: str,
    name: str,
    *,
    provider_ref: str = "",
    settings: dict[str, Any] | None = None,
    secrets_: dict[str, str] | None = None,
) -> ChannelAccount:
    """Connect a channel account; its secrets are sealed with the tenant key (S1)."""
    adapter_class(kind)  # unknown kinds fail here
    acc = ChannelAccount(
        tenant_id=tenant.id,
        kind=kind,
        name=name,
        route_key=secrets.token_urlsafe(18),
        provider_ref=provider_ref,
        settings=settings or {},
    )
    s.add(acc)
    s.flush()
    store_secrets(ctx, s, acc, secrets_ or {})
    return acc


def store_secrets(ctx: Konsent, s: Session, acc: ChannelAccount, values: dict[str, str]) -> None:
    acc.secrets_sealed = ctx.keys.seal_for_tenant(s, acc.tenant_id, json.dumps(values), f"account:{acc.id}")


def account_config(ctx: Konsent, s: Session, acc: ChannelAccount) -> AccountConfig:
    """What an adapter needs: settings plus decrypted secrets."""
    values: dict[str, str] = {}
    if acc.secrets_sealed:
        values = json.loads(
            ctx.keys.open_for_tenant(s, acc.tenant_id, acc.secrets_sealed, f"account:{acc.id}")
        )
    settings = {"base_url": ctx.settings.base_url, **acc.settings}
    return AccountConfig(id=acc.id, kind=acc.kind, settings=settings, secrets=values)


def channel_accounts(s: Session, tenant_id: int) -> list[ChannelAccount]:
    return list(
        s.scalars(
            select(ChannelAccount)
            .where(ChannelAccount.tenant_id == tenant_id, ChannelAccount.active.is_(True))
            .order_by(ChannelAccount.id)
        ).all()
    )


def get_account(s: Session, tenant_id: int, account_id: int) -> ChannelAccount:
    if not 0 < account_id < 2**63:
        raise NotFound()
    acc = s.get(ChannelAccount, account_id)
    if acc is None or acc.tenant_id != tenant_id:
        raise NotFound()
    return acc
