# ruff: noqa: F811
"""Media broadcasts: an image, document, video or audio by https link, the text as caption (M3, CH3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput
from konsent.flows.context import Konsent
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_stats
from konsent.store.tables import Broadcast, Message
from konsent.store.types import utcnow
from tests.broadcast.seed import add_account, seed
from tests.broadcast.test_cli import cli  # noqa: F401  (pytest fixture)
from tests.channels import fixtures_meta as fx
from tests.channels import fixtures_telegram as tfx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain
from tests.fakes.telegram_fake import TelegramFake
from tests.web.test_admin_auth import as_role, form_token

PHOTO = "https://cdn.example.com/advent/offer.jpg"
CHAT = 5273618487


def _create(ctx: Konsent, tenant_id: int, **kw: object) -> int:
    kw.setdefault("name", "Advent")
    kw.setdefault("topic", "angebote")
    kw.setdefault("text", "Hallo {first_name|du}, 20% auf alles!")
    kw.setdefault("media_url", PHOTO)
    kw.setdefault("media_kind", "image")
    with ctx.db.write() as s:
        return bc.create_broadcast(ctx, s, tenant_id, **kw).id  # type: ignore[arg-type]


def _send_now(ctx: Konsent, tenant_id: int, bid: int) -> None:
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, tenant_id, bid, lock=True), None, actor="test")
    assert bc.queue_all(ctx, tenant_id, bid, size=50)


def _stats(ctx: Konsent, tenant_id: int, bid: int) -> broadcast_stats.Stats:
    with ctx.db.read() as s:
        return broadcast_stats.stats(s, bc.get_broadcast(s, tenant_id, bid))


def test_media_broadcast_reaches_whatsapp_as_an_image_with_caption(ctx, fake):
    """The fake receives Meta's image body, the caption personalised; the link is sealed at rest."""
    conn = fx.connect(ctx, "whatsapp", fake)
    recent = utcnow() - timedelta(hours=1)
    seed(ctx, conn.account_id, ["+4915140000001", "+4915140000002"], last_inbound=recent)
    bid = _create(ctx, conn.tenant_id)
    _send_now(ctx, conn.tenant_id, bid)
    drain(ctx)
    bodies = sorted((a["body"] for a in fake.accepted), key=lambda b: b["to"])
    assert [b["to"] for b in bodies] == ["+4915140000001", "+4915140000002"]
    assert bodies[0]["type"] == "image"
    assert bodies[0]["image"] == {"link": PHOTO, "caption": "Hallo Erika, 20% auf alles!"}
    st = _stats(ctx, conn.tenant_id, bid)
    assert (st.queued, st.sent, st.skipped) == (2, 2, 0)
    with ctx.db.read() as s:
        for msg in s.scalars(select(Message).where(Message.direction == "out")):
            assert PHOTO.encode() not in msg.body_sealed and b"Erika" not in msg.body_sealed


@pytest.fixture
def tg() -> Iterator[TelegramFake]:
    with TelegramFake(bots=[(tfx.BOT_TOKEN, tfx.BOT_USERNAME)]) as f:
        assert isinstance(f, TelegramFake)
        f.started.add(CHAT)
        yield f


def test_media_broadcast_reaches_telegram_as_send_document(ctx, demo, tg):
    """Telegram gets sendDocument with the URL and the caption; no window applies."""
    acc_id, _ = tfx.telegram_account(ctx, tg.url)
    seed(ctx, acc_id, [str(CHAT)])
    bid = _create(
        ctx,
        demo.tenant_id,
        text="Unser Katalog",
        media_url="https://cdn.example.com/katalog.pdf",
        media_kind="document",
        media_filename="Katalog-2026.pdf",
    )
    _send_now(ctx, demo.tenant_id, bid)
    drain(ctx)
    assert [m for m, _ in tg.requests] == ["senddocument"]
    [sent] = tg.sent
    assert sent.chat_id == CHAT and sent.media is not None
    assert sent.media["url"] == "https://cdn.example.com/katalog.pdf"
    assert sent.media["caption"] == "Unser Katalog"
    assert _stats(ctx, demo.tenant_id, bid).sent == 1


def test_channel_without_that_media_kind_skips_the_contact_as_no_media(ctx, fake, client):
    """A channel that declares no image media: the contact is skipped with `no_media`, shown in words."""
    conn = fx.connect(ctx, "whatsapp", fake)
    recent = utcnow() - timedelta(hours=1)
    seed(ctx, conn.account_id, ["+4915140000011"], last_inbound=recent)
    plain = add_account(ctx, conn.tenant_id, "test_windowed")  # capabilities without media
    seed(ctx, plain, ["+4915140000012"], last_inbound=recent)
    bid = _create(ctx, conn.tenant_id)
    _send_now(ctx, conn.tenant_id, bid)
    drain(ctx)
    assert [a["body"]["to"] for a in fake.accepted] == ["+4915140000011"]
    st = _stats(ctx, conn.tenant_id, bid)
    assert (st.sent, st.skipped, st.skipped_reasons) == (1, 1, {"no_media": 1})
    as_role(ctx, client, "admin")
    page = client.get(f"/admin/broadcasts/{bid}", headers={"Accept-Language": "en"}).text
    assert "the channel cannot send this media (kind or caption): 1" in page
    assert f'Image: <a href="{PHOTO}"' in page
    page = client.get(f"/admin/broadcasts/{bid}", headers={"Accept-Language": "de"}).text
    assert "Der Kanal kann dieses Medium nicht senden (Art oder Bildunterschrift).: 1" in page


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"media_url": "http://cdn.example.com/offer.jpg"}, "https://"),
        ({"media_url": "https://cdn.example.com/" + "a" * 2000}, "longer than 2000"),
        ({"media_kind": "sticker"}, "image, document, video, audio"),
        ({"media_kind": ""}, "image, document, video, audio"),
        ({"media_url": "", "media_kind": "image"}, "needs a link"),
        ({"media_filename": "offer.jpg"}, "only a document"),
        ({"media_url": "https://user:pw@cdn.example.com/x.jpg"}, "user name or password"),
        ({"text": "x" * 1025}, "1024"),
    ],
)
def test_bad_media_is_refused_with_a_clear_reason_and_nothing_stored(ctx, demo, kw, words):
    with pytest.raises(InvalidInput) as err:
        _create(ctx, demo.tenant_id, **kw)
    assert words in str(err.value)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_media_without_text_is_a_broadcast_and_a_fixed_channel_must_carry_it(ctx, demo):
    """Media alone is enough; a chosen channel account that cannot send it is refused at compose."""
    plain = add_account(ctx, demo.tenant_id, "test_windowed")
    with pytest.raises(InvalidInput, match="cannot send this media"):
        _create(ctx, demo.tenant_id, channel_account_id=plain)
    bid = _create(ctx, demo.tenant_id, text="")
    with ctx.db.read() as s:
        content = bc.get_broadcast(s, demo.tenant_id, bid).content
    assert (content["text"], content["media_url"], content["media_kind"]) == ("", PHOTO, "image")


def test_admin_form_composes_a_media_broadcast_and_refuses_a_bad_link(ctx, demo, client):
    """The compose form takes link and kind; an http:// link re-shows the form (422), nothing stored."""
    token = as_role(ctx, client, "admin")
    base = {"csrf_token": token, "name": "Advent", "topic": "angebote", "text": "Schau mal"}
    bad = {**base, "media_url": "http://cdn.example.com/x.jpg", "media_kind": "image"}
    r = client.post("/admin/broadcasts", data=bad, headers={"Accept-Language": "de"})
    assert r.status_code == 422 and "https://-Adresse" in r.text
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0
    good = {**base, "csrf_token": form_token(r.text), "media_url": PHOTO, "media_kind": "image"}
    r = client.post("/admin/broadcasts", data=good, follow_redirects=True)
    assert r.status_code == 200
    with ctx.db.read() as s:
        [b] = s.scalars(select(Broadcast)).all()
        c = b.content
        assert (c["media_url"], c["media_kind"], c["text"]) == (PHOTO, "image", "Schau mal")
    assert 'name="media_url"' in client.get("/admin/broadcasts").text


def test_cli_creates_a_media_broadcast_and_refuses_an_http_link(ctx, cli):
    """`konsent broadcast create … --media-url … --media-kind image` (U4)."""
    from konsent.cli import app

    args = ["broadcast", "create", "demo", "--name", "Advent", "--topic", "angebote", "--text", "Hi"]
    r = cli.invoke(app, [*args, "--media-url", "http://cdn.example.com/x.jpg", "--media-kind", "image"])
    assert r.exit_code == 2 and "https://" in r.output
    r = cli.invoke(app, [*args, "--media-url", PHOTO, "--media-kind", "image"])
    assert r.exit_code == 0, r.output
    with ctx.db.read() as s:
        [b] = s.scalars(select(Broadcast)).all()
        assert (b.content["media_url"], b.content["media_kind"]) == (PHOTO, "image")
