"""Managing a tenant's channel accounts: check fields, edit, replace secrets, switch off and on,
delete an unused one (U5, CH1).

Switching an account off holds its queued messages (outbox state `held`): nothing goes to
the provider while it is off, nothing is lost, and switching it on sends them, each after
the usual legal-basis check at claim time. Messages already on their way to the provider
in that moment finish. While off, its webhooks are not accepted and it leaves the widget.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from konsent.channels import adapter_class
from konsent.channels.base import SetupField
from konsent.domain.errors import Conflict, InvalidInput
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import (
    Broadcast,
    ChannelAccount,
    ContactIdentity,
    Conversation,
    EarlyStatus,
    Message,
    MessageTemplate,
    OptInRequest,
    OutboxRow,
    SimulatorMail,
    WebhookEvent,
)
from konsent.store.types import utcnow

MAX_FIELD = 2000
HELD = "held"
# The provider's address is not the tenant's to choose (outbound URLs go only to the
# providers' hosts); such fields are never offered for editing here.
NOT_EDITABLE = frozenset({"api_base", "base_url"})


def check_field(f: SetupField, value: str) -> str:
    """The value, trimmed, if the provider would accept it; else InvalidInput naming the field."""
    value = value.strip()
    if len(value) > MAX_FIELD:
        raise InvalidInput("{field}: the value is too long.", field=f.label)
    if value and f.pattern and not re.fullmatch(f.pattern, value, flags=re.IGNORECASE):
        raise InvalidInput("{field}: {hint}.", field=f.label, hint=f.pattern_hint or "not a valid value")
    return value


def clean_new(kind: str, values: dict[str, str]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A new account's form values checked: (provider_ref, settings, secrets)."""
    try:
        cls = adapter_class(kind)
    except KeyError:
        raise InvalidInput(detail="Unknown channel kind.") from None
    settings: dict[str, Any] = {}
    secrets_: dict[str, str] = {}
    provider_ref = ""
    for f in cls.setup_fields:
        value = check_field(f, values.get(f.name) or "")
        if not value and f.secret and not f.required:
            value = secrets.token_urlsafe(24)  # e.g. a signing secret konsent itself uses
        if not value:
            if f.required:
                raise InvalidInput("{field}: this field is required.", field=f.label)
            continue
        if f.secret:
            secrets_[f.name] = value
        elif f.name == "provider_ref":
            provider_ref = value
        else:
            settings[f.name] = value
    return provider_ref, settings, secrets_


def editable_fields(kind: str) -> list[SetupField]:
    return [f for f in adapter_class(kind).setup_fields if f.name not in NOT_EDITABLE]


def all_accounts(s: Session, tenant_id: int) -> list[ChannelAccount]:
    """Every account of the tenant, switched off ones included."""
    return list(
        s.scalars(
            select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id).order_by(ChannelAccount.id)
        ).all()
    )


def edit_account(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, account_id: int, name: str, values: dict[str, str]
) -> ChannelAccount:
    """Change an account's name and settings; a secret field left empty keeps its value, a filled
    one replaces it. Everything is checked before anything is saved (U5)."""
    acc = tenants.get_account(s, tenant_id, account_id)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput(detail="Give the account a name (at most 200 characters).")
    cfg = tenants.account_config(ctx, s, acc)
    new_settings = dict(acc.settings)
    new_secrets = dict(cfg.secrets)
    provider_ref = acc.provider_ref
    changed: list[str] = []
    for f in editable_fields(acc.kind):
        value = check_field(f, values.get(f.name) or "")
        if f.secret:
            if value and value != new_secrets.get(f.name):
                new_secrets[f.name] = value
                changed.append(f.name)
            continue
        if not value and f.required:
            raise InvalidInput("{field}: this field is required.", field=f.label)
        current = provider_ref if f.name == "provider_ref" else str(new_settings.get(f.name, ""))
        if value == current:
            continue
        changed.append(f.name)
        if f.name == "provider_ref":
            provider_ref = value
        elif value:
            new_settings[f.name] = value
        else:
            new_settings.pop(f.name, None)
    if name != acc.name:
        changed.append("name")
    acc.name, acc.settings, acc.provider_ref = name, new_settings, provider_ref
    if new_secrets != cfg.secrets:
        tenants.store_secrets(ctx, s, acc, new_secrets)
    audit.record(s, tenant_id, actor, "channel.edit", f"channel:{acc.id}", fields=sorted(changed))
    return acc


def set_active(s: Session, tenant_id: int, actor: str, account_id: int, active: bool) -> int:
    """Switch an account off (its queued messages are held) or on (they are released);
    returns how many messages were held or released (U5)."""
    acc = tenants.get_account(s, tenant_id, account_id)
    if acc.active == active:
        return 0
    acc.active = active
    rows = (
        update(OutboxRow)
        .where(OutboxRow.tenant_id == tenant_id, OutboxRow.channel_account_id == acc.id)
        .execution_options(synchronize_session=False)
    )
    if active:
        # a row of a broadcast paused meanwhile goes back paused, not to the queue
        paused = select(Broadcast.id).where(Broadcast.state == "paused").scalar_subquery()
        back = case((OutboxRow.broadcast_id.in_(paused), "paused"), else_="available")
        n = s.execute(rows.where(OutboxRow.state == HELD).values(state=back, run_at=utcnow())).rowcount  # type: ignore[attr-defined]
    else:
        n = s.execute(rows.where(OutboxRow.state == "available").values(state=HELD)).rowcount  # type: ignore[attr-defined]
    audit.record(
        s,
        tenant_id,
        actor,
        "channel.enable" if active else "channel.disable",
        f"channel:{acc.id}",
        messages=int(n or 0),
    )
    return int(n or 0)


_USES = (
    (ContactIdentity, ContactIdentity.channel_account_id),
    (Message, Message.channel_account_id),
    (Conversation, Conversation.channel_account_id),
    (OptInRequest, OptInRequest.channel_account_id),
    (OutboxRow, OutboxRow.channel_account_id),
    (Broadcast, Broadcast.channel_account_id),
    (MessageTemplate, MessageTemplate.channel_account_id),
)


def in_use(s: Session, account: ChannelAccount) -> bool:
    """Whether contacts, messages, opt-ins, broadcasts or templates refer to the account."""
    return any(s.scalar(select(col).where(col == account.id).limit(1)) is not None for _table, col in _USES)


def delete_account(s: Session, tenant_id: int, actor: str, account_id: int) -> None:
    """Delete an account nobody and nothing refers to; one in use can only be switched off."""
    acc = tenants.get_account(s, tenant_id, account_id)
    if in_use(s, acc):
        raise Conflict(
            detail="This channel account has contacts, messages or templates; switch it off instead."
        )
    for table in (WebhookEvent, EarlyStatus, SimulatorMail):
        s.execute(delete(table).where(table.channel_account_id == acc.id))
    audit.record(s, tenant_id, actor, "channel.delete", f"channel:{acc.id}", kind=acc.kind)
    s.delete(acc)
