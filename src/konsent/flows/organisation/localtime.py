"""Local time: the tenant's time zone and each staff member's own, by IANA name (U5).

The tenant's zone lives in `tenants.settings["time_zone"]`; a staff member's own zone
(`staff_users.time_zone`) wins over it. Times are stored in UTC and only shown locally.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.store.tables import StaffUser, Tenant
from konsent.store.tenant_settings import merge_settings

DEFAULT_ZONE = "Europe/Berlin"


@functools.cache
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this system knows, sorted (for the form's list)."""
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


def check_zone(name: str) -> str:
    """The zone name if the system knows it; else a clear InvalidInput."""
    name = (name or "").strip()
    if name not in zone_names():
        raise InvalidInput(detail="Unknown time zone; choose one from the list, e.g. Europe/Berlin.")
    return name


def tenant_zone(tenant: Tenant | None) -> str:
    zone = str((tenant.settings or {}).get("time_zone") or "") if tenant is not None else ""
    return zone if zone in zone_names() else DEFAULT_ZONE


def tenant_zone_of(s: Session, tenant_id: int) -> str:
    return tenant_zone(s.get(Tenant, tenant_id))


def zone_for(s: Session, tenant_id: int, user: StaffUser | None = None) -> str:
    """The zone a page is shown in: the staff member's own, else the tenant's."""
    if user is not None and user.time_zone and user.time_zone in zone_names():
        return user.time_zone
    return tenant_zone(s.get(Tenant, tenant_id))


def set_tenant_zone(s: Session, tenant_id: int, actor: str, zone: str) -> None:
    """Set the organisation's time zone; audited."""
    zone = check_zone(zone)
    merge_settings(s, tenant_id, {"time_zone": zone})
    audit.record(s, tenant_id, actor, "tenant.time_zone", f"tenant:{tenant_id}", zone=zone)


def set_staff_zone(s: Session, tenant_id: int, user_id: int, zone: str) -> None:
    """A staff member's own zone; empty means the organisation's."""
    user = s.get(StaffUser, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound()
    user.time_zone = check_zone(zone) if zone.strip() else None


def local(value: datetime, zone: str) -> datetime:
    """A stored (UTC) time in the given zone; a naive value counts as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zoneinfo.ZoneInfo(zone))


def show(value: datetime, zone: str) -> str:
    """A time as staff read it: local, to the minute, with its zone's abbreviation."""
    return local(value, zone).strftime("%Y-%m-%d %H:%M %Z")
