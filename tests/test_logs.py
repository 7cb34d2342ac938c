"""Nothing personal is written to logs, even at DEBUG (S6, invariant 7)."""

from __future__ import annotations

import logging

import pytest

from konsent.flows.inbound import simulator
from konsent.logs import RedactingFilter, redact
from tests.conftest import drain
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import request_code, sim_account

PHONE = "+4915112345678"
NAME = "Erika Mustermann"
SECRET_TEXTS = [
    "Hallo, wo ist meine Bestellung 4711-Zebra?",
    "Ihr Paket Zebra-Kiwi kommt morgen",
    "Nur heute: Kiwi-Rabatt",
]
IP = "203.0.113.77"


def _everything_logged(records: list[logging.LogRecord]) -> str:
    out = []
    for r in records:
        out.append(r.getMessage())
        if r.exc_info and r.exc_info[1] is not None:
            out.append(repr(r.exc_info[1]))
        if r.exc_text:
            out.append(r.exc_text)
        out.extend(
            str(v)
            for k, v in vars(r).items()
            if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__
        )
    return "\n".join(out)


def _personal_fragments() -> list[str]:
    national = PHONE.removeprefix("+49")
    return [PHONE, national, "015112345678", NAME, "Mustermann", IP, *SECRET_TEXTS, "Zebra", "Kiwi"]


def test_subscribe_stop_service_and_api_log_nothing_personal_at_debug(ctx, demo, client, caplog):
    """Invariant 7: drive the whole issue-2 story with every logger at DEBUG; no number, name,
    message text, opt-in code or IP appears in any log record."""
    caplog.set_level(logging.DEBUG)
    levels = {n: logging.getLogger(n).level for n in list(logging.root.manager.loggerDict)}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        pending = request_code(ctx, ["angebote", "produktnews"])
        acc = sim_account(ctx).id
        simulator.phone_send(ctx, acc, PHONE, pending.prefill, name=NAME, locale="de")
        simulator.phone_send(ctx, acc, PHONE, SECRET_TEXTS[0], name=NAME)
        simulator.phone_send(ctx, acc, PHONE, "KS0000000000")  # a wrong code
        token = api_token(ctx)
        cid = contact_of(ctx, PHONE).id
        r = client.post(
            "/api/v1/messages",
            json={"contact_id": cid, "purpose": "service", "text": SECRET_TEXTS[1]},
            headers=auth(token),
        )
        assert r.status_code == 202
        r = client.post(
            "/api/v1/messages",
            json={"contact_id": cid, "purpose": "newsletter:angebote", "text": SECRET_TEXTS[2]},
            headers=auth(token),
        )
        assert r.status_code == 202
        drain(ctx)
        client.get(f"/api/v1/contacts/{cid}", headers=auth(token))
        client.get(f"/api/v1/contacts/{cid}/messages", headers=auth(token))
        client.get(f"/api/v1/contacts/{cid}/proof", headers=auth(token))
        simulator.phone_send(ctx, acc, PHONE, "STOP Angebote 🛑")
        simulator.phone_send(ctx, acc, PHONE, "STOP")
        drain(ctx)
        refused = client.post(
            "/api/v1/messages",
            json={"contact_id": cid, "purpose": "newsletter:angebote", "text": SECRET_TEXTS[2]},
            headers=auth(token),
        )
        assert refused.status_code == 409
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    logged = _everything_logged(caplog.records)
    names = {r.name for r in caplog.records}
    assert any(n.startswith("sqlalchemy") for n in names), "SQL logging was not captured"
    leaks = [f for f in [*_personal_fragments(), pending.code] if f in logged]
    assert leaks == [], f"personal data in logs: {leaks}"


@pytest.mark.parametrize(
    ("raw", "hidden"),
    [
        ("from +49 151 12345678 now", "151 12345678"),
        ("mail erika@example.org", "erika@example.org"),
        ("code KS0A1B2C3D4E sent", "KS0A1B2C3D4E"),
        ("tel 0151/1234567", "0151/1234567"),
    ],
)
def test_redacting_filter_masks_numbers_emails_and_codes(raw: str, hidden: str):
    """The second line of defence: the handler filter masks what slipped into a log line."""
    assert hidden not in redact(raw)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (raw,), None)
    assert RedactingFilter().filter(record)
    assert hidden not in record.getMessage() and record.args is None
