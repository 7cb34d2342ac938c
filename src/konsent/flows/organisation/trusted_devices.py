"""Browsers a staff user signed in with before: the sign-in lock does not shut them out (S3, #13).

A trusted-device cookie is `<user id>.<nonce>.<mac>`, the MAC a keyed hash (the tenant's
blind-index key) over user, nonce and the current password hash: nothing is stored, and a
password change makes every earlier cookie worthless.
"""

from __future__ import annotations

import hmac
import secrets

from sqlalchemy.orm import Session

from konsent.flows.context import Konsent
from konsent.store.tables import StaffUser


def _mac(ctx: Konsent, s: Session, user: StaffUser, nonce: str) -> str:
    return ctx.keys.keyed_hash(s, user.tenant_id, f"staff-device:{user.id}:{nonce}:{user.password_hash}")


def new_device_cookie(ctx: Konsent, s: Session, user: StaffUser) -> str:
    """A cookie value that marks this browser as one the user signed in with."""
    nonce = secrets.token_urlsafe(16)
    return f"{user.id}.{nonce}.{_mac(ctx, s, user, nonce)}"


def is_trusted(ctx: Konsent, s: Session, user: StaffUser, cookie: str) -> bool:
    """True if `cookie` was made by `new_device_cookie` for this user and their current password."""
    parts = cookie.split(".")
    if len(parts) != 3 or parts[0] != str(user.id) or not 8 <= len(parts[1]) <= 64:
        return False
    return hmac.compare_digest(parts[2], _mac(ctx, s, user, parts[1]))
