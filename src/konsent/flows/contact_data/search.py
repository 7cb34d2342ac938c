"""Contact search over sealed data: by name, number, label and attribute (M5, S1, S4; docs/PRIVACY.md).

- a number (6 to 15 digits, national or E.164) is looked up by the identities' blind index;
- `#123` is a contact id;
- any other text of at least three characters is a name fragment: every keyed trigram of the
  folded term must be in the contact's name index, then the candidates' names are opened and
  the fold of the term must really occur in the fold of the name (no false positive is shown);
  the same text also finds contacts with an attribute value equal to it (blind index), e.g. an
  e-mail address or a customer number kept as an attribute;
- `label` and `attribute` (key and exact value) narrow the result; all given parts must match.
Only contacts of the tenant, never erased ones, and only those in the caller's scope (`only`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from konsent import crypto
from konsent.domain.attributes import fold, parse_value, search_grams
from konsent.domain.errors import InvalidInput
from konsent.flows import audit
from konsent.flows.contact_data import attributes, labels
from konsent.flows.contact_data.index import ensure_built, search_key, tokens_for, value_token
from konsent.flows.context import Konsent
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    ContactAttribute,
    ContactIdentity,
    ContactLabel,
    ContactSearchGram,
)

MAX_TERM = 100
CANDIDATE_CHUNK = 500  # most candidate names opened in one go
PROBE = 1000  # posting lists are counted up to this many rows to find the rarest trigram
_NUMBER = re.compile(r"\+?\d{6,15}")


@dataclass(frozen=True)
class Query:
    """What staff searched for; empty parts are not used."""

    text: str = ""
    label: str = ""  # a label id or name
    attribute: str = ""  # an attribute key ...
    value: str = ""  # ... and the value it must have

    @property
    def empty(self) -> bool:
        return not (self.text.strip() or self.label.strip() or self.attribute.strip())

    def kinds(self) -> list[str]:
        """Which parts were used, for the audit log (never the terms themselves: they are personal)."""
        kind = ""
        t = self.text.strip()
        if t:
            kind = "id" if t.startswith("#") else "number" if _is_number(t) else "text"
        return [
            k
            for k in (kind, "label" if self.label.strip() else "", "attribute" if self.attribute else "")
            if k
        ]


def _is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(re.sub(r"[\s()/.-]", "", text)))


def _e164(text: str) -> str:
    compact = re.sub(r"[\s()/.-]", "", text)
    try:
        parsed = phonenumbers.parse(compact, "DE")  # national numbers as a German office types them
    except phonenumbers.NumberParseException:
        return compact
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _by_number(ctx: Konsent, s: Session, tenant_id: int, text: str) -> Any:
    """Contact ids whose address on any channel is this number (blind index per channel kind)."""
    address = _e164(text)
    conds = []
    for acc in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id)):
        conds.append(
            (ContactIdentity.channel_account_id == acc.id)
            & (ContactIdentity.address_index == ctx.keys.index(s, tenant_id, acc.kind, address))
        )
    q = select(ContactIdentity.contact_id).where(ContactIdentity.tenant_id == tenant_id)
    return q.where(or_(*conds)) if conds else q.where(ContactIdentity.id < 0)


def _by_value(ctx: Konsent, s: Session, tenant_id: int, text: str) -> Any:
    """Contact ids with an attribute value equal to `text` (after folding), whatever the attribute."""
    return select(ContactAttribute.contact_id).where(
        ContactAttribute.tenant_id == tenant_id,
        ContactAttribute.value_index == value_token(search_key(ctx, s, tenant_id), text.strip()),
    )


def _rarest_first(s: Session, tenant_id: int, tokens: list[str]) -> list[str]:
    """The tokens ordered by how many contacts carry them, rarest first; each posting list is counted
    only up to PROBE rows (one statement, index-only), enough to tell a rare trigram from a common one.
    Empty if a token is in no name at all."""
    counts = []
    for token in tokens:
        posting = (
            select(ContactSearchGram.contact_id)
            .where(ContactSearchGram.tenant_id == tenant_id, ContactSearchGram.gram == token)
            .limit(PROBE)
            .subquery()
        )
        counts.append(select(func.count()).select_from(posting).scalar_subquery())
    row = s.execute(select(*counts)).one()
    if not all(row):
        return []
    return [t for _n, t in sorted(zip(row, tokens, strict=True))]


def _name_candidates(ctx: Konsent, s: Session, tenant_id: int, base: Any, text: str) -> Any | None:
    """`base` narrowed to contacts whose name index holds every trigram of the term (to be confirmed
    by opening), or None when a trigram is in no name at all. The query walks the rarest trigram's
    posting list newest first and probes the others' per contact, so a page of candidates costs a
    few index look-ups per row, however common the other trigrams are."""
    tokens = tokens_for(ctx, s, tenant_id, search_grams(text))
    if len(tokens) > 1:  # one trigram (a three-letter term): nothing to choose, no count needed
        tokens = _rarest_first(s, tenant_id, tokens)
        if not tokens:
            return None
    first = aliased(ContactSearchGram)
    q = base.join(first, first.contact_id == Contact.id).where(
        first.tenant_id == tenant_id, first.gram == tokens[0]
    )
    for token in tokens[1:]:
        other = aliased(ContactSearchGram)
        q = q.where(
            exists().where(
                other.tenant_id == tenant_id, other.gram == token, other.contact_id == first.contact_id
            )
        )
    return q


def _filters(ctx: Konsent, s: Session, tenant_id: int, q: Query) -> list[Any]:
    """Conditions on Contact for the label and attribute parts; 4xx for unknown ones or bad values."""
    out: list[Any] = []
    if q.label.strip():
        (label_id,) = labels.resolve(s, tenant_id, [q.label.strip()])
        out.append(
            Contact.id.in_(
                select(ContactLabel.contact_id).where(
                    ContactLabel.tenant_id == tenant_id, ContactLabel.label_id == label_id
                )
            )
        )
    if q.attribute.strip():
        d = attributes.attribute_by_key(s, tenant_id, q.attribute.strip())
        if d is None:
            raise InvalidInput("Unknown attribute {key}.", key=q.attribute.strip()[:63])
        wanted = select(ContactAttribute.contact_id).where(
            ContactAttribute.tenant_id == tenant_id, ContactAttribute.attribute_id == d.id
        )
        if q.value.strip():
            canonical = parse_value(attributes.spec_of(d), q.value)
            wanted = wanted.where(
                ContactAttribute.value_index == value_token(search_key(ctx, s, tenant_id), canonical)
            )
        out.append(Contact.id.in_(wanted))
    return out


def search(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    q: Query,
    *,
    only: Any | None = None,
    limit: int = 50,
    names: dict[int, str] | None = None,
) -> list[Contact]:
    """Contacts matching every given part of `q`, newest first, at most `limit` (M5).

    Runs in a write unit of work: the first search of a tenant builds its name index. A name search
    opens the candidates' names to confirm them; pass `names` to receive those opened names (contact
    id to display name), so a page need not open them a second time."""
    names = {} if names is None else names
    if q.empty:
        raise InvalidInput("Search for a name, a number, a label or an attribute.")
    text = " ".join(q.text.split())
    if len(text) > MAX_TERM:
        raise InvalidInput("Search for at most {count} characters.", count=MAX_TERM)
    limit = max(1, min(limit, 500))
    base = select(Contact).where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    if only is not None:
        base = base.where(only)
    for cond in _filters(ctx, s, tenant_id, q):
        base = base.where(cond)
    if not text:
        return list(s.scalars(base.order_by(Contact.id.desc()).limit(limit)).all())
    if text.startswith("#") and text[1:].isdigit() and len(text) < 19:
        return list(s.scalars(base.where(Contact.id == int(text[1:]))).all())
    if _is_number(text):
        return list(
            s.scalars(
                base.where(Contact.id.in_(_by_number(ctx, s, tenant_id, text)))
                .order_by(Contact.id.desc())
                .limit(limit)
            ).all()
        )
    ensure_built(ctx, s, tenant_id)
    exact = list(
        s.scalars(
            base.where(Contact.id.in_(_by_value(ctx, s, tenant_id, text)))
            .order_by(Contact.id.desc())
            .limit(limit)
        ).all()
    )
    candidates = _name_candidates(ctx, s, tenant_id, base, text)
    named = [] if candidates is None else _confirmed_names(ctx, s, candidates, text, limit, names)
    merged = {c.id: c for c in [*exact, *named]}
    return [merged[i] for i in sorted(merged, reverse=True)][:limit]


def _confirmed_names(
    ctx: Konsent, s: Session, candidates: Any, text: str, limit: int, names: dict[int, str]
) -> list[Contact]:
    """Open the candidates' names, newest first, a chunk at a time, until `limit` really match; the
    opened names of the matches go into `names` (the page shows them without opening them again).
    Trigram false positives are rare in names, so the first chunk is the page plus a margin."""
    needle = fold(text)
    out: list[Contact] = []
    last: int | None = None
    size = limit + limit // 4 + 5
    while len(out) < limit:
        q = candidates.order_by(Contact.id.desc()).limit(size)
        if last is not None:
            q = q.where(Contact.id < last)
        chunk: Sequence[Contact] = s.scalars(q).all()
        if not chunk:
            break
        last = chunk[-1].id
        ctx.keys.preload(s, chunk)
        for c in chunk:
            if c.name_sealed is None or c.wrapped_key is None:
                continue
            try:
                name = crypto.open_text(
                    ctx.keys.contact_key(s, c), c.name_sealed, f"contact:{c.id}:name".encode()
                )
            except crypto.DecryptionError:
                continue
            if needle in fold(name):
                out.append(c)
                names[c.id] = name
                if len(out) >= limit:
                    break
        if len(chunk) < size:
            break
        size = min(size * 4, CANDIDATE_CHUNK)
    return out


def search_audited(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    q: Query,
    *,
    only: Any | None = None,
    limit: int = 50,
    names: dict[int, str] | None = None,
) -> list[Contact]:
    """`search`, recorded in the audit log: who searched, by which kinds of criteria, how many were
    found (never the search terms: a name or a number is personal data, S4)."""
    found = search(ctx, s, tenant_id, q, only=only, limit=limit, names=names)
    audit.record(s, tenant_id, actor, "contacts.search", "contacts", kinds=q.kinds(), found=len(found))
    return found
