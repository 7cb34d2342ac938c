"""Helpers for privacy tests: a subscribed phone with a name and a conversation."""

from __future__ import annotations

from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.store.tables import Contact, ContactIdentity
from tests.conftest import drain
from tests.helpers import phone_texts, request_code, sim_account

PHONE = "+4915112345678"
NAME = "Erika Mustermann"
SECRET_TEXT = "Meine Bestellung 4711 kam beschaedigt an"


def say(ctx: Konsent, text: str, phone: str = PHONE, name: str | None = None, locale: str = "de") -> None:
    simulator.phone_send(ctx, sim_account(ctx).id, phone, text, name=name, locale=locale)
    drain(ctx)


def subscribed_contact(ctx: Konsent, phone: str = PHONE, name: str = NAME, locale: str = "de") -> int:
    """A contact who signed up for `angebote` and then wrote a service message."""
    pending = request_code(ctx, ["angebote"], locale)
    say(ctx, pending.prefill, phone, name=name, locale=locale)
    say(ctx, SECRET_TEXT, phone, name=name, locale=locale)
    return contact_id_of(ctx)


def contact_id_of(ctx: Konsent) -> int:
    with ctx.db.read() as s:
        ids = s.scalars(select(ContactIdentity.contact_id)).all()
        live = s.scalars(select(Contact.id).where(Contact.id.in_(ids), Contact.erased_at.is_(None))).all()
        assert len(live) == 1
        return live[0]


def last_text(ctx: Konsent, phone: str = PHONE) -> str:
    return phone_texts(ctx, phone)[-1]
