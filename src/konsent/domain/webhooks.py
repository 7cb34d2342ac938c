"""Outgoing webhooks as pure rules: event names, the signature, the retry schedule, URL checks (M4, S8).

The signature follows Stripe's scheme: `Konsent-Signature: t=<unix seconds>,v1=<hex>` where the hex
is HMAC-SHA256(secret, "<t>.<raw body>"). During a secret rotation's overlap one `v1=` per secret.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

SIGNATURE_HEADER = "Konsent-Signature"
TOLERANCE_SECONDS = 300  # receivers should refuse a `t` further than this from their clock
EVENT_TYPES: tuple[str, ...] = (
    "contact.created",
    "contact.erased",
    "consent.granted",
    "consent.withdrawn",
    "optin.expired",
    "message.received",
    "message.status",
    "conversation.assigned",
    "conversation.closed",
    "broadcast.finished",
    "privacy_request.opened",
    "privacy_request.completed",
)
GIVE_UP_AFTER = timedelta(days=3)  # a delivery is retried with growing waits for this long
DISABLE_AFTER = timedelta(days=3)  # an endpoint failing without a success this long is disabled
ROTATION_OVERLAP = timedelta(hours=24)  # both secrets sign for this long after a rotation


class UrlRefused(ValueError):
    """An endpoint URL konsent must not call (S8)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<t>.<body>" under one secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    """`t=<t>,v1=<sig>[,v1=<sig of the previous secret>]`."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when one `v1` of the header is this secret's signature and `t` is within the tolerance."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    t = int(stamps[0])
    if abs(now - t) > tolerance:
        return False
    expected = sign(secret, t, body)
    return any(k.strip() == "v1" and hmac.compare_digest(v.strip(), expected) for k, v in parts)


def backoff(attempt: int) -> timedelta:
    """Wait before the next try after `attempt` failed tries: 30 s doubling, at most 12 hours."""
    return timedelta(seconds=min(30 * 2 ** max(0, attempt - 1), 12 * 3600))


def gives_up(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= GIVE_UP_AFTER


def wants(filter_events: list[str], event_type: str) -> bool:
    """Whether an endpoint's event filter takes this event ("*" takes all)."""
    return "*" in filter_events or event_type in filter_events


def consent_source(source: str) -> str:
    """The kind of door a consent change came through: keyword, widget, staff, api, provider, ..."""
    head = source.split(":", 1)[0]
    if head == "staff":
        return "api" if source.startswith("staff:token:") else "staff"
    if head.startswith("provider"):
        return "provider"
    if head == "objection":
        return "widget" if source.endswith(":portal") else "staff"
    return head or "unknown"


def check_url(url: str, allow_private: bool) -> str:
    """An endpoint URL as konsent will call it, or UrlRefused: https only, no credentials, no private,
    loopback or link-local literal addresses unless the operator allows private URLs (S8)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("not a valid URL") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UrlRefused("only https:// URLs")
    if parts.scheme != "https" and not allow_private:
        raise UrlRefused("only https:// URLs")
    if parts.username or parts.password:
        raise UrlRefused("no credentials in the URL")
    if port == 0:
        raise UrlRefused("not a valid port")
    if not allow_private:
        host = parts.hostname.rstrip(".").lower()
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise UrlRefused("private or loopback addresses are not allowed")
        check_address(host, allow_private)
    return url


def check_address(host: str, allow_private: bool) -> None:
    """Refuse an IP literal (or a resolved address) that is not public, unless allowed."""
    if allow_private:
        return
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: checked again once resolved
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if not addr.is_global or addr.is_multicast:
        raise UrlRefused("private or loopback addresses are not allowed")


def status_data(message_id: int, status: str, reason: str) -> dict[str, Any]:
    """The `data` of a message.status event."""
    return {"message_id": message_id, "status": status, "status_reason": reason}


def status_rows(
    changed: list[tuple[int, int, str, str]], endpoints: list[tuple[int, int, Any]], at: datetime
) -> list[dict[str, Any]]:
    """Delivery rows for the status sink's group commit: one per changed message (tenant, id,
    status, reason) and endpoint of its tenant that wants message.status (payload as JSON text)."""
    wanting: dict[int, list[int]] = {}
    for endpoint_id, tenant_id, events in endpoints:
        if isinstance(events, str):
            events = json.loads(events)
        if wants(list(events or []), "message.status"):
            wanting.setdefault(tenant_id, []).append(endpoint_id)
    rows = []
    for tenant_id, message_id, status, reason in changed:
        for endpoint_id in wanting.get(tenant_id, []):
            event_id = "evt_" + uuid.uuid4().hex
            payload = {
                "id": event_id,
                "type": "message.status",
                "created_at": at.isoformat(),
                "data": status_data(message_id, status, reason),
            }
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "endpoint_id": endpoint_id,
                    "event_id": event_id,
                    "event_type": "message.status",
                    "payload": json.dumps(payload),
                    "state": "pending",
                    "attempt": 0,
                    "run_at": at,
                    "last_error": "",
                    "created_at": at,
                }
            )
    return rows
