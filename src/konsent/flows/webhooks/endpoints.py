"""Outgoing webhooks: endpoints per tenant and the events they receive (M4).

`emit` writes one delivery row per interested endpoint in the caller's transaction, so an event
exists exactly when the action that caused it commits. Rows hold ids, never personal data; an
endpoint configured for personal data gets names, addresses and texts added when it is sent
(`personal_details`), so an erased contact's data never leaves after the erasure.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from konsent.domain import webhooks as rules
from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit, contacts
from konsent.flows.context import Konsent
from konsent.store.tables import Contact, Message, WebhookDelivery, WebhookEndpoint
from konsent.store.types import utcnow

MAX_ENDPOINTS = 20


def _aad(tenant_id: int, endpoint_id: int | str) -> str:
    return f"tenant:{tenant_id}:webhook-secret:{endpoint_id}"


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e != "*" and e not in rules.EVENT_TYPES]
    if unknown or not events:
        raise InvalidInput(
            "unknown event types {unknown}; known: {known}",
            unknown=", ".join(unknown) or "-",
            known=", ".join(rules.EVENT_TYPES),
        )
    return sorted(set(events))


def check_url(ctx: Konsent, url: str) -> str:
    try:
        return rules.check_url(url, ctx.settings.allow_private_urls)
    except rules.UrlRefused as exc:
        raise InvalidInput("url refused: {reason}", reason=str(exc)) from exc


def create_endpoint(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    url: str,
    events: list[str],
    *,
    include_personal: bool = False,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, shown this once (M4)."""
    url = check_url(ctx, url)
    events = check_events(events)
    count = len(s.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == tenant_id)).all())
    if count >= MAX_ENDPOINTS:
        raise InvalidInput("at most {limit} webhook endpoints per tenant", limit=MAX_ENDPOINTS)
    secret = "whsec_" + secrets.token_urlsafe(32)
    ep = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        events=events,
        include_personal=include_personal,
        description=description,
        secret_sealed=b"",
        active=True,
        disabled_reason="",
    )
    s.add(ep)
    s.flush()
    ep.secret_sealed = ctx.keys.seal_for_tenant(s, tenant_id, secret, _aad(tenant_id, ep.id))
    audit.record(s, tenant_id, actor, "webhook.create", f"webhook:{ep.id}", events=events)
    return ep, secret


def get_endpoint(s: Session, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    ep = s.get(WebhookEndpoint, endpoint_id) if 0 < endpoint_id < 2**63 else None
    if ep is None or ep.tenant_id != tenant_id:
        raise NotFound()
    return ep


def list_endpoints(s: Session, tenant_id: int) -> list[WebhookEndpoint]:
    return list(
        s.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id).order_by(WebhookEndpoint.id)
        )
    )


def update_endpoint(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    endpoint_id: int,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    include_personal: bool | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    ep = get_endpoint(s, tenant_id, endpoint_id)
    if url is not None:
        ep.url = check_url(ctx, url)
    if events is not None:
        ep.events = check_events(events)
    if include_personal is not None:
        ep.include_personal = include_personal
    if active is not None:
        ep.active = active
        if active:
            ep.disabled_reason, ep.failing_since = "", None
    audit.record(s, tenant_id, actor, "webhook.update", f"webhook:{ep.id}")
    return ep


def delete_endpoint(s: Session, tenant_id: int, actor: str, endpoint_id: int) -> None:
    ep = get_endpoint(s, tenant_id, endpoint_id)
    s.query(WebhookDelivery).filter(WebhookDelivery.endpoint_id == ep.id).delete()
    s.delete(ep)
    audit.record(s, tenant_id, actor, "webhook.delete", f"webhook:{endpoint_id}")


def rotate_secret(ctx: Konsent, s: Session, tenant_id: int, actor: str, endpoint_id: int) -> str:
    """A new secret, shown once; the old one keeps signing alongside for the overlap (M4)."""
    ep = get_endpoint(s, tenant_id, endpoint_id)
    secret = "whsec_" + secrets.token_urlsafe(32)
    ep.previous_secret_sealed = ep.secret_sealed
    ep.previous_secret_until = utcnow() + rules.ROTATION_OVERLAP
    ep.secret_sealed = ctx.keys.seal_for_tenant(s, tenant_id, secret, _aad(tenant_id, ep.id))
    audit.record(s, tenant_id, actor, "webhook.rotate_secret", f"webhook:{ep.id}")
    return secret


def signing_secrets(ctx: Konsent, s: Session, ep: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, then the previous one while its overlap lasts."""
    out = [ctx.keys.open_for_tenant(s, ep.tenant_id, ep.secret_sealed, _aad(ep.tenant_id, ep.id))]
    if ep.previous_secret_sealed and ep.previous_secret_until and ep.previous_secret_until > now:
        aad = _aad(ep.tenant_id, ep.id)
        out.append(ctx.keys.open_for_tenant(s, ep.tenant_id, ep.previous_secret_sealed, aad))
    return out


def deliveries(
    s: Session, tenant_id: int, endpoint_id: int, limit: int = 50, before: int | None = None
) -> list[WebhookDelivery]:
    """The delivery log of one endpoint, newest first."""
    get_endpoint(s, tenant_id, endpoint_id)
    q = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    if before is not None:
        q = q.where(WebhookDelivery.id < before)
    return list(s.scalars(q.order_by(WebhookDelivery.id.desc()).limit(limit)))


def redeliver(s: Session, tenant_id: int, actor: str, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send one event again now (same event id: receivers deduplicate)."""
    d = s.get(WebhookDelivery, delivery_id) if 0 < delivery_id < 2**63 else None
    if d is None or d.tenant_id != tenant_id or d.endpoint_id != endpoint_id:
        raise NotFound()
    if d.state != "running":
        d.state, d.run_at, d.lease_until = "pending", utcnow(), None
        d.created_at = utcnow()  # a fresh retry window of its own
    audit.record(s, tenant_id, actor, "webhook.redeliver", f"webhook:{endpoint_id}", delivery=d.id)
    return d


def describe_endpoint(ep: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": ep.id,
        "url": ep.url,
        "events": list(ep.events or []),
        "include_personal": ep.include_personal,
        "description": ep.description,
        "active": ep.active,
        "disabled_reason": ep.disabled_reason,
        "failing_since": ep.failing_since.isoformat() if ep.failing_since else None,
        "secret_rotating_until": ep.previous_secret_until.isoformat() if ep.previous_secret_until else None,
        "created_at": ep.created_at.isoformat(),
    }


def describe_delivery(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "state": d.state,
        "attempt": d.attempt,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": d.run_at.isoformat() if d.state == "pending" else None,
        "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


def personal_details(ctx: Konsent, s: Session, tenant_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Names, addresses and message texts for an endpoint that receives personal data (opened now)."""
    extra: dict[str, Any] = {}
    cid = data.get("contact_id")
    contact = s.get(Contact, cid) if isinstance(cid, int) else None
    if contact is None or contact.tenant_id != tenant_id or contact.wrapped_key is None:
        return extra
    extra["contact"] = {
        k: v
        for k, v in contacts.describe(ctx, s, contact, personal=True).items()
        if k in ("name", "identities")
    }
    mid = data.get("message_id")
    msg = s.get(Message, mid) if isinstance(mid, int) and data.get("direction") == "in" else None
    if msg is not None and msg.tenant_id == tenant_id and msg.body_sealed:
        body = json.loads(contacts.open_for_contact(ctx, s, contact, "message", msg.body_sealed))
        extra["message"] = {"text": str(body.get("text") or "")}
    return extra


def disable_failing(s: Session, now: datetime) -> list[WebhookEndpoint]:
    """Disable endpoints that have failed without a success for DISABLE_AFTER, with a notice."""
    eps = list(
        s.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.active.is_(True),
                WebhookEndpoint.failing_since.is_not(None),
                WebhookEndpoint.failing_since < now - rules.DISABLE_AFTER,
            )
        )
    )
    for ep in eps:
        ep.active = False
        ep.disabled_reason = f"failing since {ep.failing_since:%Y-%m-%d %H:%M} UTC; no delivery succeeded"
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == ep.id, WebhookDelivery.state == "pending")
            .values(state="failed", last_error="endpoint disabled")
        )
        audit.record(
            s, ep.tenant_id, "system", "webhook.disabled", f"webhook:{ep.id}", reason=ep.disabled_reason
        )
    return eps
