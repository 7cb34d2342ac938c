"""Re-consent after a changed consent text (C6, issue #12 item 3), on both databases."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine
from sqlalchemy import select

from konsent.flows.inbound import simulator
from konsent.flows.organisation import consent_texts, tenants
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import reconsent
from konsent.store.tables import Consent, LedgerEntry, ReconsentRequest
from konsent.store.types import utcnow
from tests.conftest import drain
from tests.setup.support import TEXT_DE_2, make_company, phone_texts, subscribe

PHONE_A = "+49 151 0000001"
PHONE_B = "+49 151 0000002"


def _versions(ctx, cid: int) -> dict[str, tuple[str, int]]:
    with ctx.db.read() as s:
        rows = s.scalars(select(Consent).where(Consent.contact_id == cid)).all()
        return {r.purpose: (r.status, r.text_version) for r in rows}


def _new_text(ctx) -> None:
    with ctx.db.write() as s:
        consent_texts.publish(s, tenants.tenant_by_slug(s, "kaffee"), "de", TEXT_DE_2, actor="test")


def _start(ctx):
    with ctx.db.write() as s:
        return reconsent.start(ctx, s, tenants.tenant_by_slug(s, "kaffee"), "de", actor="test").id


def _code(text: str) -> str:
    m = re.search(r"KS[0-9A-Z]{10}", text)
    assert m, text
    return m.group(0)


def test_reconsent_request_goes_only_to_contacts_on_an_older_version(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen"])
    _new_text(ctx)
    b = subscribe(ctx, co, PHONE_B, ["bohnen"])  # signed up under v2 already
    cid = _start(ctx)
    with ctx.db.read() as s:
        p = reconsent.progress(s, tenants.tenant_by_slug(s, "kaffee"), cid)
        asked = set(s.scalars(select(ReconsentRequest.contact_id)))
    assert (p.targeted, p.sent, p.confirmed, p.pending) == (1, 1, 0, 1)
    assert asked == {a} and b not in asked
    drain(ctx)
    request = phone_texts(ctx, co, PHONE_A)[-1]
    assert "Röstereien" in request and _code(request)


def test_nobodys_consent_changes_without_their_confirmation(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen", "kurse"])
    _new_text(ctx)
    before = _versions(ctx, a)
    _start(ctx)
    drain(ctx)
    simulator.phone_send(ctx, co.account_id, PHONE_A, "Hallo, was heißt das?")  # no code: nothing moves
    drain(ctx)
    assert (
        _versions(ctx, a) == before == {"newsletter:bohnen": ("active", 1), "newsletter:kurse": ("active", 1)}
    )


def test_confirmation_moves_the_contact_to_the_new_version_with_a_ledger_entry(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen"])
    _new_text(ctx)
    cid = _start(ctx)
    drain(ctx)
    code = _code(phone_texts(ctx, co, PHONE_A)[-1])
    simulator.phone_send(ctx, co.account_id, PHONE_A, code)
    drain(ctx)
    assert _versions(ctx, a) == {"newsletter:bohnen": ("active", 2)}
    with ctx.db.read() as s:
        last = s.scalars(
            select(LedgerEntry).where(LedgerEntry.contact_id == a).order_by(LedgerEntry.seq.desc())
        ).first()
        p = reconsent.progress(s, tenants.tenant_by_slug(s, "kaffee"), cid)
    assert last is not None and last.action == "granted"
    assert last.payload["method"] == "re_consent" and last.payload["consent_text_version"] == 2
    assert last.payload["previous_text_version"] == 1
    assert (p.confirmed, p.pending, p.still_outdated) == (1, 0, 0)
    assert "Version 2" in phone_texts(ctx, co, PHONE_A)[-1]


def test_a_code_sent_by_another_contact_upgrades_nobody(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen"])
    b = subscribe(ctx, co, PHONE_B, ["bohnen"])
    _new_text(ctx)
    _start(ctx)
    drain(ctx)
    code_of_a = _code(phone_texts(ctx, co, PHONE_A)[-1])
    simulator.phone_send(ctx, co.account_id, PHONE_B, code_of_a)
    drain(ctx)
    assert _versions(ctx, a)["newsletter:bohnen"] == ("active", 1)
    assert _versions(ctx, b)["newsletter:bohnen"] == ("active", 1)


def test_confirmation_never_resubscribes_a_topic_withdrawn_meanwhile(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen", "kurse"])
    _new_text(ctx)
    _start(ctx)
    drain(ctx)
    code = _code(phone_texts(ctx, co, PHONE_A)[-1])
    simulator.phone_send(ctx, co.account_id, PHONE_A, "STOP Kurse")
    simulator.phone_send(ctx, co.account_id, PHONE_A, code)
    drain(ctx)
    assert _versions(ctx, a) == {"newsletter:bohnen": ("active", 2), "newsletter:kurse": ("withdrawn", 1)}


def test_broadcast_requiring_the_new_version_leaves_out_who_did_not_confirm(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen"])
    b = subscribe(ctx, co, PHONE_B, ["bohnen"])
    _new_text(ctx)
    _start(ctx)
    drain(ctx)
    simulator.phone_send(ctx, co.account_id, PHONE_A, _code(phone_texts(ctx, co, PHONE_A)[-1]))
    drain(ctx)
    with ctx.db.write() as s:
        b_id = bc.create_broadcast(
            ctx,
            s,
            co.tenant_id,
            name="Neue Bohnen",
            topic="bohnen",
            text="Frisch geröstet!",
            min_text_version=2,
        ).id
    bc.act(ctx, co.tenant_id, b_id, "send", "test")
    bc.queue_all(ctx, co.tenant_id, b_id)
    drain(ctx)
    assert "Frisch geröstet!" in phone_texts(ctx, co, PHONE_A)
    assert "Frisch geröstet!" not in phone_texts(ctx, co, PHONE_B)
    assert _versions(ctx, b)["newsletter:bohnen"] == ("active", 1)
    assert a != b


def test_a_contact_asked_once_is_not_asked_again_for_the_same_version(ctx):
    co = make_company(ctx)
    subscribe(ctx, co, PHONE_A, ["bohnen"])
    _new_text(ctx)
    _start(ctx)
    second = _start(ctx)
    with ctx.db.read() as s:
        p = reconsent.progress(s, tenants.tenant_by_slug(s, "kaffee"), second)
    assert (p.targeted, p.sent, p.skipped) == (1, 0, {"already_asked": 1})


def test_an_expired_reconsent_code_changes_nothing(ctx):
    co = make_company(ctx)
    a = subscribe(ctx, co, PHONE_A, ["bohnen"])
    _new_text(ctx)
    _start(ctx)
    drain(ctx)
    code = _code(phone_texts(ctx, co, PHONE_A)[-1])
    with time_machine.travel(utcnow() + timedelta(days=reconsent.VALID_DAYS + 1), tick=False):
        simulator.phone_send(ctx, co.account_id, PHONE_A, code)
    assert _versions(ctx, a)["newsletter:bohnen"] == ("active", 1)
