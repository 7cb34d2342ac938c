"""Encryption at rest and key rotation without downtime (S1, invariant 5)."""

from __future__ import annotations

import base64
import threading

import pytest
from sqlalchemy import select, text

from konsent import crypto
from konsent.flows.contacts import address_of, contact_name, identities
from konsent.flows.organisation import tenants
from konsent.flows.outbound.messaging import message_content
from konsent.flows.privacy import keyrotation
from konsent.store.keys import KeyRing
from konsent.store.tables import Base, Contact, Message, TenantKey
from tests.conftest import MASTER_KEY
from tests.helpers import phone_texts, sim_account
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, say, subscribed_contact


def _read_everything(ctx) -> tuple[set[str], set[str]]:
    """Open every name, address and message body with the keys in the database."""
    names, bodies = set(), set()
    with ctx.db.read() as s:
        for c in s.scalars(select(Contact).where(Contact.wrapped_key.is_not(None))):
            names.add(contact_name(ctx, s, c))
            names.update(address_of(ctx, s, c, i) for i in identities(s, c))
            for m in s.scalars(select(Message).where(Message.contact_id == c.id)):
                bodies.add(message_content(ctx, s, c, m).text)
        acc = sim_account(ctx)
        assert tenants.account_config(ctx, s, acc).secrets  # channel secrets still open
    return names, bodies


def test_raw_database_holds_no_number_name_or_message_text(ctx, demo):
    """S1: a dump of every table finds no phone number, name or message text in clear."""
    subscribed_contact(ctx)
    say(ctx, "MEINE DATEN")
    dump = []
    with ctx.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                dump.append(repr(tuple(row)))
    blob = "\n".join(dump)
    for secret in (PHONE, PHONE[1:], "15112345678", NAME, "Mustermann", SECRET_TEXT, "beschaedigt"):
        assert secret not in blob, secret


def test_tenant_key_rotation_while_traffic_flows_loses_nothing(ctx, demo):
    """S1: rotate the tenant key while contacts keep writing; everything reads back afterwards."""
    subscribed_contact(ctx)
    for i in range(20):
        say(ctx, f"Frage {i}", phone=f"+49151000001{i:02d}", name=f"Kunde {i}")
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            for i in range(10):
                say(ctx, f"Nachricht waehrend Rotation {i}", phone=f"+49151000002{i:02d}", name=f"Neu {i}")
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=traffic)
    th.start()
    rep = keyrotation.rotate_tenant(ctx, demo.tenant_id, batch=7)
    th.join(timeout=60)
    assert not errors, errors
    assert rep.version == 2 and rep.accounts >= 1
    keyrotation.rotate_tenant(ctx, demo.tenant_id)  # a second run picks up any straggler
    ctx.keys.forget()
    names, bodies = _read_everything(ctx)
    assert NAME in names and PHONE in names and "Kunde 19" in names and "Neu 9" in names
    assert SECRET_TEXT in bodies and "Nachricht waehrend Rotation 9" in bodies
    with ctx.db.read() as s:
        versions = set(s.scalars(select(Contact.key_version).where(Contact.wrapped_key.is_not(None))))
        assert versions == {3}
    say(ctx, "Noch da?")  # inbound still finds the contact by blind index after rotation
    assert phone_texts(ctx, PHONE)  # the simulator mailbox (sealed before rotation) still opens


def test_master_key_rotation_with_previous_key_then_old_key_is_useless(ctx, demo):
    """S1: re-wrap tenant keys under a new master; only the new master opens them afterwards."""
    subscribed_contact(ctx)
    old = base64.urlsafe_b64decode(MASTER_KEY)
    new = crypto.new_key()
    ctx.keys = KeyRing(new, ctx.keys.store, previous_masters=(old,))
    assert keyrotation.rotate_master(ctx) >= 1
    ctx.keys = KeyRing(new, ctx.keys.store)
    names, bodies = _read_everything(ctx)
    assert NAME in names and SECRET_TEXT in bodies
    ctx.keys = KeyRing(old, ctx.keys.store)
    with ctx.db.read() as s, pytest.raises(crypto.DecryptionError):
        ctx.keys.tenant(s, demo.tenant_id)


def test_cli_keys_rotate_and_audit_verify(ctx, demo, monkeypatch):
    """S1, S4: `konsent keys rotate` then `konsent audit verify` passes and names the rotation."""
    from typer.testing import CliRunner

    from konsent import cli
    from konsent.store.tables import AuditEntry

    subscribed_contact(ctx)
    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)
    res = CliRunner().invoke(cli.app, ["keys", "rotate", "--tenant", "demo"])
    assert res.exit_code == 0, res.output
    assert "key v2" in res.output
    res = CliRunner().invoke(cli.app, ["audit", "verify", "demo"])
    assert res.exit_code == 0 and "intact" in res.output, res.output
    with ctx.db.write() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "keys.rotate.tenant")).one()
        e.payload = {**e.payload, "version": 9}
    res = CliRunner().invoke(cli.app, ["audit", "verify", "demo"])
    assert res.exit_code == 1 and "broken" in res.output
    with ctx.db.read() as s:
        assert {k.version: k.active for k in s.scalars(select(TenantKey))} == {1: False, 2: True}
