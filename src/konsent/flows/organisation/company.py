"""A tenant's own data and its first-run setup checklist (U5, T1, T2).

Controller data (Art. 13(1)(a)/(b) GDPR: legal name, address, representative, the data-protection
officer's contact, the competent supervisory authority) lives in `tenants.settings["controller"]`,
the time zone in `tenants.settings["time_zone"]`; the privacy-policy URL and version and the
default language are columns of the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.i18n import LOCALES
from konsent.store.tables import ChannelAccount, Consent, ConsentText, Tenant, Topic
from konsent.store.tenant_settings import merge_settings

CONTROLLER_FIELDS = ("legal_name", "address", "representative", "dpo_contact", "supervisory_authority")
REQUIRED = ("legal_name", "address", "representative", "supervisory_authority")
LIMITS = {"legal_name": 200, "address": 500, "representative": 200, "dpo_contact": 300,
          "supervisory_authority": 300}  # fmt: skip
DEFAULT_TIME_ZONE = "Europe/Berlin"

MISSING = "please fill in: {fields}"
BAD_URL = "the privacy-policy URL must start with https:// or http://"
BAD_VERSION = "the privacy-policy version has 1-64 characters"
BAD_ZONE = "unknown time zone (use a name like Europe/Berlin)"
TOO_LONG = "{field} is too long"


@dataclass(frozen=True)
class Company:
    name: str
    controller: dict[str, str]
    privacy_url: str
    privacy_version: str
    default_locale: str
    time_zone: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **{k: self.controller.get(k, "") for k in CONTROLLER_FIELDS},
            "privacy_url": self.privacy_url,
            "privacy_version": self.privacy_version,
            "default_locale": self.default_locale,
            "time_zone": self.time_zone,
        }


def get_tenant(s: Session, tenant_id: int) -> Tenant:
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound()
    return tenant


def time_zone(tenant: Tenant) -> str:
    return str((tenant.settings or {}).get("time_zone") or DEFAULT_TIME_ZONE)


def controller(tenant: Tenant) -> dict[str, str]:
    data = (tenant.settings or {}).get("controller") or {}
    return {k: str(data.get(k) or "") for k in CONTROLLER_FIELDS}


def company(tenant: Tenant) -> Company:
    return Company(
        name=tenant.name,
        controller=controller(tenant),
        privacy_url=tenant.privacy_url,
        privacy_version=tenant.privacy_version,
        default_locale=tenant.default_locale,
        time_zone=time_zone(tenant),
    )


def zone_names() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


def update_company(s: Session, tenant: Tenant, values: dict[str, Any], *, actor: str = "system") -> Company:
    """Check every field first, then save them together (nothing half-saved)."""
    data = {k: str(values.get(k) if values.get(k) is not None else "").strip() for k in values}
    ctrl = controller(tenant)
    for k in CONTROLLER_FIELDS:
        if k in data:
            if len(data[k]) > LIMITS[k]:
                raise InvalidInput(TOO_LONG, field=k)
            ctrl[k] = data[k]
    missing = [k for k in REQUIRED if not ctrl.get(k)]
    if missing:
        raise InvalidInput(MISSING, fields=", ".join(missing))
    name = data.get("name", tenant.name) or tenant.name
    if len(name) > 200:
        raise InvalidInput(TOO_LONG, field="name")
    url = data.get("privacy_url", tenant.privacy_url)
    if url and (
        not url.startswith(("https://", "http://")) or len(url) > 500 or any(c.isspace() for c in url)
    ):
        raise InvalidInput(detail=BAD_URL)
    version = data.get("privacy_version", tenant.privacy_version)
    if not 0 < len(version) <= 64:
        raise InvalidInput(detail=BAD_VERSION)
    locale = data.get("default_locale", tenant.default_locale)
    if locale not in LOCALES:
        raise InvalidInput(detail="unknown language: use de or en")
    zone = data.get("time_zone", time_zone(tenant))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(detail=BAD_ZONE) from exc
    tenant = merge_settings(s, tenant.id, {"controller": ctrl, "time_zone": zone})  # re-read, locked
    tenant.name = name
    tenant.privacy_url = url
    tenant.privacy_version = version
    tenant.default_locale = locale
    audit.record(s, tenant.id, actor, "company.update", f"tenant:{tenant.id}")
    return company(tenant)


@dataclass(frozen=True)
class Step:
    key: str
    label: str  # English msgid
    href: str
    done: bool


def checklist(s: Session, tenant: Tenant) -> list[Step]:
    """The first-run steps in order, each done or not, judged from the live configuration."""
    tid = tenant.id
    ctrl = controller(tenant)
    has_topic = bool(
        s.scalar(
            select(func.count()).select_from(Topic).where(Topic.tenant_id == tid, Topic.active.is_(True))
        )
    )
    texts = set(
        s.scalars(
            select(ConsentText.locale).where(ConsentText.tenant_id == tid, ConsentText.current.is_(True))
        )
    )
    has_channel = bool(
        s.scalar(
            select(func.count())
            .select_from(ChannelAccount)
            .where(ChannelAccount.tenant_id == tid, ChannelAccount.active.is_(True))
        )
    )
    has_optin = bool(s.scalar(select(func.count()).select_from(Consent).where(Consent.tenant_id == tid)))
    return [
        Step("company", "Company and privacy policy", "/admin/settings/company",
             all(ctrl.get(k) for k in REQUIRED) and bool(tenant.privacy_url)),
        Step("topics", "Newsletter topics", "/admin/topics", has_topic),
        Step("texts", "Consent texts", "/admin/consent-texts", tenant.default_locale in texts),
        Step("channel", "First channel", "/admin/channels", has_channel),
        Step("widget", "Widget and a test sign-up", "/admin/setup/widget", has_optin),
    ]  # fmt: skip


def setup_complete(s: Session, tenant: Tenant) -> bool:
    return all(step.done for step in checklist(s, tenant))


def next_step(s: Session, tenant: Tenant, after: str) -> str:
    """Where the guided sequence goes after saving `after`: the next step not done, else the dashboard."""
    steps = checklist(s, tenant)
    keys = [x.key for x in steps]
    start = keys.index(after) + 1 if after in keys else 0
    for step in steps[start:]:
        return step.href + "?setup=1"
    return "/admin"


@dataclass(frozen=True)
class WidgetInfo:
    slug: str
    snippet: str
    preview_url: str
    simulator_urls: list[tuple[str, str]]  # (account name, phone page URL)
    consents: int


def widget_info(ctx: Konsent, s: Session, tenant: Tenant) -> WidgetInfo:
    """The one-line embed code, a page that shows the widget, and the simulator phones for a test."""
    base = ctx.settings.base_url.rstrip("/")
    sims = [
        (a.name, f"{base}/simulator?account={a.id}")
        for a in s.scalars(
            select(ChannelAccount).where(
                ChannelAccount.tenant_id == tenant.id,
                ChannelAccount.kind == "simulator",
                ChannelAccount.active.is_(True),
            )
        )
    ]
    n = s.scalar(select(func.count()).select_from(Consent).where(Consent.tenant_id == tenant.id)) or 0
    return WidgetInfo(
        slug=tenant.slug,
        snippet=f'<script src="{base}/widget.js" data-konsent-tenant="{tenant.slug}" async></script>',
        preview_url=f"{base}/try/{tenant.slug}",
        simulator_urls=sims,
        consents=int(n),
    )
