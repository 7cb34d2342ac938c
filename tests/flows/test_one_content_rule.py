"""The same content gets the same verdict on every sending path (#11 item 4, M3, CH3): the single
message door, the bulk door broadcasts use, and composing a broadcast. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from konsent.channels.base import OutboundContent
from konsent.domain.errors import InvalidInput
from konsent.flows.outbound import broadcast, messaging
from konsent.store.tables import Contact, Message
from tests.conftest import drain
from tests.flows.support import contact_of, count
from tests.helpers import demo_tenant, sim_account, subscribe

PHONE = "+4915112345678"
OFFERS = "newsletter:angebote"
CASES = {  # content → the code every path gives (the simulator has no templates)
    "no_templates": OutboundContent(template="weekly_offers", template_language="de"),
    "too_long": OutboundContent(text="x" * 4097),
    "bad_media": OutboundContent(text="Schau", media_url="http://cdn.example.com/a.jpg", media_kind="image"),
}


@pytest.fixture
def contact_id(ctx, demo) -> int:
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    return contact_of(ctx, PHONE).id


@pytest.mark.parametrize("code", sorted(CASES))
def test_single_and_bulk_enqueue_and_broadcast_refuse_the_same_content(ctx, contact_id, code):
    content = CASES[code]
    messages = count(ctx, Message)
    with pytest.raises(InvalidInput) as single, ctx.db.write() as s:
        contact = s.get(Contact, contact_id)
        messaging.enqueue_message(ctx, s, contact, OFFERS, content)  # type: ignore[arg-type]
    with ctx.db.write() as s:
        contact = s.get(Contact, contact_id)
        draft = messaging.Draft(contact, content, sim_account(ctx).id)  # type: ignore[arg-type]
        bulk = messaging.enqueue_many(ctx, s, [draft], OFFERS)
    assert bulk.skipped == {contact_id: code}
    with pytest.raises(InvalidInput) as composed, ctx.db.write() as s:
        broadcast.create_broadcast(
            ctx,
            s,
            demo_tenant(ctx).id,
            name="Angebote",
            topic="angebote",
            text=content.text,
            template=content.template,
            template_language=content.template_language,
            media_url=content.media_url,
            media_kind=content.media_kind,
            channel_account_id=sim_account(ctx).id,
        )
    assert single.value.message == composed.value.message
    assert count(ctx, Message) == messages
