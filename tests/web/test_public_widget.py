"""The opt-in widget's API as a website visitor's browser uses it (C1, C2, U2)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.flows.demo import CONSENT_TEXT
from konsent.store.tables import OptInRequest, OutboxRow
from tests.helpers import sim_account, sim_page_key

CONFIG = "/api/public/v1/widget/demo/config"
OPTIN = "/api/public/v1/widget/demo/optin"


def optin_rows(ctx) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(OptInRequest)) or 0)


def outbox_rows(ctx) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxRow)) or 0)


def test_config_shows_consent_text_verbatim_and_topics_unticked(client, demo, ctx):
    """C1: the widget shows the tenant's current consent text word for word; no topic is pre-ticked."""
    r = client.get(CONFIG, params={"lang": "de"})
    assert r.status_code == 200
    cfg = r.json()
    assert cfg["tenant"]["name"] == "Demo GmbH"
    assert cfg["consent"]["text"] == CONSENT_TEXT["de"]
    assert cfg["consent"]["version"] == 1
    assert cfg["privacy_url"].endswith("/demo/privacy")
    assert [t["slug"] for t in cfg["topics"]] == ["angebote", "produktnews"]
    assert [t["name"] for t in cfg["topics"]] == ["Angebote", "Produktneuheiten"]
    assert all(t["checked"] is False for t in cfg["topics"])
    assert cfg["channels"] == [{"id": sim_account(ctx).id, "kind": "simulator", "label": "Simulator"}]
    assert "STOP" in cfg["withdrawal_notice"] and "Rechtmäßigkeit" in cfg["withdrawal_notice"]


def test_german_and_english_config_differ(client, demo):
    """U2: every string the widget shows comes in the visitor's language."""
    de = client.get(CONFIG, params={"lang": "de"}).json()
    en = client.get(CONFIG, params={"lang": "en"}).json()
    assert en["consent"]["text"] == CONSENT_TEXT["en"]
    assert en["topics"][0]["name"] == "Offers"
    assert en["strings"]["submit"] == "Sign up" and de["strings"]["submit"] == "Anmelden"
    assert en["withdrawal_notice"].startswith("You can withdraw at any time by sending STOP")
    differing = [k for k in en["strings"] if en["strings"][k] != de["strings"][k]]
    assert len(differing) == len(en["strings"])  # no string left untranslated


def test_unknown_tenant_is_404(client, demo):
    r = client.get("/api/public/v1/widget/nobody/config")
    assert r.status_code == 404
    assert r.headers["access-control-allow-origin"] == "*"


def test_widget_api_allows_any_origin_without_credentials(client, demo):
    """The widget runs on the tenant's own site: CORS for any origin, never with cookies."""
    r = client.get(CONFIG, headers={"origin": "https://shop.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    pre = client.options(
        OPTIN,
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"]
    assert "x-frame-options" not in r.headers


def test_optin_returns_deep_link_and_qr_and_sends_nothing(client, demo, ctx):
    """C2: submitting stores one pending opt-in and shows link, QR code and code; nothing is queued."""
    acc = sim_account(ctx).id
    r = client.post(
        OPTIN,
        json={
            "channel_account_id": acc,
            "topics": ["angebote"],
            "lang": "en",
            "source_url": "https://shop.example/news",
            "consent_version": 1,
        },
        headers={"origin": "https://shop.example", "user-agent": "Browser/1.0"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["access-control-allow-origin"] == "*"
    assert body["code"].startswith("KS") and len(body["code"]) == 12
    assert body["deep_link"].startswith(f"http://testserver/simulator?account={sim_page_key(ctx)}&text=")
    assert body["code"] in body["prefill"]
    assert body["qr_svg"].startswith("<svg") and "<path" in body["qr_svg"]
    assert body["expires_at"]
    assert optin_rows(ctx) == 1
    assert outbox_rows(ctx) == 0
    with ctx.db.read() as s:
        req = s.scalars(select(OptInRequest)).one()
        assert req.confirmed_at is None
        assert req.topics == ["angebote"]
        assert req.source_url == "https://shop.example/news"
        assert req.locale == "en"
        assert req.ua_hash and "Browser" not in req.ua_hash


def _valid(ctx) -> dict:
    return {"channel_account_id": sim_account(ctx).id, "topics": ["angebote"], "lang": "de"}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"topics": []}, 422, "mindestens ein Thema"),
        ({"topics": ["lottery"]}, 422, "lottery"),
        ({"channel_account_id": 99999}, 422, "Messenger"),
        ({"channel_account_id": "x"}, 422, "Messenger"),
        ({"source_url": "https://shop.example/" + "a" * 500}, 422, "source_url"),
        ({"topics": ["angebote"] * 21}, 422, "höchstens 20 Themen"),
        ({"topics": ["a" * 101]}, 422, "topics"),
        ({"lang": "d" * 101}, 422, "lang"),
        ({"consent_version": 7}, 409, "Einwilligungstext"),
    ],
    ids=[
        "no-topic",
        "unknown-topic",
        "unknown-channel",
        "channel-not-a-number",
        "long-source-url",
        "too-many-topics",
        "long-topic",
        "long-lang",
        "stale-consent-text",
    ],
)
def test_bad_widget_input_is_refused_and_nothing_stored(client, demo, ctx, change, status, message):
    """Bad input: a clear, translated 4xx and no opt-in request stored (C2)."""
    r = client.post(OPTIN, json={**_valid(ctx), **change}, headers={"accept-language": "de"})
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert r.headers["access-control-allow-origin"] == "*"
    assert optin_rows(ctx) == 0


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        ("channel_account_id=1&topics=angebote", "application/x-www-form-urlencoded", 415),
        ("{not json", "application/json", 400),
        ('["angebote"]', "application/json", 400),
        ('{"topics": ["angebote"]}', "text/plain", 415),
    ],
    ids=["form-encoded", "broken-json", "json-array", "text-plain"],
)
def test_non_json_widget_submission_is_refused(client, demo, ctx, body, ctype, status):
    r = client.post(OPTIN, content=body, headers={"content-type": ctype, "accept-language": "en"})
    assert r.status_code == status
    assert r.json()["message"] == "Please send the form data as JSON."
    assert optin_rows(ctx) == 0


def test_optin_for_unknown_tenant_is_404_and_stores_nothing(client, demo, ctx):
    r = client.post("/api/public/v1/widget/nobody/optin", json=_valid(ctx))
    assert r.status_code == 404
    assert optin_rows(ctx) == 0


def test_other_tenants_channel_is_not_offered(client, demo, ctx):
    """Tenant scoping: a channel account of another tenant is an unknown channel here (invariant 4)."""
    from konsent.flows.organisation import tenants

    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other AG", default_locale="en")
        tenants.add_topic(s, other, "angebote", {"en": "Offers"})
        tenants.set_consent_text(s, other, "en", "Other consent")
        acc = tenants.create_channel_account(
            ctx, s, other, "simulator", "Sim", secrets_={"webhook_secret": "x"}
        )
        other_acc = acc.id
    r = client.post(OPTIN, json={**_valid(ctx), "channel_account_id": other_acc, "lang": "en"})
    assert r.status_code == 422
    assert r.json()["message"] == "Please choose one of the offered messengers."
    assert optin_rows(ctx) == 0
