# ruff: noqa: F811
"""POST /api/v1/messages with media by link and with registered templates (M4, M1, CH3, C5).

An integration sends what an agent can send from the inbox: text, media by https link with
a caption, or a template registered as APPROVED on the account (the only way to write first
outside WhatsApp's 24-hour window). Anything else is refused with a reason and stores nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from konsent.domain.templates import TemplateSpec
from konsent.flows.outbound import templates
from konsent.store.tables import AuditEntry, ContactIdentity, Message, OutboxRow
from konsent.store.types import utcnow
from konsent.web.deps import Caller
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.channels.test_meta_consent_core import hand_over
from tests.conftest import drain
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import subscribe

WA_USER = "4915112345678"


def _stored(ctx: Any) -> tuple[int, int]:
    with ctx.db.read() as s:
        out = s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))
        return int(out or 0), int(s.scalar(select(func.count()).select_from(OutboxRow)) or 0)


@pytest.fixture
def wa(ctx, client, fake):  # type: ignore[no-untyped-def]
    """A WhatsApp account on the Meta fake; the customer has written once (no bot greeting waits)."""
    conn = fx.connect(ctx, "whatsapp", fake)
    fake.status_flow = ()
    hand_over(client, conn, [fake.user_text(fx.WA_PHONE_ID, WA_USER, "Hallo, eine Frage")])
    drain(ctx)
    fake.take_outgoing()
    fake.accepted.clear()
    with ctx.db.read() as s:
        contact_id = s.scalars(select(Message.contact_id).where(Message.direction == "in")).one()
    return conn, contact_id


def _register(ctx: Any, account_id: int, status: str = "APPROVED") -> int:
    with ctx.db.write() as s:
        who = Caller(_tenant(ctx, account_id), "owner", "user:1", None, "csrf")
        spec = TemplateSpec(
            name="order_update", language="de", category="UTILITY", status=status,
            body="Hallo {{1}}, Ihre Bestellung {{2}} ist unterwegs.",
        )  # fmt: skip
        return templates.save_template(ctx, s, who, account_id, spec).id


def _tenant(ctx: Any, account_id: int) -> int:
    from konsent.store.tables import ChannelAccount

    with ctx.db.read() as s:
        return s.get(ChannelAccount, account_id).tenant_id


def _close_window(ctx: Any, contact_id: int) -> None:
    with ctx.db.write() as s:
        s.execute(
            update(ContactIdentity)
            .where(ContactIdentity.contact_id == contact_id)
            .values(last_inbound_at=utcnow() - timedelta(days=2))
        )


def test_media_by_link_goes_out_with_its_caption(ctx, client, fake, wa):
    """M4, CH3: an image by https link with a caption reaches WhatsApp as an image message."""
    _, contact_id = wa
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": contact_id, "purpose": "service", "text": "Ihr Paket",
              "media_url": "https://cdn.example.com/p/4711.jpg", "media_kind": "image"},
        headers=auth(api_token(ctx)),
    )  # fmt: skip
    assert r.status_code == 202, r.text
    drain(ctx)
    body = fake.accepted[-1]["body"]
    assert body["type"] == "image"
    assert body["image"] == {"link": "https://cdn.example.com/p/4711.jpg", "caption": "Ihr Paket"}


def test_outside_the_window_only_a_registered_approved_template_goes_out(ctx, client, fake, wa):
    """M1, CH3, C5: free text after 24 hours is refused (409); the registered template is sent with
    its variables, and the message records which template and which version went out."""
    conn, contact_id = wa
    _close_window(ctx, contact_id)
    token = api_token(ctx)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": contact_id, "purpose": "service", "text": "Ihre Bestellung ist unterwegs"},
        headers=auth(token),
    )
    assert r.status_code == 409 and r.json()["code"] == "window_closed"
    tid = _register(ctx, conn.account_id)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": contact_id, "purpose": "service",
              "template": {"name": "order_update", "language": "de", "params": ["Anna", "4711"]}},
        headers=auth(token),
    )  # fmt: skip
    assert r.status_code == 202, r.text
    drain(ctx)
    body = fake.accepted[-1]["body"]
    assert body["type"] == "template"
    assert body["template"]["name"] == "order_update"
    assert body["template"]["language"]["code"] == "de"
    params = [p["text"] for c in body["template"]["components"] for p in c.get("parameters", [])]
    assert params == ["Anna", "4711"]
    with ctx.db.read() as s:
        msg = s.get(Message, r.json()["id"])
        assert (msg.template_id, msg.template_version) == (tid, 1)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "message.send")).all()[-1]
        assert (entry.payload["template"], entry.payload["version"]) == (tid, 1)


@pytest.mark.parametrize(
    ("template", "status", "reason"),
    [
        ({"name": "order_update", "language": "de", "params": ["Anna"]}, "APPROVED", "variable"),
        ({"name": "order_update", "language": "en", "params": ["Anna", "1"]}, "APPROVED", "registered"),
        ({"name": "order_update", "language": "de", "params": ["Anna", "1"]}, "PENDING", "registered"),
    ],
)
def test_a_template_that_is_not_approved_as_asked_is_refused_and_nothing_is_stored(
    ctx, client, fake, wa, template, status, reason
):
    """M1: a wrong variable count, another language, or a template still PENDING at Meta."""
    conn, contact_id = wa
    _register(ctx, conn.account_id, status=status)
    before = _stored(ctx)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": contact_id, "purpose": "service", "template": template},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422, r.text
    assert reason in r.json()["message"].lower()
    assert _stored(ctx) == before


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"text": "Hallo", "template": {"name": "order_update", "language": "de"}}, "text"),
        ({"media_url": "https://cdn.example.com/a.pdf"}, None),  # no kind
        ({"media_url": "http://cdn.example.com/a.pdf", "media_kind": "document"}, None),  # not https
        ({"text": "Hallo", "media_kind": "sticker", "media_url": "https://x.example/a"}, "media_kind"),
        ({"text": "Hallo", "medai_url": "https://cdn.example.com/a.jpg"}, "medai_url"),  # misspelt
        ({"template": {"name": "order_update", "language": "de", "params": ["x"] * 21}}, "template"),
    ],
)
def test_bad_media_or_template_fields_are_422_and_store_nothing(ctx, client, demo, extra, field):
    """M4: a clear 422 naming the field where there is one; nothing queued."""
    subscribe(ctx, "+4915100001111", ["angebote"])
    cid = contact_of(ctx, "+4915100001111").id
    before = _stored(ctx)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": cid, "purpose": "newsletter:angebote", **extra},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422, r.text
    if field:
        assert field in {e["field"].split(".")[0] for e in r.json()["detail"]}, r.json()
    assert _stored(ctx) == before


def test_the_simulator_takes_media_but_has_no_templates(ctx, client, demo):
    """CH3: media by link goes to the simulated phone; a template is refused with the reason."""
    from konsent.flows.inbound import simulator
    from tests.helpers import sim_account

    subscribe(ctx, "+4915100002222", ["angebote"])
    cid = contact_of(ctx, "+4915100002222").id
    token = api_token(ctx)
    r = client.post(
        "/api/v1/messages",
        json={
            "contact_id": cid,
            "purpose": "newsletter:angebote",
            "template": {"name": "x_y", "language": "de"},
        },
        headers=auth(token),
    )
    assert r.status_code == 422 and "no message templates" in r.json()["message"], r.text
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": cid, "purpose": "newsletter:angebote", "text": "Neu im Laden",
              "media_url": "https://cdn.example.com/a.jpg", "media_kind": "image"},
        headers=auth(token),
    )  # fmt: skip
    assert r.status_code == 202, r.text
    drain(ctx)
    got = simulator.phone_inbox(ctx, sim_account(ctx).id, "+4915100002222")[-1]
    assert (got.text, got.media) == (
        "Neu im Laden",
        {"url": "https://cdn.example.com/a.jpg", "kind": "image", "filename": ""},
    )
