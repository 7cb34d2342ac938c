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


def prove(ctx: Konsent, client, path: str, phone: str = PHONE) -> None:  # type: ignore[no-untyped-def]
    """Do what the contact does before any self-service action: ask for the code on the page, read
    it on the phone, type it in (flows.privacy.proof_code)."""
    import re

    assert client.post(path + "/code").status_code == 200
    drain(ctx)
    code = re.findall(r"\bPR\d{6}\b", last_text(ctx, phone))[-1]
    resp = client.post(path + "/verify", data={"code": code}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    assert client.cookies.get("konsent_privacy")
