# ruff: noqa: F811
"""An agent's reply may carry media by https link, where the channel sends it (M1, CH3)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation
from konsent.store.tables import Contact, ContactIdentity, Conversation, Message
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.inbox.conftest import Crew, conversation_of, drain, say, sign_in

PHOTO = "https://cdn.example.com/help/reset-button.jpg"
USER = "4915112345678"


def _whatsapp_conversation(ctx: Konsent, client, fake) -> int:  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "whatsapp", fake)
    assert fx.deliver(
        client, conn, [fake.user_text(fx.WA_PHONE_ID, USER, "Wie setze ich das Gerät zurück?")]
    ) == [200]
    fake.take_outgoing()
    with ctx.db.read() as s:
        ident = s.scalars(
            select(ContactIdentity).where(ContactIdentity.channel_account_id == conn.account_id)
        ).one()
        return s.scalars(select(Conversation.id).where(Conversation.contact_id == ident.contact_id)).one()


def test_agent_reply_with_an_image_reaches_whatsapp_with_its_caption(
    ctx: Konsent, crew: Crew, client, fake
) -> None:  # type: ignore[no-untyped-def]
    conv = _whatsapp_conversation(ctx, client, fake)
    fake.accepted.clear()
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, crew.caller("admin"), conv)
        assert view.media_kinds == ("image", "document", "video", "audio")
        conversation.reply(
            ctx, s, crew.caller("admin"), conv, "Hier drücken", media_url=PHOTO, media_kind="image"
        )
    drain(ctx)
    [sent] = [a["body"] for a in fake.accepted if a["body"]["type"] == "image"]  # the bot may answer too
    assert sent["type"] == "image" and sent["image"] == {"link": PHOTO, "caption": "Hier drücken"}
    with ctx.db.write() as s:
        out = [
            m
            for m in conversation.view_conversation(ctx, s, crew.caller("admin"), conv).messages
            if m.direction == "out"
        ]
        assert (out[-1].text, out[-1].media_url, out[-1].status) == ("Hier drücken", PHOTO, "sent")
    token = sign_in(client, ctx, crew.users["admin"])
    page = client.get(f"/admin/inbox/{conv}").text
    assert 'name="media_url"' in page and PHOTO in page
    r = client.post(
        f"/admin/inbox/{conv}/reply",
        data={
            "csrf_token": token,
            "text": "",
            "media_url": "http://cdn.example.com/x.jpg",
            "media_kind": "image",
        },
        headers={"Accept-Language": "de"},
    )
    assert r.status_code == 422 and "https://-Adresse" in r.text


def test_media_reply_the_channel_cannot_carry_is_refused_and_nothing_queued(ctx: Konsent, crew: Crew) -> None:
    """A caption longer than the channel takes with media (the simulator, like WhatsApp: 1,024),
    a link that is not https, a kind that does not exist: refused with the reason."""
    say(ctx, crew, "+491701111111", "Hallo")
    conv = conversation_of(ctx, crew, "+491701111111").id
    with ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(Message))
    for text, kw, words in (
        ("x" * 1025, {"media_url": PHOTO, "media_kind": "image"}, "caption is at most 1024"),
        ("Schau", {"media_url": "http://cdn.example.com/x.jpg", "media_kind": "image"}, "https://"),
        ("Schau", {"media_url": PHOTO, "media_kind": "hologram"}, "image, document, video, audio"),
    ):
        with pytest.raises(InvalidInput, match=words), ctx.db.write() as s:
            conversation.reply(ctx, s, crew.caller("admin"), conv, text, **kw)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == before
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
