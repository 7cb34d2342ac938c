# ruff: noqa: F811
"""Outbound media on every adapter, against the fakes over real HTTP (CH3, M3).

Each provider gets the request shape its documentation gives; what a channel
cannot carry is refused before any request goes out, with a reason.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from konsent.channels.base import AccountConfig, Button, Capabilities, OutboundContent, SendOutcome
from konsent.channels.messenger import InstagramChannel, MessengerChannel
from konsent.channels.telegram import TelegramChannel
from konsent.channels.threema import ThreemaChannel
from konsent.channels.threema_basic import ThreemaBasicChannel
from konsent.channels.whatsapp import Dialog360Channel, WhatsAppCloudChannel
from tests.channels import fixtures_meta as fx
from tests.channels import fixtures_telegram as tfx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.fakes.telegram_fake import TelegramFake

PHOTO = "https://cdn.example.com/november/offer.jpg"
PDF = "https://cdn.example.com/november/catalogue.pdf"
TO = "+16505551234"
PSID = "7269874123456789"
CHAT = 5273618487


def media(kind: str, url: str = PHOTO, text: str = "", filename: str | None = None) -> OutboundContent:
    return OutboundContent(text=text, media_url=url, media_kind=kind, media_filename=filename)


# --- the content itself ------------------------------------------------------------------------


def test_media_survives_the_body_round_trip_and_old_bodies_still_open():
    """Stored bodies: media keys kept; a body from before media has none and loads as plain text."""
    c = media("document", PDF, "Our catalogue", "Katalog-2026.pdf")
    assert OutboundContent.from_dict(json.loads(json.dumps(c.as_dict()))) == c
    old = {"text": "Hallo", "buttons": [], "template": None, "template_language": None, "template_params": []}
    loaded = OutboundContent.from_dict(old)
    assert loaded == OutboundContent(text="Hallo") and loaded.media_url is None
    assert "media_url" not in OutboundContent(text="Hallo").as_dict()  # text bodies are unchanged


def test_capabilities_declare_media_as_data():
    """Flows read media kinds and caption limits from capabilities, never from the channel's name."""
    wa = WhatsAppCloudChannel.capabilities
    assert wa.media_kinds == {"image", "document", "video", "audio"} and wa.max_caption_len == 1024
    assert wa.can_send_media("image", "x" * 1024) and not wa.can_send_media("image", "x" * 1025)
    assert wa.can_send_media("audio", "") and not wa.can_send_media("audio", "a caption")
    assert Dialog360Channel.capabilities.media_kinds == wa.media_kinds
    assert TelegramChannel.capabilities.can_send_media("audio", "Podcast #3")
    assert MessengerChannel.capabilities.can_send_media("document", "")
    assert not MessengerChannel.capabilities.can_send_media("image", "a caption")
    assert not InstagramChannel.capabilities.can_send_media("document", "")
    for adapter in (ThreemaChannel, ThreemaBasicChannel):
        assert adapter.capabilities.media_kinds == frozenset()
    assert Capabilities().media_kinds == frozenset()


# --- WhatsApp Cloud API and 360dialog -----------------------------------------------------------


def test_whatsapp_sends_each_kind_in_the_documented_shape(fake):
    """`type: image|document|video|audio` with `{link, caption, filename}`; audio without caption."""
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    acc = fx.account_config("whatsapp", fake)
    contents = [
        media("image", PHOTO, "20% auf alles"),
        media("document", PDF, "Der Katalog", "Katalog-2026.pdf"),
        media("video", "https://cdn.example.com/v.mp4"),
        media("audio", "https://cdn.example.com/a.mp3"),
    ]
    results = [fx.run_send(WhatsAppCloudChannel(), acc, TO, c) for c in contents]
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 4, results
    assert all(r.provider_id.startswith("wamid.") for r in results)
    bodies = [a["body"] for a in fake.accepted]
    assert bodies[0] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "image",
        "image": {"link": PHOTO, "caption": "20% auf alles"},
    }
    assert bodies[1]["document"] == {"link": PDF, "caption": "Der Katalog", "filename": "Katalog-2026.pdf"}
    assert bodies[2]["type"] == "video" and bodies[2]["video"] == {"link": "https://cdn.example.com/v.mp4"}
    assert bodies[3]["audio"] == {"link": "https://cdn.example.com/a.mp3"}


def test_dialog360_sends_media_with_its_api_key(fake):
    """360dialog: Meta's media body on POST {base}/messages."""
    fake.add_phone(fx.WA_PHONE_ID, "", "", d360_key="d360-key-abc")
    acc = fx.account_config("dialog360", fake)
    r = fx.run_send(Dialog360Channel(), acc, "15551234567", media("image", PHOTO, "Hallo"))
    assert r.outcome is SendOutcome.SENT
    assert fake.accepted[0]["body"]["image"] == {"link": PHOTO, "caption": "Hallo"}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (media("image", PHOTO, "x" * 1025), "caption_too_long"),
        (media("audio", "https://cdn.example.com/a.mp3", "Hör mal"), "caption_not_supported"),
        (media("image", "http://cdn.example.com/offer.jpg"), "invalid_media"),
        (media("sticker", PHOTO), "invalid_media"),
        (media("image", "https://cdn.example.com/" + "a" * 2000), "invalid_media"),
        (media("image", PHOTO, filename="x.jpg"), "invalid_media"),
        (OutboundContent(text="pick", media_url=PHOTO, media_kind="image", buttons=(Button("a", "A"),)),
         "invalid_media"),
    ],
)  # fmt: skip
def test_whatsapp_refuses_what_it_cannot_send_before_any_request(fake, content, code):
    """A caption over 1024, a caption on audio, a non-https link, an unknown kind: never sent."""
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    r = fx.run_send(WhatsAppCloudChannel(), fx.account_config("whatsapp", fake), TO, content)
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, code) and r.error_text
    assert fake.accepted == []


def _raw_whatsapp(fake: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"{fake.url}/v21.0/{fx.WA_PHONE_ID}/messages",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer EAAJB-test-token", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("media_part", "code"),
    [
        ({"type": "audio", "audio": {"link": PHOTO, "caption": "no"}}, 100),  # audio takes no caption
        ({"type": "image", "image": {"link": PHOTO, "filename": "x.jpg"}}, 100),  # nor an image a name
        ({"type": "image", "image": {"caption": "no link"}}, 100),
        ({"type": "image", "image": {"id": "1013859600285441", "link": PHOTO}}, 100),
        ({"type": "image", "image": {"link": "not a url"}}, 131009),
        ({"type": "image", "image": {"link": PHOTO, "caption": "x" * 1025}}, 131009),
        ({"type": "image", "image": {"link": PHOTO}, "text": {"body": "both"}}, 100),
        ({"type": "image"}, 100),
    ],
)
def test_whatsapp_fake_refuses_media_bodies_meta_refuses(fake, media_part, code):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, **media_part}
    status, answer = _raw_whatsapp(fake, body)
    assert status == 400 and answer["error"]["code"] == code
    ok = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "image",
        "image": {"link": PHOTO, "caption": "c"},
    }
    assert _raw_whatsapp(fake, ok)[0] == 200


# --- Messenger and Instagram ---------------------------------------------------------------------


def test_messenger_sends_an_attachment_by_url(fake):
    """`message.attachment {type, payload: {url, is_reusable}}`; a document is a `file`."""
    fake.add_page(fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET)
    fake.window_opened(fx.PAGE_ID, PSID)
    acc = fx.account_config("messenger", fake)
    r1 = fx.run_send(MessengerChannel(), acc, PSID, media("image", PHOTO))
    r2 = fx.run_send(MessengerChannel(), acc, PSID, media("document", PDF, filename="Katalog.pdf"))
    assert [r1.outcome, r2.outcome] == [SendOutcome.SENT] * 2 and r1.provider_id.startswith("m_")
    b1, b2 = (a["body"] for a in fake.accepted)
    assert b1 == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"attachment": {"type": "image", "payload": {"url": PHOTO, "is_reusable": True}}},
    }
    assert b2["message"]["attachment"]["type"] == "file"


def test_messenger_and_instagram_refuse_captions_and_kinds_they_lack(fake):
    """A Send API message is a text or an attachment: a caption is refused, never silently dropped."""
    fake.add_page(fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET)
    fake.window_opened(fx.PAGE_ID, PSID)
    r = fx.run_send(
        MessengerChannel(), fx.account_config("messenger", fake), PSID, media("image", PHOTO, "Hi")
    )
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "caption_not_supported")
    r = fx.run_send(InstagramChannel(), fx.account_config("instagram", fake), PSID, media("document", PDF))
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "no_media")
    assert fake.accepted == []


def test_messenger_fake_refuses_text_and_attachment_together(fake):
    fake.add_page(fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET)
    fake.window_opened(fx.PAGE_ID, PSID)
    attachment = {"type": "image", "payload": {"url": PHOTO, "is_reusable": True}}
    bodies = [
        {"text": "caption", "attachment": attachment},
        {"attachment": {"type": "hologram", "payload": {"url": PHOTO}}},
        {"attachment": {"type": "image", "payload": {"url": PHOTO, "caption": "no"}}},
        {"attachment": {"type": "image", "payload": {}}},
    ]
    for message in bodies:
        req = urllib.request.Request(
            f"{fake.url}/v21.0/{fx.PAGE_ID}/messages?access_token=EAAP-page-token",
            data=json.dumps(
                {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": message}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 400 and json.loads(err.value.read())["error"]["code"] == 100
    assert fake.accepted == []


# --- Telegram ------------------------------------------------------------------------------------


@pytest.fixture
def tg() -> Iterator[TelegramFake]:
    with TelegramFake(bots=[(tfx.BOT_TOKEN, tfx.BOT_USERNAME)]) as f:
        assert isinstance(f, TelegramFake)
        f.started.add(CHAT)
        f.chat_burst = 10
        yield f


def tg_send(fake: TelegramFake, content: OutboundContent) -> Any:
    acc = AccountConfig(
        1, "telegram", settings={"bot_username": tfx.BOT_USERNAME, "api_base": fake.url},
        secrets={"bot_token": tfx.BOT_TOKEN, "secret_token": tfx.SECRET_TOKEN},
    )  # fmt: skip

    async def go() -> Any:
        ch = TelegramChannel(timeout_s=5.0)
        try:
            return await ch.send(acc, str(CHAT), content)
        finally:
            await ch.close()

    return asyncio.run(go())


def test_telegram_sends_photo_document_video_audio_by_url_with_caption(tg):
    """sendPhoto / sendDocument / sendVideo / sendAudio with the URL and `caption`."""
    contents = [
        media("image", PHOTO, "20% auf alles"),
        media("document", PDF, "Katalog"),
        media("video", "https://cdn.example.com/v.mp4"),
        media("audio", "https://cdn.example.com/a.mp3", "Podcast #3"),
    ]
    results = [tg_send(tg, c) for c in contents]
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 4, results
    assert [r.provider_id for r in results] == [f"{CHAT}:{i}" for i in range(1, 5)]
    assert [(m, p) for m, p in tg.requests] == [
        ("sendphoto", {"chat_id": CHAT, "photo": PHOTO, "caption": "20% auf alles"}),
        ("senddocument", {"chat_id": CHAT, "document": PDF, "caption": "Katalog"}),
        ("sendvideo", {"chat_id": CHAT, "video": "https://cdn.example.com/v.mp4"}),
        ("sendaudio", {"chat_id": CHAT, "audio": "https://cdn.example.com/a.mp3", "caption": "Podcast #3"}),
    ]
    assert [m.media["kind"] for m in tg.sent if m.media] == ["photo", "document", "video", "audio"]


def test_telegram_refuses_a_caption_over_1024_before_sending(tg):
    r = tg_send(tg, media("image", PHOTO, "x" * 1025))
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "caption_too_long")
    assert not tg.requests


def test_telegram_fake_answers_like_the_bot_api(tg):
    """Missing file, caption over 1024, unknown parameter → 400 with Telegram's description."""
    base = f"{tg.url}/bot{tfx.BOT_TOKEN}"
    cases = [
        ("sendPhoto", {"chat_id": CHAT}, "there is no photo"),
        ("sendPhoto", {"chat_id": CHAT, "photo": PHOTO, "caption": "x" * 1025}, "caption is too long"),
        ("sendDocument", {"chat_id": CHAT, "document": PDF, "text": "no"}, "unexpected parameter"),
    ]
    for method, payload, words in cases:
        req = urllib.request.Request(
            f"{base}/{method}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        answer = json.loads(err.value.read())
        assert err.value.code == 400 and answer["ok"] is False and words in answer["description"]
    assert not [m for m in tg.sent if m.media]


# --- Threema: no media -----------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", [ThreemaChannel, ThreemaBasicChannel])
def test_threema_declares_no_media_and_never_sends_the_caption_alone(adapter):
    """E2E file messages need the blob upload (not built): refused before any request."""
    acc = AccountConfig(1, adapter.kind, settings={"gateway_id": "*KONSENT", "api_base": "http://127.0.0.1:9"},
                        secrets={"api_secret": "s"})  # fmt: skip

    async def go() -> Any:
        ch = adapter()
        try:
            return await ch.send(acc, "ECHOECHO", media("image", PHOTO, "Hallo"))
        finally:
            await ch.close()

    assert adapter.capabilities.media_kinds == frozenset()
    r = asyncio.run(go())  # api_base is a closed port: a request would end transient, not permanent
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "no_media")


def test_media_errors_map_by_their_documented_meaning():
    """A link the provider cannot download is permanent; rate limits on media still snooze."""
    from konsent.channels.meta import map_graph_error
    from konsent.channels.telegram import map_error

    download = {"error": {"code": 131052, "message": "Media download error"}}
    assert map_graph_error(400, download, {}).outcome is SendOutcome.PERMANENT
    video_rate = {"error": {"code": 613, "message": "Calls to this api have exceeded the rate limit."}}
    assert map_graph_error(400, video_rate, {}).outcome is SendOutcome.RETRY_AFTER
    wrong_url = {"ok": False, "error_code": 400, "description": "Bad Request: wrong HTTP URL specified"}
    assert map_error(400, wrong_url).outcome is SendOutcome.PERMANENT
