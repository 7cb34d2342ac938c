"""Every documented webhook event is written by the action that causes it, in its transaction (M4)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from konsent.domain import webhooks as rules
from konsent.flows.consent import optin
from konsent.flows.inbound import simulator
from konsent.flows.inbox import conversation
from konsent.flows.outbound import broadcast as bc
from konsent.flows.privacy import rights as privacy
from konsent.flows.webhooks import endpoints as webhooks
from konsent.store.tables import Contact, WebhookDelivery
from konsent.store.types import utcnow
from tests.conftest import drain
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import demo_tenant, request_code, sim_account, subscribe
from tests.inbox.conftest import Crew, conversation_of, crew  # noqa: F401  (fixture)

PHONE = "+4915112340001"


def _events(ctx, event_type: str) -> list[dict]:
    with ctx.db.read() as s:
        rows = s.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event_type == event_type)
            .order_by(WebhookDelivery.id)
        ).all()
        return [r.payload["data"] for r in rows]


def _endpoint(ctx, events: list[str]) -> int:
    ctx.settings.allow_private_urls = True
    with ctx.db.write() as s:
        ep, _ = webhooks.create_endpoint(
            ctx, s, demo_tenant(ctx).id, "test", "http://127.0.0.1:9/hook", events
        )
        return ep.id


def test_every_documented_event_is_emitted_by_its_action(ctx, demo, crew: Crew, client):  # noqa: F811
    _endpoint(ctx, ["*"])
    tid = crew.tenant_id
    # contact.created, consent.granted, message.received: a visitor signs up from the widget
    subscribe(ctx, PHONE, ["angebote"])
    contact = contact_of(ctx, PHONE)
    assert _events(ctx, "contact.created") == [
        {"contact_id": contact.id, "channel_account_id": crew.account_id}
    ]
    granted = _events(ctx, "consent.granted")
    assert granted and granted[0]["purpose"] == "newsletter:angebote" and granted[0]["source"] == "widget"
    assert _events(ctx, "message.received")[0]["contact_id"] == contact.id

    # message.status: a message goes out and the phone reports it delivered
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": contact.id, "purpose": "service", "text": "Your order shipped"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 202, r.text
    drain(ctx)
    pid = simulator.phone_inbox(ctx, crew.account_id, PHONE)[-1].provider_id
    simulator.phone_ack(ctx, crew.account_id, [pid], "delivered")
    statuses = _events(ctx, "message.status")
    assert {"message_id": r.json()["id"], "status": "delivered", "status_reason": ""} in statuses

    # conversation.assigned and conversation.closed: staff work the inbox
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        conversation.assign(s, crew.caller("admin"), conv.id, assignee_id=crew.users["anna"].id, team_id=None)
        conversation.set_state(s, crew.caller("admin"), conv.id, "closed")
    assert _events(ctx, "conversation.assigned")[0]["assignee_id"] == crew.users["anna"].id
    assert _events(ctx, "conversation.closed") == [
        {"conversation_id": conv.id, "contact_id": contact.id, "closed_by": f"user:{crew.users['admin'].id}"}
    ]

    # broadcast.finished: a newsletter to the topic is sent out
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tid, name="N", topic="angebote", text="Hallo")
        bc.schedule(s, b, None)
        bid = b.id
    bc.queue_all(ctx, tid, bid)
    drain(ctx)
    bc.finish_sent(ctx, utcnow())
    assert [e["broadcast_id"] for e in _events(ctx, "broadcast.finished")] == [bid]

    # consent.withdrawn by keyword, with purpose and source
    simulator.phone_send(ctx, crew.account_id, PHONE, "STOP", locale="de")
    withdrawn = _events(ctx, "consent.withdrawn")
    assert (
        withdrawn and withdrawn[0]["purpose"] == "newsletter:angebote" and withdrawn[0]["source"] == "keyword"
    )

    # optin.expired: a code nobody sent back
    pending = request_code(ctx, ["angebote"])
    with ctx.db.write() as s:
        optin.expire_opt_ins(s, utcnow() + timedelta(hours=ctx.settings.optin_ttl_hours + 1))
    assert [e["optin_id"] for e in _events(ctx, "optin.expired")] == [pending.request_id]

    # privacy_request.opened / completed, contact.erased
    with ctx.db.write() as s:
        req = privacy.log_request(s, tid, "access", "email", contact_id=contact.id)
        privacy.close_request(s, tid, req.id, "user:1")
        privacy.staff_erase(ctx, s, tid, "user:1", contact.id, "email")
    assert _events(ctx, "privacy_request.opened")[0]["privacy_request_id"] == req.id
    assert _events(ctx, "privacy_request.completed")[0] == {
        "privacy_request_id": req.id,
        "kind": "access",
        "contact_id": contact.id,
        "state": "done",
    }
    assert _events(ctx, "contact.erased") == [{"contact_id": contact.id, "source": "staff"}]

    with ctx.db.read() as s:
        seen = set(s.scalars(select(WebhookDelivery.event_type)).all())
    assert seen >= set(rules.EVENT_TYPES), set(rules.EVENT_TYPES) - seen


def test_withdrawal_sources_name_the_door_it_came_through(ctx, demo, client):
    _endpoint(ctx, ["consent.withdrawn"])
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    r = client.post(f"/api/v1/contacts/{cid}/withdraw", json={}, headers=auth(api_token(ctx)))
    assert r.status_code == 200
    assert [e["source"] for e in _events(ctx, "consent.withdrawn")] == ["api"]


def test_an_action_that_rolls_back_leaves_no_event(ctx, demo):
    _endpoint(ctx, ["privacy_request.opened"])
    tid = demo_tenant(ctx).id
    try:
        with ctx.db.write() as s:
            privacy.log_request(s, tid, "access", "email")
            raise RuntimeError("the action fails after the event was written")
    except RuntimeError:
        pass
    assert _events(ctx, "privacy_request.opened") == []


def test_endpoints_get_only_the_events_they_asked_for(ctx, demo):
    wanted = _endpoint(ctx, ["contact.erased"])
    subscribe(ctx, PHONE, ["angebote"])
    with ctx.db.read() as s:
        types = {(d.endpoint_id, d.event_type) for d in s.scalars(select(WebhookDelivery))}
    assert types == set()  # nothing it asked for happened
    with ctx.db.write() as s:
        c = s.scalars(select(Contact)).first()
        privacy.staff_erase(ctx, s, demo_tenant(ctx).id, "user:1", c.id, "email")
    with ctx.db.read() as s:
        types = {(d.endpoint_id, d.event_type) for d in s.scalars(select(WebhookDelivery))}
    assert types == {(wanted, "contact.erased")}
    assert sim_account(ctx)  # the demo account is there
