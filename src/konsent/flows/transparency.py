"""Transparency: privacy-notice block and Art. 30 record from the tenant's real configuration (T1-T3)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from konsent.flows.context import Konsent
from konsent.flows.texts import N_
from konsent.i18n import t
from konsent.store.tables import Tenant

SHORT_NOTICE = N_(
    "{tenant} processes your number and messages to answer you and, only with your consent, "
    "to send newsletters."
)


def short_notice(ctx: Konsent, s: Session, tenant: Tenant, locale: str) -> str:
    """The one-sentence notice the INFO keyword answers with (T3)."""
    return t(locale, SHORT_NOTICE, tenant=tenant.name)
