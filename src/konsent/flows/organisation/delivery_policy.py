"""What a crash's unknown outcome means on a channel without echo, per tenant and purpose (#14, M3).

Telegram and Threema echo nothing konsent could use to recognise a send whose answer a crash lost.
The tenant chooses per kind of purpose whether such a message is sent again (at least once: a
possible duplicate, reported) or not (at most once: possibly missing, reported as "unknown
outcome"). Stored in `Tenant.settings`; defaults in docs/BROADCASTS.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput
from konsent.flows.organisation.tenants import tenant_by_slug
from konsent.store.tenant_settings import merge_settings

AT_MOST_ONCE = "at_most_once"
AT_LEAST_ONCE = "at_least_once"
POLICIES = (AT_MOST_ONCE, AT_LEAST_ONCE)
KINDS = ("newsletter", "transactional")
# Tenant.settings keys and their defaults (docs/BROADCASTS.md).
KEYS = {"newsletter": "unknown_outcome_newsletter", "transactional": "unknown_outcome_transactional"}
DEFAULTS = {"newsletter": AT_MOST_ONCE, "transactional": AT_LEAST_ONCE}


def kind_of(purpose: str) -> str:
    """Newsletters are one kind; everything else (confirmations, STOP and privacy answers) the other."""
    return "newsletter" if purpose.startswith("newsletter:") else "transactional"


def policy(tenant_settings: Mapping[str, Any] | None, purpose: str) -> str:
    """At most or at least once for an unknown outcome on a channel without echo, for this purpose."""
    kind = kind_of(purpose)
    value = (tenant_settings or {}).get(KEYS[kind])
    return value if value in POLICIES else DEFAULTS[kind]


def set_policy(s: Session, slug: str, kind: str, value: str) -> dict[str, str]:
    """Set one kind's policy for a tenant; returns both policies as they now apply."""
    if kind not in KINDS:
        raise InvalidInput("kind must be one of {choices}", choices=", ".join(KINDS))
    if value not in POLICIES:
        raise InvalidInput("policy must be one of {choices}", choices=", ".join(POLICIES))
    tenant = merge_settings(s, tenant_by_slug(s, slug).id, {KEYS[kind]: value})
    return {k: policy(tenant.settings, "newsletter:x" if k == "newsletter" else "service") for k in KINDS}
