"""The keyed search index of contacts (S1; limits in docs/PRIVACY.md, "Contact search").

Two kinds of tokens, both keyed with a per-tenant search key derived from the tenant's
blind-index key (so nothing outside the key ring can compute or test a token):
- a value token per attribute value: HMAC of the folded canonical value (exact match);
- name grams: HMAC of each trigram of the folded display name, truncated to 64 bits.
No token holds plaintext; equal trigrams or values within one tenant give equal tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.attributes import fold, trigrams
from konsent.flows.context import Konsent
from konsent.store.tables import Contact, ContactSearchGram, Tenant
from konsent.store.tenant_settings import lock_tenant, merge_settings

VERSION = 1
SETTING = "contact_search_index"  # Tenant.settings: the index version built for this tenant
_LABEL = b"konsent:contact-search:v1"


def search_key(ctx: Konsent, s: Session, tenant_id: int) -> bytes:
    """The tenant's search key: derived from its blind-index key, never stored."""
    return hmac.new(ctx.keys.tenant(s, tenant_id).index_key, _LABEL, hashlib.sha256).digest()


def gram_token(key: bytes, gram: str) -> str:
    return hmac.new(key, b"gram:" + gram.encode(), hashlib.sha256).hexdigest()[:16]


def value_token(key: bytes, canonical: str) -> str:
    """Blind index of an attribute value, equal for values equal after folding."""
    return hmac.new(key, b"value:" + fold(canonical).encode(), hashlib.sha256).hexdigest()


def name_tokens(key: bytes, name: str) -> set[str]:
    return {gram_token(key, g) for g in trigrams(name)}


def index_name(ctx: Konsent, s: Session, contact: Contact, name: str | None) -> None:
    """Replace the contact's name grams by those of `name` (None or empty: none)."""
    drop_contact(s, contact.tenant_id, contact.id)
    if not name:
        return
    tokens = name_tokens(search_key(ctx, s, contact.tenant_id), name)
    if tokens:
        s.execute(
            insert(ContactSearchGram),
            [{"tenant_id": contact.tenant_id, "gram": t, "contact_id": contact.id} for t in sorted(tokens)],
        )


def drop_contact(s: Session, tenant_id: int, contact_id: int) -> None:
    s.execute(
        delete(ContactSearchGram).where(
            ContactSearchGram.tenant_id == tenant_id, ContactSearchGram.contact_id == contact_id
        ),
        execution_options={"synchronize_session": False},
    )


def rebuild(ctx: Konsent, s: Session, tenant_id: int, batch: int = 2000) -> int:
    """Rebuild a tenant's name index from the sealed names (first search, or a new index key).

    Returns how many contacts have a name in the index."""
    s.execute(
        delete(ContactSearchGram).where(ContactSearchGram.tenant_id == tenant_id),
        execution_options={"synchronize_session": False},
    )
    key = search_key(ctx, s, tenant_id)
    done, last = 0, 0
    while True:
        rows = list(
            s.scalars(
                select(Contact)
                .where(
                    Contact.tenant_id == tenant_id,
                    Contact.id > last,
                    Contact.name_sealed.is_not(None),
                    Contact.wrapped_key.is_not(None),
                )
                .order_by(Contact.id)
                .limit(batch)
            ).all()
        )
        if not rows:
            break
        last = rows[-1].id
        ctx.keys.preload(s, rows)
        values: list[dict[str, object]] = []
        for c in rows:
            try:
                name = crypto.open_text(
                    ctx.keys.contact_key(s, c), c.name_sealed or b"", f"contact:{c.id}:name".encode()
                )
            except crypto.DecryptionError:
                continue
            grams = name_tokens(key, name)
            values += [{"tenant_id": tenant_id, "gram": g, "contact_id": c.id} for g in sorted(grams)]
            done += 1 if grams else 0
        if values:
            s.execute(insert(ContactSearchGram), values)
    merge_settings(s, tenant_id, {SETTING: VERSION})
    return done


def ensure_built(ctx: Konsent, s: Session, tenant_id: int) -> None:
    """Build the name index once for tenants whose contacts predate it (under the tenant row's lock)."""
    tenant = s.get(Tenant, tenant_id)
    if tenant is None or (tenant.settings or {}).get(SETTING) == VERSION:
        return
    tenant = lock_tenant(s, tenant_id)
    if (tenant.settings or {}).get(SETTING) != VERSION:
        rebuild(ctx, s, tenant_id)


def tokens_for(ctx: Konsent, s: Session, tenant_id: int, grams: Iterable[str]) -> list[str]:
    key = search_key(ctx, s, tenant_id)
    return sorted({gram_token(key, g) for g in grams})
