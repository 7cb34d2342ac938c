"""Admin setup pages: ledger verification and channel accounts (C3, CH1, S1, S7)."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from konsent.flows.organisation import tenants
from konsent.store.tables import AuditEntry, ChannelAccount, LedgerEntry
from tests.conftest import drain
from tests.helpers import subscribe
from tests.web.test_admin_auth import as_role, form_token


def test_ledger_button_reports_intact_chain_then_names_the_tampered_entry(ctx, demo, client):
    """C3 / invariant 3: the admin button verifies the chain and names the first changed entry."""
    subscribe(ctx, "+4915112345678", ["angebote"])
    subscribe(ctx, "+4915187654321", ["angebote", "produktnews"])
    drain(ctx)
    token = as_role(ctx, client, "dpo")
    en = {"accept-language": "en"}
    r = client.post("/admin/ledger/verify", data={"csrf_token": token, "chain": "consent"}, headers=en)
    assert r.status_code == 200 and "The chain is intact." in r.text and "3 entries checked." in r.text
    with ctx.db.write() as s:
        row = s.scalars(select(LedgerEntry).where(LedgerEntry.seq == 2)).one()
        forged = {**row.payload, "source_url": "http://elsewhere.example/"}
        s.execute(update(LedgerEntry).where(LedgerEntry.id == row.id).values(payload=forged))
    r = client.post("/admin/ledger/verify", data={"csrf_token": token, "chain": "consent"}, headers=en)
    assert "The chain is broken at entry 2." in r.text and "entry content was changed" in r.text
    de = client.post(
        "/admin/ledger/verify", data={"csrf_token": token}, headers={"accept-language": "de"}
    ).text
    assert "Die Kette ist bei Eintrag 2 gebrochen." in de
    assert client.post("/admin/ledger/verify", data={"chain": "consent"}).status_code == 403


def test_audit_log_can_be_verified_too(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    r = client.post(
        "/admin/ledger/verify",
        data={"csrf_token": token, "chain": "audit"},
        headers={"accept-language": "en"},
    )
    assert "The chain is intact." in r.text and "audit log" in r.text


def test_channel_page_shows_webhook_url_and_where_data_is_processed(ctx, demo, client):
    """S7: the webhook URL to configure and the provider's processing region and safeguard."""
    as_role(ctx, client, "admin")
    with ctx.db.read() as s:
        acc = tenants.channel_accounts(s, demo.tenant_id)[0]
    html = client.get("/admin/channels", headers={"accept-language": "en"}).text
    assert f"http://testserver/webhooks/{acc.route_key}" in html
    assert "this installation" in html and "no transfer" in html
    assert ">set<" in html  # the demo's signing secret is stored, its value is not shown
    with ctx.db.read() as s:
        secret = tenants.account_config(ctx, s, acc).secrets["webhook_secret"]
    assert secret and secret not in html
    de = client.get("/admin/channels", headers={"accept-language": "de"}).text
    assert "diese Installation" in de and "keine Übermittlung" in de


def test_connecting_a_simulator_account_seals_its_secret(ctx, demo, client):
    """CH1 / S1: a new account from the form; the secret is stored sealed and never echoed."""
    token = as_role(ctx, client, "owner")
    r = client.post(
        "/admin/channels",
        data={
            "csrf_token": token,
            "kind": "simulator",
            "name": "Second phone",
            "webhook_secret": "s3cret-value-xyz",
        },
        headers={"accept-language": "en"},
    )
    assert r.status_code == 200 and "The channel account is connected." in r.text
    assert "Second phone" in r.text and "s3cret-value-xyz" not in r.text
    with ctx.db.read() as s:
        acc = s.scalars(select(ChannelAccount).where(ChannelAccount.name == "Second phone")).one()
        assert acc.tenant_id == demo.tenant_id and acc.kind == "simulator"
        assert b"s3cret-value-xyz" not in (acc.secrets_sealed or b"")
        assert tenants.account_config(ctx, s, acc).secrets["webhook_secret"] == "s3cret-value-xyz"
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action == "channel.create")).all()
    assert f"/webhooks/{acc.route_key}" in r.text


def test_channel_form_rejects_bad_input_and_stores_nothing(ctx, demo, client):
    token = as_role(ctx, client, "owner")
    with ctx.db.read() as s:
        before = len(tenants.channel_accounts(s, demo.tenant_id))
    for data in (
        {"kind": "simulator", "name": ""},
        {"kind": "no-such-channel", "name": "X"},
        {"kind": "simulator", "name": "x" * 300},
    ):
        r = client.post("/admin/channels", data={"csrf_token": token, **data})
        assert r.status_code == 422, data
    assert client.post("/admin/channels", data={"kind": "simulator", "name": "X"}).status_code == 403
    with ctx.db.read() as s:
        assert len(tenants.channel_accounts(s, demo.tenant_id)) == before


def test_channel_setup_needs_the_settings_permission(ctx, demo, client):
    """S3: agents and viewers neither see nor change channel accounts."""
    token = as_role(ctx, client, "agent")
    assert client.get("/admin/channels").status_code == 403
    r = client.post("/admin/channels", data={"csrf_token": token, "kind": "simulator", "name": "X"})
    assert r.status_code == 403
    assert 'href="/admin/channels"' not in client.get("/admin").text
    assert form_token(client.get("/admin").text) == token


def test_ledger_button_names_a_deleted_entry(ctx, demo, client):
    """C3: removing a ledger row is found as well, in the admin's language."""
    subscribe(ctx, "+4915112345678", ["angebote", "produktnews"])
    subscribe(ctx, "+4915187654321", ["angebote"])
    drain(ctx)
    with ctx.db.write() as s:
        s.execute(delete(LedgerEntry).where(LedgerEntry.seq == 2))
    token = as_role(ctx, client, "owner")
    html = client.post(
        "/admin/ledger/verify", data={"csrf_token": token}, headers={"accept-language": "de"}
    ).text
    assert "Eintrag 2 fehlt" in html
