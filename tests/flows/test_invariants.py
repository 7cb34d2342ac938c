"""The DESIGN.md invariants, pinned: STOP racing the worker (1, 2), ledger tampering (3),
tenant scoping (4) and duplicate webhooks (6). Each runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field

import pytest
from sqlalchemy import delete, select, text

from konsent.channels.base import OutboundContent
from konsent.channels.simulator import SIGNATURE_HEADER
from konsent.delivery import outbox
from konsent.domain.errors import NoLegalBasis
from konsent.domain.purposes import Purpose
from konsent.flows.consent import grants as consent
from konsent.flows.inbound import simulator
from konsent.flows.inbound.receive import receive_webhook
from konsent.flows.organisation import staff, tenants
from konsent.flows.outbound import messaging
from konsent.flows.privacy import proof
from konsent.store.chain import append_audit
from konsent.store.tables import (
    Consent,
    Contact,
    LedgerEntry,
    Message,
    OutboxRow,
    SimulatorMail,
    WebhookEvent,
)
from konsent.store.types import utcnow
from tests.conftest import drain, on_postgres
from tests.flows.support import api_token, auth, consent_states, contact_of, count, enqueue, signed_request
from tests.helpers import phone_texts, sim_account, subscribe

PHONE = "+4915112345678"
OFFERS = "newsletter:angebote"


# --- invariants 1 and 2: STOP racing the worker's claim ---------------------------------------------


@dataclass
class Clock:
    """A global order of events across threads, taken right after each commit returns."""

    _n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


def _regrant(ctx, contact_id: int) -> None:
    with ctx.db.write() as s:
        c = s.get(Contact, contact_id)
        assert c is not None
        consent.grant_consent(
            s,
            c,
            Purpose.parse(OFFERS),
            text_version=1,
            evidence={"test": "race"},
            channel_account_id=None,
            at=utcnow(),
        )


def _race_once(ctx, contact_id: int, queued: int, rng: random.Random) -> dict[str, int]:
    """One round: a worker claims in small batches and an enqueuer keeps queueing while STOP lands."""
    clock = Clock()
    withdrawn_at: list[int] = []
    handed: list[
        tuple[int, int]
    ] = []  # (tick when the claim began, outbox id) per message given to the channel
    errors: list[BaseException] = []
    for i in range(queued):
        enqueue(ctx, contact_id, OFFERS, f"Angebot {i}")
    stop = threading.Event()
    enqueued = threading.Event()

    def worker() -> None:
        try:
            idle = 0
            while idle < 3:
                began = clock.tick()
                jobs = outbox.claim(ctx, "race-worker", 2, utcnow(), 60)
                for j in jobs:
                    if j.purpose == OFFERS:
                        handed.append((began, j.outbox_id))
                outbox.complete(ctx, [(j, _sent()) for j in jobs], utcnow())
                idle = idle + 1 if not jobs and enqueued.is_set() else 0
                if not jobs:
                    time.sleep(0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def enqueuer() -> None:
        try:
            while not stop.is_set():
                try:
                    enqueue(ctx, contact_id, OFFERS, "noch ein Angebot")
                except NoLegalBasis:
                    return
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            enqueued.set()  # a row queued just before the withdrawal committed must still be worked

    def withdrawer() -> None:
        try:
            time.sleep(rng.uniform(0, 0.004))
            with ctx.db.write() as s:
                c = s.get(Contact, contact_id)
                assert c is not None
                done = consent.withdraw(s, c, [OFFERS], source="keyword", at=utcnow())
            withdrawn_at.append(clock.tick())
            assert done == [OFFERS]
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=f) for f in (worker, enqueuer, withdrawer)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert not errors, errors
    assert not any(th.is_alive() for th in threads)
    [w] = withdrawn_at
    late = [oid for began, oid in handed if began > w]
    assert late == [], "a claim that began after the withdrawal committed handed a newsletter to the channel"
    with ctx.db.read() as s:
        states = list(s.scalars(select(OutboxRow.state).where(OutboxRow.purpose == OFFERS)).all())
    assert "available" not in states and "running" not in states
    assert states.count("done") == len(handed)
    with ctx.db.write() as s:  # the next round starts with an empty queue
        s.execute(delete(OutboxRow).where(OutboxRow.purpose == OFFERS))
    return {"handed": len(handed), "cancelled": states.count("cancelled"), "refused": states.count("refused")}


def _sent():
    from konsent.channels.base import SendOutcome, SendResult

    return SendResult(SendOutcome.SENT, provider_id="race." + secrets.token_hex(6))


def test_stop_racing_the_worker_claim_never_hands_over_after_the_withdrawal(ctx, demo):
    """Invariants 1 and 2: once a withdrawal has committed, no claim hands that purpose to a channel;
    rows the worker had not claimed are cancelled with it or refused at claim time."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    cid = contact_of(ctx, PHONE).id
    rng = random.Random(20261124)
    totals = {"handed": 0, "cancelled": 0, "refused": 0}
    deadline = time.monotonic() + 3.0
    rounds = 0
    while rounds < 2 or (rounds < 12 and time.monotonic() < deadline):
        if rounds:
            _regrant(ctx, cid)
        for k, v in _race_once(ctx, cid, queued=16, rng=rng).items():
            totals[k] += v
        rounds += 1
    assert rounds >= 2
    assert totals["cancelled"] + totals["refused"] > 0  # the race really cut queues short


def test_withdrawal_and_cancellation_commit_together_or_not_at_all(ctx, demo, monkeypatch):
    """Invariant 2: if recording the withdrawal fails, the queued messages stay queued too."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    cid = contact_of(ctx, PHONE).id
    mid = enqueue(ctx, cid, OFFERS, "20 %")

    def broken_ledger(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(consent, "append_ledger", broken_ledger)
    with pytest.raises(RuntimeError), ctx.db.write() as s:
        c = s.get(Contact, cid)
        assert c is not None
        consent.withdraw(s, c, None, source="keyword", at=utcnow())
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxRow.state).where(OutboxRow.message_id == mid)).one() == "available"
        assert s.scalars(select(Consent.status).where(Consent.contact_id == cid)).one() == "active"


# --- invariant 3: ledger tampering -------------------------------------------------------------------


@pytest.fixture
def three_entries(ctx, demo):
    subscribe(ctx, PHONE, ["angebote", "produktnews"])
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "STOP Angebote")
    with ctx.db.read() as s:
        assert [e.action for e in s.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))] == [
            "granted",
            "granted",
            "withdrawn",
        ]
        r = proof.verify_ledger(s, demo.tenant_id)
    assert r.ok and r.checked == 3
    return demo


def _verify(ctx, tenant_id: int):
    with ctx.db.read() as s:
        return proof.verify_ledger(s, tenant_id)


def test_sql_edit_of_one_ledger_payload_is_named_by_verify_and_api(ctx, three_entries, client):
    """Invariant 3, C3: UPDATE one row's payload → verification names exactly that entry."""
    with ctx.db.read() as s:
        row = s.scalars(select(LedgerEntry).where(LedgerEntry.seq == 2)).one()
        forged = {**row.payload, "confirmed_at": "2020-01-01T00:00:00+00:00"}
    with ctx.db.write() as s:
        s.execute(text("UPDATE consent_ledger SET payload = :p WHERE seq = 2"), {"p": json.dumps(forged)})
    r = _verify(ctx, three_entries.tenant_id)
    assert not r.ok and r.first_broken_seq == 2 and r.checked == 1
    res = client.get("/api/v1/ledger/verify", headers=auth(api_token(ctx, "dpo")))
    assert res.status_code == 200
    assert res.json() == {"ok": False, "checked": 1, "first_broken_seq": 2, "reason": r.reason}


def test_sql_edit_of_the_action_column_is_caught(ctx, three_entries):
    """Turning a withdrawal back into a grant in the column the proof shows is tampering too."""
    with ctx.db.write() as s:
        s.execute(text("UPDATE consent_ledger SET action = 'granted' WHERE seq = 3"))
    r = _verify(ctx, three_entries.tenant_id)
    assert not r.ok and r.first_broken_seq == 3


def test_deleting_the_newest_ledger_entry_is_caught(ctx, three_entries):
    """Dropping the withdrawal at the end of the chain must not leave a chain that verifies."""
    with ctx.db.write() as s:
        s.execute(text("DELETE FROM consent_ledger WHERE seq = 3"))
    r = _verify(ctx, three_entries.tenant_id)
    assert not r.ok and r.first_broken_seq == 3 and "missing" in r.reason


def test_deleting_a_middle_ledger_entry_is_caught(ctx, three_entries):
    with ctx.db.write() as s:
        s.execute(text("DELETE FROM consent_ledger WHERE seq = 2"))
    r = _verify(ctx, three_entries.tenant_id)
    assert not r.ok and r.first_broken_seq in (2, 3) and "missing" in r.reason


def test_tampered_audit_log_is_named(ctx, demo):
    with ctx.db.write() as s:
        for i in range(3):
            append_audit(s, demo.tenant_id, "user:1", "contact.view", f"contact:{i}", {})
    with ctx.db.write() as s:
        s.execute(text("UPDATE audit_log SET subject = 'contact:99' WHERE seq = 2"))
    with ctx.db.read() as s:
        r = proof.verify_ledger(s, demo.tenant_id, "audit")
    assert not r.ok and r.first_broken_seq == 2


def test_each_tenant_has_its_own_chain(ctx, three_entries):
    b = _tenant_b(ctx)
    simulator.phone_send(ctx, b.account_id, "+4930123456", b.prefill)
    assert _verify(ctx, b.tenant_id).checked == 1
    assert _verify(ctx, three_entries.tenant_id).checked == 3


# --- invariant 4: tenant scoping ---------------------------------------------------------------------


@dataclass(frozen=True)
class TenantB:
    tenant_id: int
    account_id: int
    prefill: str
    token: str


def _tenant_b(ctx) -> TenantB:
    from konsent.flows.consent import optin

    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, "b-gmbh", "B GmbH", privacy_url="https://b.example/privacy")
        tenants.add_topic(s, t, "angebote", {"de": "Angebote", "en": "Offers"})
        tenants.set_consent_text(s, t, "de", "Ja, B GmbH darf mir schreiben.")
        acc = tenants.create_channel_account(
            ctx, s, t, "simulator", "Sim B", secrets_={"webhook_secret": secrets.token_urlsafe(16)}
        )
        pending = optin.request_opt_in(
            ctx, s, t, channel_account_id=acc.id, topic_slugs=["angebote"], locale="de"
        )
        token = staff.create_api_token(s, t, "b", "admin")
        return TenantB(t.id, acc.id, pending.prefill, token)


@pytest.fixture
def two_tenants(ctx, demo):
    """Tenant A (demo) and tenant B, each with one subscribed contact who wrote and got an answer."""
    subscribe(ctx, PHONE, ["angebote"])
    a_contact = contact_of(ctx, PHONE).id
    b = _tenant_b(ctx)
    simulator.phone_send(ctx, b.account_id, "+4930123456", b.prefill)
    drain(ctx)
    with ctx.db.read() as s:
        b_contact = s.scalars(select(Contact.id).where(Contact.tenant_id == b.tenant_id)).one()
        b_message = s.scalars(select(Message.id).where(Message.tenant_id == b.tenant_id)).first()
        a_message = s.scalars(select(Message.id).where(Message.tenant_id == demo.tenant_id)).first()
    simulator.phone_send(ctx, sim_account(ctx).id, "+4915100000077", "Hallo")  # a spare contact of A
    simulator.phone_send(ctx, b.account_id, "+4930123457", "Hallo")  # and of B
    return {
        "a": {
            "contact_id": a_contact,
            "message_id": a_message,
            "channel_account_id": sim_account(ctx).id,
            **_more_ids(ctx, demo.tenant_id, a_contact),
        },
        "b": {
            "contact_id": b_contact,
            "message_id": b_message,
            "channel_account_id": b.account_id,
            **_more_ids(ctx, b.tenant_id, b_contact),
        },
        "b_tenant": b,
    }


# Path parameters that are no contact, message or account id: topic slugs and locales are looked up
# inside the caller's tenant; re-consent campaign ids are checked in tests/setup/test_api_setup.py.
NOT_CONTACT_IDS = {"slug", "locale", "version", "campaign_id"}


def _more_ids(ctx, tenant_id: int, contact_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Ids of the other objects the API names in its paths, one set per tenant (M4)."""
    from konsent.flows.outbound import broadcast
    from konsent.flows.privacy import rights
    from konsent.flows.webhooks import endpoints
    from konsent.store.tables import Conversation, WebhookDelivery

    with ctx.db.write() as s:
        ep, _ = endpoints.create_endpoint(ctx, s, tenant_id, "test", "https://crm.example.com/h", ["*"])
        spare_ep, _ = endpoints.create_endpoint(ctx, s, tenant_id, "test", "https://crm.example.com/s", ["*"])
        req = rights.log_request(s, tenant_id, "access", "email", contact_id=contact_id)
        b = broadcast.create_broadcast(ctx, s, tenant_id, name="N", topic="angebote", text="Hallo")
        from konsent.flows.outbound import segments

        seg = segments.create_segment(s, tenant_id, "test", "S", {"locale": "de"})
        spare_seg = segments.create_segment(s, tenant_id, "test", "S2", {"locale": "en"})
        from konsent.flows.contact_data import attributes, labels

        label = labels.define_label(s, tenant_id, "test", "VIP")
        spare_label = labels.define_label(s, tenant_id, "test", "Messe")
        attr = {"type": "text", "purpose": "Zuordnung", "retention": "until_erasure", "name": ""}
        attribute = attributes.define_attribute(s, tenant_id, "test", key="kundennummer", **attr)
        spare_attribute = attributes.define_attribute(s, tenant_id, "test", key="stadt", **attr)
        s.flush()
        contacts_ = s.scalars(
            select(Contact.id).where(Contact.tenant_id == tenant_id).order_by(Contact.id)
        ).all()
        return {
            "conversation_id": s.scalars(
                select(Conversation.id).where(Conversation.contact_id == contact_id)
            ).first(),
            "broadcast_id": b.id,
            "segment_id": seg.id,
            "spare_segment_id": spare_seg.id,
            "label_id": label.id,
            "spare_label_id": spare_label.id,
            "attribute_id": attribute.id,
            "spare_attribute_id": spare_attribute.id,
            "endpoint_id": ep.id,
            "spare_endpoint_id": spare_ep.id,
            "delivery_id": s.scalars(
                select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == ep.id)
            ).first(),
            "request_id": req.id,
            "spare_contact_id": contacts_[-1],
        }


def _id_routes(app) -> list[tuple[str, str, list[str]]]:
    """Every /api/v1 operation whose path takes an id, from the OpenAPI document."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        if path.startswith("/api/v1/") and "{" in path:
            params = [p.split("}")[0] for p in path.split("{")[1:]]
            if set(params) <= NOT_CONTACT_IDS:
                continue
            for method in sorted(ops):
                out.append((method.upper(), path, params))
    return out


ID_ROUTES = {
    "/api/v1/contacts/{contact_id}",
    "/api/v1/contacts/{contact_id}/messages",
    "/api/v1/contacts/{contact_id}/withdraw",
    "/api/v1/contacts/{contact_id}/name",
    "/api/v1/contacts/{contact_id}/proof",
    "/api/v1/contacts/{contact_id}/proof.html",
    "/api/v1/messages/{message_id}",
    "/api/v1/messages/{message_id}/media",
}
# Routes under a message that tenant A's own fixture does not have: A's own id answers that the
# sub-resource is missing (its own message, so saying so leaks nothing); B's ids must still be 404.
OWN_MISSING = {"/api/v1/messages/{message_id}/media": "This message has no attachment."}


def _own_ok(path: str, response) -> bool:  # type: ignore[no-untyped-def]
    # 409: its own object, in a state that does not allow this (a draft broadcast cannot pause)
    if response.status_code < 400 or response.status_code in (409, 422):
        return True
    missing = OWN_MISSING.get(path)
    return response.status_code == 404 and missing is not None and missing in response.text


# bodies that pass validation, so what is checked is whose id it is
BODIES: dict[str, dict] = {
    "{segment_id}": {"name": "Umbenannt", "definition": {}},
    "{label_id}": {"name": "Umbenannt"},
    "{attribute_id}": {},
    "data": {},
    "budget": {"amount": None},
    "withdraw": {"purposes": None},
    "reply": {"text": "Hallo"},
    "notes": {"text": "n"},
    "state": {"state": "pending"},
    "labels": {"labels": []},
    "{contact_id}": {"locale": "de"},
}


def _call(client, method: str, path: str, ids: dict[str, int], params: list[str], headers: dict[str, str]):
    url = path
    if path.endswith("/erase"):  # destructive: on a spare contact, so later routes still find theirs
        ids = {**ids, "contact_id": ids["spare_contact_id"]}
    if method == "DELETE" and "{endpoint_id}" in path:
        ids = {**ids, "endpoint_id": ids["spare_endpoint_id"]}
    for name in ("segment_id", "label_id", "attribute_id"):  # destructive: on spare ones
        if method == "DELETE" and "{" + name + "}" in path:
            ids = {**ids, name: ids["spare_" + name]}
    for p in params:
        url = url.replace("{" + p + "}", str(ids.get(p, ids["contact_id"])))
    body = BODIES.get(path.rsplit("/", 1)[-1], {})
    if method == "GET":
        return client.get(url, headers=headers)
    return client.request(method, url, json=body, headers=headers)


def test_other_tenants_ids_are_404_on_every_api_route_with_token(ctx, app, client, two_tenants):
    """Invariant 4: tenant B's contact and message ids with tenant A's token → 404, and nothing leaks."""
    token = api_token(ctx, "owner")
    routes = _id_routes(app)
    assert {p for _, p, _ in routes} >= ID_ROUTES
    for method, path, params in routes:
        own = _call(client, method, path, two_tenants["a"], params, auth(token))
        assert _own_ok(path, own), (method, path, own.status_code, own.text)
        other = _call(client, method, path, two_tenants["b"], params, auth(token))
        assert other.status_code == 404, (method, path, other.status_code, other.text)
        assert "B GmbH" not in other.text and "+4930123456" not in other.text
        assert "attachment" not in other.text  # B's message is not even said to exist
    # B's contact is untouched: the withdraw route did not reach it.
    assert consent_states(ctx, two_tenants["b"]["contact_id"]) == {OFFERS: "active"}


def test_sending_to_another_tenants_contact_or_account_is_404(ctx, client, two_tenants):
    token = api_token(ctx, "owner")
    b = two_tenants["b"]
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": b["contact_id"], "purpose": OFFERS, "text": "Hallo"},
        headers=auth(token),
    )
    assert r.status_code == 404
    r = client.post(
        "/api/v1/messages",
        json={
            "contact_id": two_tenants["a"]["contact_id"],
            "purpose": OFFERS,
            "text": "Hallo",
            "channel_account_id": b["channel_account_id"],
        },
        headers=auth(token),
    )
    assert r.status_code == 404
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.author.like("token:%"))).all() == []


def test_other_tenants_ids_are_404_with_a_staff_session(ctx, app, client, two_tenants, demo):
    """Invariant 4 for the session cookie the admin uses (with its CSRF header on writes)."""
    from konsent.store.tables import StaffUser
    from konsent.web.deps import CSRF_HEADER, SESSION_COOKIE

    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.tenant_id == demo.tenant_id)).one()
        sess = staff.start_session(s, user, 1)
    client.cookies.set(SESSION_COOKIE, sess.cookie)
    headers = {CSRF_HEADER: sess.csrf_token}
    routes = _id_routes(app)
    assert {p for _, p, _ in routes} >= ID_ROUTES
    for method, path, params in routes:
        own = _call(client, method, path, two_tenants["a"], params, headers)
        assert _own_ok(path, own), (method, path, own.status_code)
        other = _call(client, method, path, two_tenants["b"], params, headers)
        assert other.status_code == 404, (method, path, other.status_code, other.text)


# Admin routes taking a channel account id (the admin pages are not in the OpenAPI document).
ADMIN_ACCOUNT_ROUTES = {
    ("POST", "/admin/channels/{account_id}/webhook"),
    ("POST", "/admin/channels/{account_id}/{action}"),  # edit, disable, enable, delete (#12)
}
# What the owner gets for their own account: the simulator has nothing to register; switching off works.
OWN_ACCOUNT_STATUS = {
    "/admin/channels/{account_id}/webhook": 422,
    "/admin/channels/{account_id}/{action}": 303,
}


def test_other_tenants_account_ids_are_404_on_admin_routes(ctx, app, client, two_tenants, demo):
    """Invariant 4: tenant A's owner naming tenant B's channel account → 404; nothing is called or audited."""
    from konsent.store.tables import AuditEntry
    from tests.inbox.test_role_matrix import app_routes
    from tests.web.test_admin_auth import as_role

    found = {(m, p) for m, p in app_routes(app) if p.startswith("/admin/") and "{account_id}" in p}
    assert found == ADMIN_ACCOUNT_ROUTES, "add new admin routes with an account id to ADMIN_ACCOUNT_ROUTES"
    csrf = as_role(ctx, client, "owner")
    for _method, path in sorted(ADMIN_ACCOUNT_ROUTES):
        mine = path.format(account_id=two_tenants["a"]["channel_account_id"], action="disable")
        own = client.post(mine, data={"csrf_token": csrf}, follow_redirects=False)
        assert own.status_code == OWN_ACCOUNT_STATUS[path], (path, own.status_code)
        theirs = path.format(account_id=two_tenants["b"]["channel_account_id"], action="disable")
        other = client.post(theirs, data={"csrf_token": csrf}, follow_redirects=False)
        assert other.status_code == 404, (path, other.status_code)
        assert "B GmbH" not in other.text
    with ctx.db.read() as s:
        subjects = s.scalars(select(AuditEntry.subject).where(AuditEntry.action.like("channel.%"))).all()
    assert f"channel:{two_tenants['b']['channel_account_id']}" not in subjects


def test_lists_only_show_own_tenant(ctx, client, two_tenants):
    token = api_token(ctx, "owner")
    a, b = two_tenants["a"], two_tenants["b"]
    ids = {c["id"] for c in client.get("/api/v1/contacts", headers=auth(token)).json()}
    assert ids == {a["contact_id"], a["spare_contact_id"]}
    b_ids = {
        c["id"] for c in client.get("/api/v1/contacts", headers=auth(two_tenants["b_tenant"].token)).json()
    }
    assert b_ids == {b["contact_id"], b["spare_contact_id"]}
    accounts = client.get("/api/v1/channels", headers=auth(token)).json()
    assert [a["id"] for a in accounts] == [two_tenants["a"]["channel_account_id"]]


# Admin routes that take the id of a tenant's message template (the registry, M1).
TEMPLATE_ID_ROUTES = {
    ("GET", "/admin/templates/{template_id}"),
    ("POST", "/admin/templates/{template_id}"),
    ("POST", "/admin/templates/{template_id}/delete"),
}


def _wa_template(ctx, tenant_id: int, ref: str) -> tuple[int, int]:
    """A WhatsApp account with one approved template for a tenant: (account id, template id)."""
    from konsent.domain.templates import TemplateSpec
    from konsent.flows.outbound import templates
    from konsent.store.tables import Tenant
    from konsent.web.deps import Caller

    with ctx.db.write() as s:
        acc = tenants.create_channel_account(
            ctx, s, s.get(Tenant, tenant_id), "whatsapp", f"WA {ref}", provider_ref=ref,
            secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
        )  # fmt: skip
        spec = TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}")
        row = templates.save_template(ctx, s, Caller(tenant_id, "owner", "test"), acc.id, spec)
        return acc.id, row.id


def test_other_tenants_template_ids_are_404_in_the_admin_and_cannot_be_sent(
    ctx, app, client, two_tenants, demo
):
    """Invariant 4 for the template registry: B's template id through A's session is a bare 404 on
    every route that takes one, and A's inbox refuses to send it; B's template is untouched."""
    from konsent.store.tables import Conversation, MessageTemplate, StaffUser
    from konsent.web.deps import CSRF_HEADER, SESSION_COOKIE
    from tests.inbox.test_role_matrix import app_routes

    a_acc, a_tpl = _wa_template(ctx, demo.tenant_id, "a")
    _b_acc, b_tpl = _wa_template(ctx, two_tenants["b_tenant"].tenant_id, "b")
    routes = {r for r in app_routes(app) if "{template_id}" in r[1]}
    assert routes == TEMPLATE_ID_ROUTES, "a new route with a template id needs a line here"
    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.tenant_id == demo.tenant_id)).one()
        user.must_change_password = False
        sess = staff.start_session(s, user, 1)
    client.cookies.set(SESSION_COOKIE, sess.cookie)
    form = {"csrf_token": sess.csrf_token, "account": str(a_acc), "name": "x", "language": "de",
            "category": "UTILITY", "status": "APPROVED", "body": "B GmbH {{1}}"}  # fmt: skip
    for method, path in sorted(TEMPLATE_ID_ROUTES, key=lambda r: (r[1].endswith("/delete"), r)):
        body = form if method == "POST" else None
        headers = {CSRF_HEADER: sess.csrf_token}
        own = client.request(
            method, path.format(template_id=a_tpl), data=body, headers=headers, follow_redirects=False
        )
        assert own.status_code in (200, 303), (method, path, own.status_code)
        assert own.headers.get("location", "/admin/templates").startswith("/admin/templates")
        other = client.request(
            method, path.format(template_id=b_tpl), data=body, headers=headers, follow_redirects=False
        )
        assert other.status_code == 404, (method, path, other.status_code)
        assert "rueckfrage" not in other.text and "B GmbH" not in other.text
    with ctx.db.read() as s:
        conv = s.scalars(select(Conversation.id).where(Conversation.tenant_id == demo.tenant_id)).first()
    assert conv is not None
    sent = client.post(
        f"/admin/inbox/{conv}/template?lang=en",
        data={"template_id": str(b_tpl), "var": ["x"], "csrf_token": sess.csrf_token},
    )
    assert sent.status_code == 422 and "not registered as approved" in sent.text
    with ctx.db.read() as s:
        b_row = s.get(MessageTemplate, b_tpl)
        assert b_row is not None and (b_row.body, b_row.version) == ("Hallo {{1}}", 1)
        assert s.scalars(select(Message).where(Message.template_id.is_not(None))).all() == []


# --- invariant 6: duplicate webhooks -----------------------------------------------------------------


def test_duplicate_webhook_delivery_stores_one_message_and_acts_once(ctx, demo):
    """Invariant 6: the provider retries the same STOP; one message row, one withdrawal, one answer."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    acc = sim_account(ctx)
    payload = {"messages": [{"id": "simin.dup-1", "from": PHONE, "text": "STOP", "timestamp": time.time()}]}
    first = receive_webhook(ctx, acc.route_key, signed_request(ctx, acc, payload))
    second = receive_webhook(ctx, acc.route_key, signed_request(ctx, acc, payload))
    assert (first.status, first.events, first.duplicates) == (200, 1, 0)
    assert (second.status, second.events, second.duplicates) == (200, 0, 1)
    with ctx.db.read() as s:
        assert len(s.scalars(select(Message).where(Message.provider_id == "simin.dup-1")).all()) == 1
        assert len(s.scalars(select(LedgerEntry).where(LedgerEntry.action == "withdrawn")).all()) == 1
    drain(ctx)
    assert len(phone_texts(ctx, PHONE)) == 2  # confirmation of the opt-in, one withdrawal answer


def test_duplicate_webhook_over_http_is_acknowledged_and_stored_once(ctx, demo, client):
    acc = sim_account(ctx)
    payload = {"messages": [{"id": "simin.dup-2", "from": PHONE, "text": "Hallo?", "timestamp": time.time()}]}
    for _ in range(2):
        req = signed_request(ctx, acc, payload)
        r = client.post(f"/webhooks/{acc.route_key}", content=req.body, headers=req.headers)
        assert r.status_code == 200
    with ctx.db.read() as s:
        assert len(s.scalars(select(Message).where(Message.provider_id == "simin.dup-2")).all()) == 1
        assert len(s.scalars(select(WebhookEvent)).all()) == 1


def test_webhook_with_bad_signature_is_rejected_and_stores_nothing(ctx, demo, client):
    acc = sim_account(ctx)
    body = json.dumps({"messages": [{"id": "x", "from": PHONE, "text": "STOP"}]}).encode()
    r = client.post(f"/webhooks/{acc.route_key}", content=body, headers={SIGNATURE_HEADER: "sha256=00"})
    assert r.status_code == 401
    assert count(ctx, Message) == 0 and count(ctx, Contact) == 0


def test_each_simulator_delivery_matches_one_sent_message_with_its_purpose(ctx, demo):
    """Invariant 1 bookkeeping: each simulator delivery matches a sent message with a purpose."""
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    enqueue(ctx, cid, OFFERS, "A")
    with ctx.db.write() as s:
        c = s.get(Contact, cid)
        assert c is not None
        messaging.enqueue_message(ctx, s, c, "service", OutboundContent(text="B"))
    drain(ctx)
    with ctx.db.read() as s:
        sent = s.scalars(select(Message).where(Message.direction == "out", Message.status == "sent")).all()
        mails = s.scalars(select(SimulatorMail.provider_id)).all()
    assert sorted(m.provider_id for m in sent) == sorted(mails)
    assert all(m.purpose in ("service", OFFERS) for m in sent)


def _inbound(provider_id: str, phone: str, text_: str):
    from konsent.domain.events import InboundMessage

    return InboundMessage(provider_id=provider_id, address=phone, at=utcnow(), text=text_)


def test_message_that_lost_a_race_creating_its_contact_is_stored_not_dropped(ctx, demo, monkeypatch):
    """Invariant 6 cuts both ways: a retry after a constraint race must not be taken for a duplicate."""
    from sqlalchemy.exc import IntegrityError

    from konsent.flows.inbound import messages
    from konsent.flows.inbound import receive as inbound

    real = messages.get_or_create_contact
    calls = {"n": 0}

    def losing_first(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:  # what PostgreSQL raises when a parallel request created the identity first
            raise IntegrityError("INSERT INTO contact_identities", {}, Exception("unique violation"))
        return real(*a, **k)

    monkeypatch.setattr(messages, "get_or_create_contact", losing_first)
    acc = sim_account(ctx)
    assert inbound.handle_event(ctx, acc.id, _inbound("simin.race-1", PHONE, "Hallo?")) is True
    assert inbound.handle_event(ctx, acc.id, _inbound("simin.race-1", PHONE, "Hallo?")) is False
    with ctx.db.read() as s:
        assert s.scalars(select(Message.provider_id).where(Message.direction == "in")).all() == [
            "simin.race-1"
        ]


def test_two_first_messages_of_a_new_contact_in_parallel_are_both_stored(ctx, demo, monkeypatch):
    """Two webhook requests with a new contact's first two messages, at the same time (PostgreSQL)."""
    from konsent.flows import contacts
    from konsent.flows.inbound import receive as inbound

    real_find = contacts.identity_and_contact

    def slow_find(*a, **k):
        found = real_find(*a, **k)
        if found is None:
            time.sleep(0.05)  # widen the window between "no such contact" and creating it
        return found

    monkeypatch.setattr(contacts, "identity_and_contact", slow_find)
    acc = sim_account(ctx)
    for round_ in range(4):
        phone = f"+49151000000{round_:02d}"
        barrier = threading.Barrier(2)
        results: list[object] = []

        def deliver(i: int, phone: str = phone, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                results.append(
                    inbound.handle_event(ctx, acc.id, _inbound(f"simin.{phone}.{i}", phone, f"m{i}"))
                )
            except Exception as exc:  # pragma: no cover - reported below
                results.append(exc)

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
        assert results == [True, True]
        c = contact_of(ctx, phone)
        with ctx.db.read() as s:
            n = s.scalars(
                select(Message.id).where(Message.contact_id == c.id, Message.direction == "in")
            ).all()
        assert len(n) == 2


@pytest.mark.parametrize("bad", [0, -1, 2**63, 10**40])
def test_ids_no_row_can_have_are_not_found_in_the_flows(ctx, demo, bad):
    """Admin pages and the API share these getters: an absurd id is a 404, never a database error."""
    from konsent.domain.errors import NotFound
    from konsent.flows import contacts, message_desk

    with ctx.db.read() as s:
        for get in (contacts.get_contact, message_desk.get_message, tenants.get_account):
            with pytest.raises(NotFound):
                get(s, demo.tenant_id, bad)


def test_opt_in_code_of_one_tenant_confirms_nothing_at_another(ctx, demo):
    """Invariant 4: a code is only known to the tenant whose widget issued it."""
    from tests.helpers import request_code

    pending = request_code(ctx, ["angebote"])
    b = _tenant_b(ctx)
    simulator.phone_send(ctx, b.account_id, PHONE, pending.prefill, locale="de")
    with ctx.db.read() as s:
        assert s.scalars(select(Consent)).all() == []
        assert s.scalars(select(LedgerEntry)).all() == []
    drain(ctx)
    [answer] = [m.text for m in simulator.phone_inbox(ctx, b.account_id, PHONE)]
    assert answer.startswith("Diesen Code kennen wir leider nicht")


@pytest.mark.skipif(not on_postgres(), reason="row locks: on SQLite every write transaction runs alone")
def test_claim_waits_for_a_withdrawal_in_flight_and_then_refuses(ctx, demo):
    """Invariants 1, 2 (PostgreSQL): a row queued by an enqueue that read the consent before a
    withdrawal committed is claimed while the withdrawal is still open; the claim must wait for it
    (FOR SHARE on the consent row) and refuse, instead of deciding on the old state."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    cid = contact_of(ctx, PHONE).id
    claimed: list[list[int]] = []
    with ctx.db.write() as w:  # the withdrawal, held open
        c = w.get(Contact, cid)
        assert c is not None
        assert consent.withdraw(w, c, [OFFERS], source="keyword", at=utcnow()) == [OFFERS]
        mid = enqueue(ctx, cid, OFFERS, "zu spät")  # committed; it read the consent as still active

        def worker() -> None:
            claimed.append([j.message_id for j in outbox.claim(ctx, "w", 10, utcnow(), 60)])

        th = threading.Thread(target=worker)
        th.start()
        th.join(0.5)
        assert th.is_alive(), "the claim decided without waiting for the withdrawal in flight"
    th.join(10)
    assert claimed == [[]]
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxRow.state).where(OutboxRow.message_id == mid)).one() == "refused"
