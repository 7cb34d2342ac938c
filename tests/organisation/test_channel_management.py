"""Channel accounts managed from the admin: switch off/on, edit, check fields, delete, health (#12, U5)."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery import outbox
from konsent.flows.inbound import simulator
from konsent.flows.organisation import channel_admin, tenants
from konsent.store.tables import AuditEntry, ChannelAccount, OutboxRow, SimulatorMail
from konsent.store.types import utcnow
from tests.conftest import drain
from tests.flows.support import contact_of, enqueue, message_status, outbox_state
from tests.helpers import phone_texts, sim_account, subscribe
from tests.web.test_admin_auth import as_role

PHONE = "+4915112340001"
TG = {"bot_token": "123456:ABCdef", "secret_token": "s3cret-token"}


def _switch(client, token: str, account_id: int, action: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/admin/channels/{account_id}/{action}",
        data={"csrf_token": token},
        headers={"accept-language": "en"},
    )


def _sent_to_provider(ctx) -> int:  # type: ignore[no-untyped-def]
    """Messages the simulator provider accepted (its mailbox), whatever the account's state."""
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(SimulatorMail)) or 0)


def _accounts(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ChannelAccount)) or 0)


def test_a_switched_off_channel_sends_nothing_and_its_queue_goes_out_when_switched_on(ctx, demo, client):
    """U5: switching off holds queued messages (not lost, not sent); switching on sends them."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    before = _sent_to_provider(ctx)
    contact = contact_of(ctx, PHONE)
    mid = enqueue(ctx, contact.id, "newsletter:angebote", "Neue Angebote diese Woche")
    token = as_role(ctx, client, "admin")
    acc = sim_account(ctx)
    r = _switch(client, token, acc.id, "disable")
    assert r.status_code == 200 and "queued messages are held" in r.text
    assert outbox_state(ctx, mid) == "held"
    drain(ctx)
    assert _sent_to_provider(ctx) == before  # nothing went to the provider
    assert outbox_state(ctx, mid) == "held" and message_status(ctx, mid)[0] == "queued"
    page = client.get("/admin/channels", headers={"accept-language": "en"}).text
    assert "switched off" in page and "Messages held until switched on" in page
    r = _switch(client, token, acc.id, "enable")
    assert r.status_code == 200
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1] == "Neue Angebote diese Woche"
    assert outbox_state(ctx, mid) == "done"


def test_a_row_that_becomes_due_while_the_channel_is_off_is_held_at_claim_time(ctx, demo):
    """A retry (or anything queued) of a switched-off account is held by the worker, never sent."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    before = _sent_to_provider(ctx)
    acc = sim_account(ctx)
    contact_id = contact_of(ctx, PHONE).id
    with ctx.db.write() as s:
        s.get(ChannelAccount, acc.id).active = False  # off without the flow: rows stay `available`
    mid = enqueue(ctx, contact_id, "newsletter:angebote", "Angebot")
    assert outbox_state(ctx, mid) == "available"
    drain(ctx)
    assert _sent_to_provider(ctx) == before
    with ctx.db.read() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.message_id == mid)).one()
        assert row.state == "held" and row.attempt == 0  # no attempt spent
    with ctx.db.write() as s:
        channel_admin.set_active(s, demo.tenant_id, "test", acc.id, True)
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1] == "Angebot"


def test_invalid_telegram_bot_username_is_refused_with_a_clear_message_and_nothing_saved(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    n = _accounts(ctx)
    for bad in ("my bot", "kaffee", "1kaffeebot", "ab_bot", "x" * 40 + "bot"):
        r = client.post(
            "/admin/channels",
            data={"csrf_token": token, "kind": "telegram", "name": "Shop", "bot_username": bad, **TG},
            headers={"accept-language": "en"},
        )
        assert r.status_code == 422, bad
        assert "Bot username: 5 to 32 letters, digits or _" in r.text
    de = client.post(
        "/admin/channels",
        data={"csrf_token": token, "kind": "telegram", "name": "Shop", "bot_username": "kaffee", **TG},
        headers={"accept-language": "de"},
    )
    assert "endend auf bot" in de.text
    assert _accounts(ctx) == n
    ok = client.post(
        "/admin/channels",
        data={"csrf_token": token, "kind": "telegram", "name": "Shop", "bot_username": "Kaffee_Bot", **TG},
    )
    assert ok.status_code == 200 and _accounts(ctx) == n + 1


def _telegram(ctx, demo) -> ChannelAccount:  # type: ignore[no-untyped-def]
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, "demo")
        return tenants.create_channel_account(
            ctx, s, t, "telegram", "Shop", settings={"bot_username": "kaffee_bot"}, secrets_=dict(TG)
        )


def test_edit_changes_settings_keeps_empty_secrets_and_saves_nothing_when_one_field_is_wrong(
    ctx, demo, client
):
    acc = _telegram(ctx, demo)
    token = as_role(ctx, client, "admin")
    url = f"/admin/channels/{acc.id}/edit"
    r = client.post(
        url,
        data={
            "csrf_token": token,
            "name": "Shop neu",
            "bot_username": "other_bot",
            "bot_token": "",
            "secret_token": "",
        },
    )
    assert r.status_code == 200
    with ctx.db.read() as s:
        a = s.get(ChannelAccount, acc.id)
        cfg = tenants.account_config(ctx, s, a)
        assert a.name == "Shop neu" and a.settings["bot_username"] == "other_bot"
        assert cfg.secrets == TG  # left empty: kept
    client.post(
        url, data={"csrf_token": token, "name": "Shop neu", "bot_username": "other_bot", "bot_token": "9:new"}
    )
    with ctx.db.read() as s:
        assert tenants.account_config(ctx, s, s.get(ChannelAccount, acc.id)).secrets["bot_token"] == "9:new"
    bad = client.post(
        url,
        data={"csrf_token": token, "name": "Renamed", "bot_username": "no", "bot_token": "10:newer"},
        headers={"accept-language": "en"},
    )
    assert bad.status_code == 422 and "Bot username:" in bad.text
    with ctx.db.read() as s:
        a = s.get(ChannelAccount, acc.id)
        assert a.name == "Shop neu" and a.settings["bot_username"] == "other_bot"
        assert tenants.account_config(ctx, s, a).secrets["bot_token"] == "9:new"
    html = client.get("/admin/channels").text
    assert "9:new" not in html and "123456:ABCdef" not in html  # secrets are never shown
    assert 'name="api_base"' not in html.split('id="account-' + str(acc.id))[1].split("</article>")[0]
    with ctx.db.read() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.action == "channel.edit")).all()
    assert len(actions) == 2


def test_delete_only_when_unused(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    acc = _telegram(ctx, demo)
    sim = sim_account(ctx)
    simulator.phone_send(ctx, sim.id, PHONE, "Hallo")  # the simulator now has a contact
    r = _switch(client, token, sim.id, "delete")
    assert r.status_code == 409 and "switch it off instead" in r.text
    assert _switch(client, token, acc.id, "delete").status_code == 200
    with ctx.db.read() as s:
        assert s.get(ChannelAccount, acc.id) is None and s.get(ChannelAccount, sim.id) is not None


def test_agents_cannot_manage_channels_and_other_tenants_accounts_are_not_found(ctx, demo, client):
    acc = sim_account(ctx)
    agent = as_role(ctx, client, "agent")
    assert _switch(client, agent, acc.id, "disable").status_code == 403
    client.cookies.clear()
    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        foreign = tenants.create_channel_account(ctx, s, other, "simulator", "Sim")
    token = as_role(ctx, client, "owner")
    assert _switch(client, token, foreign.id, "disable").status_code == 404
    assert _switch(client, token, 10**30, "disable").status_code == 404
    with ctx.db.read() as s:
        assert s.get(ChannelAccount, foreign.id).active and s.get(ChannelAccount, acc.id).active


def test_health_shows_last_inbound_last_send_and_the_last_provider_error_with_failures_counted(
    ctx, demo, client
):
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    acc = sim_account(ctx)
    with ctx.db.read() as s:
        a = s.get(ChannelAccount, acc.id)
        assert a.last_inbound_at is not None and a.last_sent_at is not None and a.failing_sends == 0
    # two sends fail at the provider
    for text in ("eins", "zwei"):
        enqueue(ctx, contact_of(ctx, PHONE).id, "newsletter:angebote", text)
    now = utcnow()
    jobs = outbox.claim(ctx, "w", 10, now + timedelta(seconds=1), 60)
    assert len(jobs) == 2
    failed = SendResult(SendOutcome.TRANSIENT, error_code="131000", error_text="Something went wrong")
    outbox.complete(ctx, [(j, failed) for j in jobs], now + timedelta(seconds=1))
    with ctx.db.read() as s:
        a = s.get(ChannelAccount, acc.id)
        assert a.failing_sends == 2 and a.last_error == "131000: Something went wrong"
    token = as_role(ctx, client, "admin")
    page = client.get("/admin/channels", headers={"accept-language": "en"}).text
    assert "sends failing" in page and "131000: Something went wrong" in page
    board = client.get("/admin", headers={"accept-language": "en"}).text
    assert "131000: Something went wrong" in board and "sends failing" in board
    assert token
    # the retries succeed later: the streak ends
    with time_machine.travel(now + timedelta(minutes=5), tick=True):
        drain(ctx)
    with ctx.db.read() as s:
        assert s.get(ChannelAccount, acc.id).failing_sends == 0


def test_a_broadcast_waiting_for_a_switched_off_channel_is_not_done_and_its_held_rows_can_be_cancelled(
    ctx, demo
):
    """Held rows count as queued: the broadcast stays `sending`; cancelling it cancels them too."""
    from konsent.flows.outbound import broadcast as bc
    from tests.broadcast.seed import seed

    acc = sim_account(ctx)
    seed(ctx, acc.id, ["+4915110000001", "+4915110000002"])
    with ctx.db.write() as s:
        bid = bc.create_broadcast(ctx, s, demo.tenant_id, name="Nov", topic="angebote", text="Angebot!").id
        bc.schedule(s, bc.get_broadcast(s, demo.tenant_id, bid, lock=True), None, actor="test")
    assert bc.queue_all(ctx, demo.tenant_id, bid)
    with ctx.db.write() as s:
        assert channel_admin.set_active(s, demo.tenant_id, "test", acc.id, False) == 2
    drain(ctx)
    bc.finish_sent(ctx, utcnow())
    with ctx.db.write() as s:
        b = bc.get_broadcast(s, demo.tenant_id, bid)
        assert b.state == "sending"
        bc.cancel(s, b, actor="test")
    with ctx.db.read() as s:
        states = s.scalars(select(OutboxRow.state).where(OutboxRow.broadcast_id == bid)).all()
    assert sorted(states) == ["cancelled", "cancelled"]


def test_a_withdrawal_cancels_the_contacts_held_messages_too(ctx, demo):
    """Invariant 2 holds for held rows: STOP cancels them in the same transaction."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    acc = sim_account(ctx)
    contact_id = contact_of(ctx, PHONE).id
    mid = enqueue(ctx, contact_id, "newsletter:angebote", "Angebot")
    with ctx.db.write() as s:
        channel_admin.set_active(s, demo.tenant_id, "test", acc.id, False)
    assert outbox_state(ctx, mid) == "held"
    from konsent.flows.consent.grants import withdraw
    from konsent.store.tables import Contact

    with ctx.db.write() as s:
        withdraw(s, s.get(Contact, contact_id), None, source="test", at=utcnow())
    assert outbox_state(ctx, mid) == "cancelled"
