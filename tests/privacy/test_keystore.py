"""The separate contact key store: erasure reaches into backups taken before it (D2, S1, invariant 5)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from konsent import crypto
from konsent.flows.contacts import contact_name
from konsent.flows.privacy import keyrotation
from konsent.flows.privacy import rights as privacy
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url
from konsent.store.tables import Contact
from tests.conftest import MASTER_KEY, on_postgres
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, say, subscribed_contact

OTHER_PHONE, OTHER_NAME = "+4915199988877", "Max Beispiel"


def _backup(ctx) -> list[dict]:
    """What a backup of the main database holds for each contact: the wrapped key and the sealed name."""
    with ctx.db.read() as s:
        return [
            {
                "id": c.id,
                "tenant_id": c.tenant_id,
                "wrapped_key": c.wrapped_key,
                "key_version": c.key_version,
                "name": c.name_sealed,
            }
            for c in s.scalars(select(Contact).order_by(Contact.id))
        ]


def _restore_names(ctx, backup: list[dict]) -> dict[int, str | None]:
    """Open each backed-up name as a fresh process would: master key plus today's key store."""
    ring = KeyRing(base64.urlsafe_b64decode(MASTER_KEY), KeyStore(keystore_url(ctx.settings.data_dir)))
    out: dict[int, str | None] = {}
    with ctx.db.read() as s:
        for row in backup:
            copy = Contact(id=row["id"], tenant_id=row["tenant_id"], key_version=row["key_version"])
            copy.wrapped_key = row["wrapped_key"]
            try:
                key = ring.contact_key(s, copy)
                out[row["id"]] = crypto.open_text(key, row["name"], f"contact:{row['id']}:name".encode())
            except crypto.DecryptionError:
                out[row["id"]] = None
    ring.store.dispose()
    return out


def _two_contacts(ctx) -> tuple[int, int]:
    first = subscribed_contact(ctx)
    say(ctx, "Hallo", OTHER_PHONE, name=OTHER_NAME)
    with ctx.db.read() as s:
        second = s.scalar(select(func.max(Contact.id)))
    return first, second


def test_backup_taken_before_erasure_no_longer_opens_that_contact_but_still_opens_the_others(ctx, demo):
    """D2: the erased contact's data in an earlier copy of the database cannot be decrypted any more."""
    erased, kept = _two_contacts(ctx)
    backup = _backup(ctx)
    assert _restore_names(ctx, backup) == {erased: NAME, kept: OTHER_NAME}  # the copy is usable before
    say(ctx, "LÖSCHEN")
    say(ctx, "LÖSCHEN JA")
    restored = _restore_names(ctx, backup)
    assert restored[erased] is None
    assert restored[kept] == OTHER_NAME  # the backup stays good for everyone else
    with ctx.db.read() as s:
        assert s.get(Contact, erased).erased_at is not None
    assert set(ctx.keys.store.get_many([erased, kept])) == {kept}


def test_key_store_file_holds_no_personal_data_and_the_database_no_secret(ctx, demo):
    """S1: the key store keeps random secrets only; the main database never holds them."""
    cid = subscribed_contact(ctx)
    secret = ctx.keys.store.get_many([cid])[cid]
    if not on_postgres():
        store_bytes = (ctx.settings.data_dir / "keystore.db").read_bytes()
        for clear in (PHONE, PHONE.lstrip("+"), NAME, SECRET_TEXT):
            assert clear.encode() not in store_bytes
        db_bytes = (ctx.settings.data_dir / "konsent.db").read_bytes()
        wal = ctx.settings.data_dir / "konsent.db-wal"
        db_bytes += wal.read_bytes() if wal.exists() else b""
        assert secret not in db_bytes
    with ctx.db.read() as s:
        c = s.get(Contact, cid)
        assert secret not in c.wrapped_key
        assert c.wrapped_key[:1] == b"\x02"  # the split form: needs the tenant key and the secret


def test_erasure_that_rolls_back_destroys_nothing(ctx, demo):
    """D2: the secret goes only once the erasure has committed; a failed erasure loses no data."""
    cid = subscribed_contact(ctx)
    with pytest.raises(RuntimeError), ctx.db.write() as s:
        privacy.erase_contact(ctx, s, s.get(Contact, cid), source="staff:test", actor="staff:1")
        raise RuntimeError("the erasure's transaction fails")
    assert cid in ctx.keys.store.get_many([cid])
    ctx.keys.forget()
    with ctx.db.read() as s:
        assert contact_name(ctx, s, s.get(Contact, cid)) == NAME


def test_sweep_destroys_secrets_an_interrupted_erasure_left_but_keeps_fresh_ones(ctx, demo):
    """D2: a crash between the erasure's commit and the secret's destruction is repaired by the sweep."""
    erased, kept = _two_contacts(ctx)
    with ctx.db.write() as s:  # as if the process died right after committing the erasure
        s.execute(update(Contact).where(Contact.id == erased).values(wrapped_key=None))
    ctx.keys.store.put(demo.tenant_id, 999_999, crypto.new_key())  # a creation still in flight
    assert keyrotation.sweep_keystore(ctx, min_age=timedelta(hours=1)) == 0  # all fresh: left alone
    assert keyrotation.sweep_keystore(ctx, min_age=timedelta(0)) == 2
    assert set(ctx.keys.store.get_many([erased, kept, 999_999])) == {kept}
    ctx.keys.forget()
    with ctx.db.read() as s:
        assert contact_name(ctx, s, s.get(Contact, kept)) == OTHER_NAME


def test_rotation_moves_keys_wrapped_before_the_key_store_into_it(ctx, demo):
    """S1: a contact key wrapped by the tenant key alone gets a secret on the next rotation."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        c = s.get(Contact, cid)
        key = ctx.keys.contact_key(s, c)
        tk = ctx.keys.tenant(s, c.tenant_id)
        c.wrapped_key = crypto.wrap_key(tk.data_key, key, f"contact:{cid}".encode())  # the old form
    ctx.keys.store.destroy([cid])
    ctx.keys.forget()
    with ctx.db.read() as s:
        assert contact_name(ctx, s, s.get(Contact, cid)) == NAME  # still readable
    rep = keyrotation.rotate_tenant(ctx, demo.tenant_id)
    assert rep.contacts >= 1 and rep.remaining == 0
    ctx.keys.forget()
    with ctx.db.read() as s:
        c = s.get(Contact, cid)
        assert c.wrapped_key[:1] == b"\x02" and cid in ctx.keys.store.get_many([cid])
        assert contact_name(ctx, s, c) == NAME
    say(ctx, "LÖSCHEN")
    say(ctx, "LÖSCHEN JA")
    assert ctx.keys.store.get_many([cid]) == {}


def test_cli_keys_sweep(ctx, demo, monkeypatch):
    """D2: `konsent keys sweep` reports how many orphaned secrets it destroyed."""
    from typer.testing import CliRunner

    from konsent import cli

    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)
    ctx.keys.store.put(demo.tenant_id, 424_242, crypto.new_key())
    res = CliRunner().invoke(cli.app, ["keys", "sweep"])
    assert res.exit_code == 0 and "0 orphaned" in res.output, res.output  # too fresh to touch
    res = CliRunner().invoke(cli.app, ["keys", "sweep", "--min-age-minutes", "0"])
    assert res.exit_code == 0 and "1 orphaned" in res.output, res.output
    assert ctx.keys.store.get_many([424_242]) == {}
