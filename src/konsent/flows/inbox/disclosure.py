"""The bot's disclosure that it is automated, per tenant and language (EU AI Act Art. 50, M2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from konsent.domain.disclosure import DISCLOSURE
from konsent.domain.errors import InvalidInput
from konsent.flows import audit
from konsent.flows.organisation import staff
from konsent.i18n import LOCALES, t
from konsent.store.tables import Tenant
from konsent.store.tenant_settings import merge_settings

KEY = "bot_disclosure"
MAX_TEXT = 500


@dataclass(frozen=True)
class Disclosure:
    enabled: bool
    texts: dict[str, str]  # locale -> the tenant's own text; empty means the default


def current(tenant: Tenant) -> Disclosure:
    raw: Any = (tenant.settings or {}).get(KEY) or {}
    texts = {loc: str(raw.get(loc) or "") for loc in LOCALES}
    return Disclosure(enabled=bool(raw.get("enabled", True)), texts=texts)


def for_tenant(s: Session, tenant_id: int) -> Disclosure:
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    return current(tenant)


def text_for(tenant: Tenant, locale: str) -> str | None:
    """What the bot says first in every session, or None when the tenant switched it off."""
    d = current(tenant)
    if not d.enabled:
        return None
    return d.texts.get(locale) or t(locale, DISCLOSURE)


def save(s: Session, who: staff.StaffMember, enabled: bool, texts: dict[str, str]) -> None:
    """Change the disclosure (bot.manage); audited."""
    staff.require(who.role, "bot.manage")
    clean = {}
    for loc in LOCALES:
        value = " ".join((texts.get(loc) or "").split())
        if len(value) > MAX_TEXT:
            raise InvalidInput(detail="the disclosure text is too long")
        clean[loc] = value
    merge_settings(s, who.tenant_id, {KEY: {"enabled": enabled, **clean}})
    audit.record(s, who.tenant_id, who.actor, "bot.disclosure", f"tenant:{who.tenant_id}", enabled=enabled)
