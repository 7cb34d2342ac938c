"""Inbound media is kept as the provider's reference and fetched only when staff open it (CH2, S4)."""

from __future__ import annotations

from sqlalchemy import select

from konsent.flows.organisation import staff, tenants
from konsent.store.tables import AuditEntry, Message
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.helpers import agents_see_unrouted

USER = "4915112345678"
PICTURE = b"\xff\xd8\xff\xe0 a small jpeg"


def _token(ctx, slug: str = "demo") -> str:  # type: ignore[no-untyped-def]
    with ctx.db.write() as s:
        return staff.create_api_token(s, tenants.tenant_by_slug(s, slug), "media test", "agent")


def test_picture_is_stored_as_reference_and_streamed_on_demand(ctx, client, fake):  # noqa: F811
    conn = fx.connect(ctx, "whatsapp", fake)
    fake.user_media(fx.WA_PHONE_ID, USER, "1479537139650973", PICTURE, "image/jpeg", caption="Kaputt")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    with ctx.db.read() as s:
        msg = s.scalars(select(Message).where(Message.direction == "in")).one()
        assert PICTURE not in msg.body_sealed  # only the sealed reference is stored, never the bytes
    agents_see_unrouted(ctx)  # agent tokens: unrouted contacts only so (flows.inbox.scope)
    auth = {"authorization": f"Bearer {_token(ctx)}"}
    listed = client.get(f"/api/v1/contacts/{msg.contact_id}/messages", headers=auth).json()
    assert listed[0]["has_media"] is True and listed[0]["text"] == "Kaputt"
    got = client.get(f"/api/v1/messages/{msg.id}/media", headers=auth)
    assert got.status_code == 200 and got.content == PICTURE
    assert got.headers["content-type"] == "image/jpeg"
    with ctx.db.read() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "message.media.view")).first()


def test_message_without_attachment_or_of_another_tenant_is_404(ctx, client, fake):  # noqa: F811
    conn = fx.connect(ctx, "whatsapp", fake)
    fake.user_text(fx.WA_PHONE_ID, USER, "Hallo")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    with ctx.db.write() as s:
        msg_id = s.scalars(select(Message.id).where(Message.direction == "in")).one()
        tenants.create_tenant(ctx, s, "other", "Other GmbH")
    own = client.get(f"/api/v1/messages/{msg_id}/media", headers={"authorization": f"Bearer {_token(ctx)}"})
    assert own.status_code == 404
    foreign = client.get(
        f"/api/v1/messages/{msg_id}/media", headers={"authorization": f"Bearer {_token(ctx, 'other')}"}
    )
    assert foreign.status_code == 404
