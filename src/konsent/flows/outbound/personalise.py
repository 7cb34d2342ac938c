"""Variables in newsletter texts and template parameters: `{name}`, `{first_name}` and the
fields the bot collected with consent, filled in per contact (M3, M2).

`{variable|fallback}` gives the text used when a contact has no value. A field is offered
only while some contact of the tenant holds it; a field goes with its data consent
(withdrawing it deletes the value), so a newsletter never uses a value whose consent is gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.errors import InvalidInput
from konsent.domain.fill import fill
from konsent.flows.contacts import contact_name, open_for_contact
from konsent.flows.context import Konsent
from konsent.store.tables import ContactField

BUILTIN = ("name", "first_name")
_VAR = re.compile(r"\{(\w+)(?:\|([^{}]*))?\}")


def variables_in(values: Iterable[str]) -> set[str]:
    return {m.group(1) for v in values for m in _VAR.finditer(v)}


def field_names(s: Session, tenant_id: int) -> list[str]:
    """The contact fields any contact of this tenant holds, usable as variables."""
    return sorted(
        s.scalars(select(ContactField.name).where(ContactField.tenant_id == tenant_id).distinct()).all()
    )


def check_variables(s: Session, tenant_id: int, values: Sequence[str], where: str) -> None:
    """Refuse a variable that is neither built in nor a field the tenant's contacts hold."""
    unknown = sorted(variables_in(values) - set(BUILTIN))
    if not unknown:
        return
    known = set(field_names(s, tenant_id))
    missing = [v for v in unknown if v not in known]
    if missing:
        offered = ", ".join("{" + v + "}" for v in (*BUILTIN, *sorted(known)))
        raise InvalidInput(
            "unknown variable {variable} in {where}; use one of: {offered}",
            variable="{" + missing[0] + "}",
            where=where,
            offered=offered,
        )


def render(value: str, fields: dict[str, str]) -> str:
    """Fill `{name}` or `{name|fallback}` from the contact's fields; no value leaves no gap
    ("Hallo," never "Hallo ,")."""
    return fill(value, _VAR, lambda m: fields.get(m.group(1)) or (m.group(2) or ""))


def load_fields(
    ctx: Konsent, s: Session, contacts: Sequence[Any], wanted: set[str]
) -> dict[int, dict[str, str]]:
    """Each contact's values of the wanted variables, opened with its key (one query per page)."""
    out: dict[int, dict[str, str]] = {c.id: {} for c in contacts}
    if not contacts or not wanted:
        return out
    if wanted & set(BUILTIN):
        for c in contacts:
            full = contact_name(ctx, s, c).strip() if c.wrapped_key is not None else ""
            out[c.id].update({"name": full, "first_name": full.split(" ")[0] if full else ""})
    fields = wanted - set(BUILTIN)
    if fields:
        by_id = {c.id: c for c in contacts}
        tenant_id = contacts[0].tenant_id
        for cid, name, sealed in s.execute(
            select(ContactField.contact_id, ContactField.name, ContactField.value_sealed).where(
                ContactField.tenant_id == tenant_id,
                ContactField.contact_id.in_(list(by_id)),
                ContactField.name.in_(sorted(fields)),
            )
        ):
            try:
                out[cid][name] = open_for_contact(ctx, s, by_id[cid], f"field:{name}", sealed)
            except crypto.DecryptionError:
                continue  # shredded meanwhile: the fallback is used
    return out
