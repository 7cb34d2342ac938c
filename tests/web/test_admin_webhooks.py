"""Admin webhooks page: add an endpoint (secret shown once), rotate, the delivery log and redeliver (M4)."""

from __future__ import annotations

import re

from sqlalchemy import select

from konsent.store.tables import WebhookDelivery
from tests.flows.support import contact_of
from tests.helpers import subscribe
from tests.inbox.conftest import Crew, crew, sign_in  # noqa: F401  (fixture)


def test_admin_adds_an_endpoint_sees_the_secret_once_and_redelivers(ctx, client, crew: Crew):  # noqa: F811
    ctx.settings.allow_private_urls = True
    csrf = sign_in(client, ctx, crew.users["admin"])
    r = client.post(
        "/admin/webhooks",
        data={
            "csrf_token": csrf,
            "url": "http://127.0.0.1:9/hook",
            "events": ["contact.created", "consent.granted"],
        },
    )
    assert r.status_code == 200
    secret = re.search(r"whsec_[A-Za-z0-9_-]+", r.text)
    assert secret is not None
    listing = client.get("/admin/webhooks").text
    assert "127.0.0.1:9/hook" in listing and secret.group(0) not in listing  # shown once only

    subscribe(ctx, "+4915112340005", ["angebote"])
    assert contact_of(ctx, "+4915112340005")
    with ctx.db.read() as s:
        d = s.scalars(select(WebhookDelivery)).first()
        assert d is not None
        eid, did = d.endpoint_id, d.id
    log = client.get(f"/admin/webhooks/{eid}")
    assert log.status_code == 200 and "contact.created" in log.text
    again = client.post(
        f"/admin/webhooks/{eid}/redeliver",
        data={"csrf_token": csrf, "delivery_id": str(did)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    rotated = client.post(f"/admin/webhooks/{eid}/rotate", data={"csrf_token": csrf})
    new = re.search(r"whsec_[A-Za-z0-9_-]+", rotated.text)
    assert new is not None and new.group(0) != secret.group(0)


def test_a_private_url_is_refused_with_a_message(ctx, client, crew: Crew):  # noqa: F811
    csrf = sign_in(client, ctx, crew.users["admin"])
    r = client.post(
        "/admin/webhooks",
        data={"csrf_token": csrf, "url": "https://192.168.1.5/hook", "events": ["contact.created"]},
    )
    assert r.status_code == 422 and "url refused" in r.text


def test_agents_cannot_open_the_webhooks_page(ctx, client, crew: Crew):  # noqa: F811
    sign_in(client, ctx, crew.users["anna"])
    assert client.get("/admin/webhooks").status_code == 403
