"""Erasure leaves no identifier behind: not in the database file, not in a dump (D2, #13 finding 7)."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, inspect, select, text

from konsent.flows.privacy import rights as privacy
from konsent.store.tables import Contact, SimulatorMail, WebhookEvent
from tests.channels import fixtures_meta as fx
from tests.channels.test_whatsapp import post
from tests.conftest import on_postgres
from tests.helpers import phone_texts
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, subscribed_contact

WA_NUMBER = "16505551234"
WA_NAME = "Sheena Nelson"
WA_TEXT = "Does it come in another color?"
WA_ID = fx.WA_TEXT["entry"][0]["changes"][0]["value"]["messages"][0]["id"]


def _database_text(ctx) -> str:  # type: ignore[no-untyped-def]
    """Everything a backup taken now would hold, as text: the SQLite file (+ WAL), or a pg_dump."""
    url = ctx.db.engine.url
    if not on_postgres():
        with ctx.db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = url.database
        blob = b""
        for suffix in ("", "-wal", "-journal"):
            try:
                with open(f"{path}{suffix}", "rb") as fh:
                    blob += fh.read()
            except FileNotFoundError:
                pass
        return blob.decode("latin-1")
    schema = parse_qs(urlsplit(str(url.render_as_string(hide_password=False))).query)["options"][0]
    schema = schema.split("search_path=")[1]
    if shutil.which("pg_dump"):
        where = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
        cmd = ["pg_dump", *where, "-n", schema, "--data-only", url.database or "postgres"]
        out = subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return out.stdout.decode("utf-8", "replace")
    chunks = []
    with ctx.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            chunks += [str(r[0]) for r in conn.execute(text(f'SELECT t::text FROM "{table}" t'))]
    return "\n".join(chunks)


def test_after_erasure_no_number_name_text_or_provider_id_is_left_in_the_database(ctx, demo):
    """D2: a WhatsApp contact (whose message id holds the number in base64) and a simulator contact
    with a mailbox are erased; a search through the database bytes finds none of their number,
    name, message text or provider message id (dedupe keys are keyed hashes)."""
    sim_contact = subscribed_contact(ctx)
    assert phone_texts(ctx, PHONE)  # the simulator mailbox holds konsent's answer
    conn = fx.connect(ctx, "whatsapp")
    assert post(ctx, conn, fx.WA_TEXT).events == 1
    with ctx.db.read() as s:
        keys = s.scalars(select(WebhookEvent.dedupe_key)).all()
        wa_contact = s.scalars(select(Contact.id).where(Contact.id != sim_contact)).one()
    assert keys and all(WA_ID not in k for k in keys)
    for cid in (sim_contact, wa_contact):
        with ctx.db.write() as s:
            privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "staff")
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(SimulatorMail)) == 0
    dump = _database_text(ctx)
    for secret in (WA_NUMBER, WA_NAME, WA_TEXT, WA_ID, WA_ID.removeprefix("wamid."), PHONE, PHONE[1:], NAME,
                   SECRET_TEXT):  # fmt: skip
        assert secret not in dump, secret


def test_the_same_provider_id_still_deduplicates_with_hashed_keys(ctx, demo):
    """Invariant 6 with keyed hashes: a retried delivery is recognised; the stored key is no id."""
    conn = fx.connect(ctx, "whatsapp")
    first, again = post(ctx, conn, fx.WA_TEXT), post(ctx, conn, fx.WA_TEXT)
    assert (first.events, again.duplicates) == (1, 1)
    with ctx.db.read() as s:
        keys = s.scalars(select(WebhookEvent.dedupe_key)).all()
    assert len(keys) == 1 and keys[0].startswith("msg:") and WA_ID not in keys[0]
