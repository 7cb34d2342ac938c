"""Idempotency keys of inbound events without provider ids in clear (invariant 6, D2, S8).

Provider ids can carry personal data: a WhatsApp message id holds the sender's number in
base64, Threema and Messenger ids name the sender. `webhook_events` therefore stores only a
keyed hash of each id, made with the tenant's blind-index key. That key survives key
rotation, so the same id always gives the same key and a retried delivery is still
recognised; without the key nobody can tell which number an event came from.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

from konsent.flows.context import Konsent


def dedupe_secret(ctx: Konsent, s: Session, tenant_id: int) -> bytes:
    """The tenant's key for dedupe hashes (its blind-index key, cached by the key ring)."""
    return ctx.keys.tenant(s, tenant_id).index_key


def hashed_key(secret: bytes, raw: str) -> str:
    """`raw` ("msg:<provider id>", "st:<id>:<status>" …) as "<kind>:<keyed hash>"; "" stays ""."""
    if not raw:
        return ""
    kind = raw.split(":", 1)[0][:20]
    digest = hmac.new(secret, b"dedupe:" + raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{kind}:{digest}"
