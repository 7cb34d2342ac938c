"""What the channel setup page shows and adds: the tenant's accounts, the adapters offered (S7, S1).

Owns `channel_views` (accounts with webhook URL, processing region, health; never a secret's value),
`channel_kinds` (the adapters and their setup fields) and `add_channel_account` (secrets sealed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from konsent import channels
from konsent.domain.errors import InvalidInput
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import channel_admin, channel_health, tenants
from konsent.store.tables import ChannelAccount, Tenant
from konsent.store.types import utcnow


@dataclass(frozen=True)
class ChannelView:
    id: int
    kind: str
    label: str
    name: str
    provider_ref: str
    webhook_url: str
    processing_region: str
    safeguard: str
    settings: list[tuple[str, Any]]  # (field label msgid, value)
    secrets_set: list[tuple[str, bool]]  # (field label msgid, a value is stored) — never the value
    registers_webhook: bool = False  # konsent can register the webhook URL at the provider itself
    receives_inbound: bool = True  # False: the provider posts nothing, there is no URL to configure
    active: bool = True
    health: channel_health.Health | None = None
    fields: list[Any] = field(default_factory=list)  # what the edit form offers
    values: dict[str, str] = field(default_factory=dict)  # current non-secret values for the form
    deletable: bool = False


@dataclass(frozen=True)
class ChannelKind:
    kind: str
    label: str
    processing_region: str
    safeguard: str
    fields: list[Any]


def channel_kinds() -> list[ChannelKind]:
    """Every registered adapter with the fields its setup form asks for."""
    out = []
    for kind in channels.kinds():
        cls = channels.adapter_class(kind)
        caps = cls.capabilities
        out.append(
            ChannelKind(kind, cls.label, caps.processing_region, caps.safeguard, list(cls.setup_fields))
        )
    return out


def channel_views(ctx: Konsent, s: Session, tenant_id: int) -> list[ChannelView]:
    """The tenant's channel accounts with webhook URL and where the provider processes data (S7)."""
    base = ctx.settings.base_url.rstrip("/")
    now = utcnow()
    out = []
    for acc in channel_admin.all_accounts(s, tenant_id):
        try:
            cls = channels.adapter_class(acc.kind)
        except KeyError:
            continue
        cfg = tenants.account_config(ctx, s, acc)
        labels = {f.name: f.label for f in cls.setup_fields}
        out.append(
            ChannelView(
                acc.id,
                acc.kind,
                cls.label,
                acc.name,
                acc.provider_ref,
                f"{base}/webhooks/{acc.route_key}",
                cls.capabilities.processing_region,
                cls.capabilities.safeguard,
                [(labels.get(k, k), v) for k, v in acc.settings.items()],
                [(f.label, bool(cfg.secrets.get(f.name))) for f in cls.setup_fields if f.secret],
                cls.registers_webhook,
                cls.capabilities.receives_inbound,
                acc.active,
                channel_health.health(s, acc, now),
                channel_admin.editable_fields(acc.kind),
                {"provider_ref": acc.provider_ref, **{k: str(v) for k, v in acc.settings.items()}},
                not channel_admin.in_use(s, acc),
            )
        )
    return out


MAX_FIELD = 2000


def add_channel_account(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, kind: str, name: str, values: dict[str, str]
) -> ChannelAccount:
    """Connect a new channel account from the admin form; secret fields are sealed (S1, S7)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput(detail="Give the account a name (at most 200 characters).")
    # every field is checked before anything is saved: a value the provider would refuse never lands
    provider_ref, settings, secrets_ = channel_admin.clean_new(kind, values)
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    acc = tenants.create_channel_account(
        ctx, s, tenant, kind, name, provider_ref=provider_ref, settings=settings, secrets_=secrets_
    )
    audit.record(s, tenant_id, actor, "channel.create", f"channel:{acc.id}", kind=kind)
    return acc
