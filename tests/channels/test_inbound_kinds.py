"""Nothing a customer sends is lost (CH5): every WhatsApp inbound kind is stored sealed, shown to
staff in the inbox and on the contact page, exported, and gone after erasure."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select

from konsent.channels.base import AccountConfig
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.domain.events import InboundMessage
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy.rights import erase_contact
from konsent.store.tables import Contact, Counter, Message
from tests.channels import fixtures_meta as fx
from tests.channels.test_whatsapp import post
from tests.inbox.conftest import Crew, crew, sign_in

__all__ = ["crew"]  # the inbox's staff fixture

ADAPTER = WhatsAppCloudChannel()
ACCOUNT = AccountConfig(1, "whatsapp", settings={}, secrets={"app_secret": "my_app_secret"})
ORIGINAL = "wamid.ORIGINAL-TEXT-0001"


def message(mtype: str, content: dict[str, Any] | None, wamid: str = "wamid.KIND-0001", **extra: Any) -> Any:
    """WA_TEXT with its message replaced by one of another type (shapes from Meta's webhook reference)."""
    payload = copy.deepcopy(fx.WA_TEXT)
    m = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del m["text"]
    m.update(type=mtype, id=wamid, **extra)
    if content is not None:
        m[mtype] = content
    return payload


# kind -> (payload, expected kind, a value staff must see, a value the export must hold)
CASES: dict[str, tuple[Any, str, str]] = {
    "location": (
        message("location", {"latitude": 52.520008, "longitude": 13.404954, "name": "Kaffeerösterei Mitte",
                             "address": "Alexanderplatz 1, 10178 Berlin"}),
        "location", "Alexanderplatz 1, 10178 Berlin",
    ),
    "contacts": (
        message("contacts", None, contacts=[{
            "name": {"formatted_name": "Erika Beispiel", "first_name": "Erika"},
            "phones": [{"phone": "+49 30 1234567", "type": "WORK", "wa_id": "49301234567"}],
            "emails": [{"email": "erika@example.org", "type": "WORK"}],
            "org": {"company": "Beispiel AG"}}]),
        "contacts", "erika@example.org",
    ),
    "reaction": (message("reaction", {"message_id": ORIGINAL, "emoji": "👍"}), "reaction", "👍"),
    "order": (
        message("order", {"catalog_id": "cat-42", "text": "Bitte bis Freitag",
                          "product_items": [{"product_retailer_id": "SKU-ESPRESSO-1kg", "quantity": 2,
                                             "item_price": 24.9, "currency": "EUR"}]}),
        "order", "SKU-ESPRESSO-1kg × 2 à 24.9 EUR",
    ),
    "flow_reply": (
        message("interactive", {"type": "nfm_reply", "nfm_reply": {
            "name": "flow", "body": "Sent",
            "response_json": json.dumps({"flow_token": "tok-1", "appointment_day": "2026-12-09",
                                         "branch": "Berlin-Mitte"})}}),
        "flow_reply", "Berlin-Mitte",
    ),
    "call_permission": (
        message("interactive", {"type": "call_permission_reply", "call_permission_reply": {
            "response": "accept", "expiration_timestamp": 1765000000, "response_source": "user_action"}}),
        "call_permission", "accept",
    ),
    "edit": (
        message("edit", {"original_message_id": ORIGINAL,
                         "message": {"type": "text", "text": {"body": "Korrigiert: Dienstag statt Montag"}}}),
        "edit", "Korrigiert: Dienstag statt Montag",
    ),
    "revoke": (message("revoke", {"original_message_id": ORIGINAL}), "revoke", "Erste Nachricht"),
    "unsupported": (
        message("unsupported", None, errors=[{"code": 131051, "title": "Message type unknown",
                                              "error_data": {"details": "Not supported."}}]),
        "unsupported", "Message type unknown",
    ),
    "hologram": (message("hologram", {"x": 1}), "unsupported", "hologram"),
    "sticker": (message("sticker", {"id": "1479537139650973", "mime_type": "image/webp", "animated": False}),
                "media", ""),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_whatsapp_kind_becomes_a_message_not_an_unknown_event(name: str) -> None:
    payload, kind, _ = CASES[name]
    [ev] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(payload))
    assert isinstance(ev, InboundMessage)
    assert ev.kind == kind


def test_reaction_and_its_removal_name_the_message_they_refer_to() -> None:
    [added] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(CASES["reaction"][0]))
    removed_payload = message("reaction", {"message_id": ORIGINAL})
    [removed] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(removed_payload))
    assert (added.ref_id, dict(added.details)) == (ORIGINAL, {"emoji": "👍"})
    assert (removed.ref_id, dict(removed.details)) == (ORIGINAL, {"removed": "✓"})


def test_ad_referral_is_kept_with_the_message_that_opened_the_chat() -> None:
    [ev] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_TEXT_CTWA))
    details = dict(ev.details)
    assert ev.kind == "text"
    assert details["referral_headline"] == "Chat with us"
    assert details["referral_click_id"].startswith("Aff-n8ZTODiE79d22")


def test_unreadable_kind_content_is_kept_as_unsupported_not_refused() -> None:
    """A 400 would make Meta retry the whole batch and drop it in the end: the message is kept."""
    bad = message("location", {"latitude": "north", "longitude": 13.4})
    [ev] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(bad))
    assert (ev.kind, dict(ev.details)["type"]) == ("unsupported", "location")


def _first_text(ctx: Any, conn: Any) -> None:
    first = copy.deepcopy(fx.WA_TEXT)
    m = first["entry"][0]["changes"][0]["value"]["messages"][0]
    m.update(id=ORIGINAL, text={"body": "Erste Nachricht"})
    assert post(ctx, conn, first).status == 200


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][2]))
def test_each_kind_is_stored_sealed_shown_exported_and_erased(ctx, crew: Crew, client, name):  # type: ignore[no-untyped-def]
    payload, _kind, visible = CASES[name]
    conn = fx.connect(ctx, "whatsapp")
    _first_text(ctx, conn)
    assert post(ctx, conn, payload).status == 200
    with ctx.db.read() as s:
        msg = s.scalars(select(Message).where(Message.provider_id == "wamid.KIND-0001")).one()
        conv_id, contact_id = msg.conversation_id, msg.contact_id
        assert visible.encode() not in msg.body_sealed  # sealed at rest (S1)
    sign_in(client, ctx, crew.users["owner"])
    page = client.get(f"/admin/inbox/{conv_id}")
    assert page.status_code == 200 and visible in page.text  # the agent sees it
    assert visible in client.get(f"/admin/contacts/{contact_id}").text  # and the contact page
    with ctx.db.read() as s:
        data = privacy_export.export_data(ctx, s, s.get(Contact, contact_id))
    assert visible in json.dumps(data, ensure_ascii=False)  # the export holds it (D1)
    with ctx.db.write() as s:
        erase_contact(ctx, s, s.get(Contact, contact_id), source="staff", actor="test")
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.contact_id == contact_id)).all() == []


def test_kind_labels_are_shown_in_the_staff_language(ctx, crew: Crew, client):  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "whatsapp")
    assert post(ctx, conn, CASES["location"][0]).status == 200
    with ctx.db.read() as s:
        conv_id = s.scalars(select(Message.conversation_id).where(Message.direction == "in")).first()
    sign_in(client, ctx, crew.users["owner"])
    de = client.get(f"/admin/inbox/{conv_id}?lang=de").text
    en = client.get(f"/admin/inbox/{conv_id}?lang=en").text
    assert "Standort" in de and "Breitengrad" in de
    assert "Location" in en and "Latitude" in en
    assert "https://www.openstreetmap.org/?mlat=52.520008" in en  # a link staff may open, never loaded


def test_reactions_and_deletions_neither_trigger_keywords_nor_open_the_window(ctx, demo):  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "whatsapp")
    assert post(ctx, conn, message("reaction", {"message_id": ORIGINAL, "emoji": "STOP"})).status == 200
    with ctx.db.read() as s:
        outs = s.scalars(select(Message).where(Message.direction == "out")).all()
        from konsent.store.tables import ContactIdentity

        ident = s.scalars(select(ContactIdentity)).one()
    assert outs == []  # no STOP answer, no bot reply
    assert ident.last_inbound_at is None  # a reaction opens no 24-hour window


def test_a_location_never_reaches_keywords_or_the_bot(ctx, demo):  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "whatsapp")
    stop_place = message("location", {"latitude": 1, "longitude": 2, "name": "STOP"})
    assert post(ctx, conn, stop_place).status == 200
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.direction == "out")).all() == []


def test_an_event_nobody_can_show_is_counted(ctx, demo):  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "whatsapp")
    payload = copy.deepcopy(fx.WA_TEXT)
    payload["entry"][0]["changes"][0]["field"] = "something_new"
    assert post(ctx, conn, payload).status == 200
    with ctx.db.read() as s:
        counter = s.scalars(select(Counter).where(Counter.name == "inbound_unhandled:whatsapp")).one()
    assert counter.value == 1


# --- Telegram, Messenger, Instagram, Threema ---------------------------------------------------

TG_ACCOUNT = AccountConfig(2, "telegram", settings={}, secrets={"bot_token": "1:x", "secret_token": "s"})


def _tg(**content: Any) -> bytes:
    from tests.channels import fixtures_telegram as tg

    update = copy.deepcopy(tg.TEXT_UPDATE)
    del update["message"]["text"], update["message"]["entities"]
    update["message"].update(content)
    return json.dumps(update).encode()


@pytest.mark.parametrize(
    ("content", "kind", "field", "value"),
    [
        ({"location": {"latitude": 52.52, "longitude": 13.405}}, "location", "latitude", "52.52"),
        ({"venue": {"location": {"latitude": 52.52, "longitude": 13.405}, "title": "Rösterei",
                    "address": "Alexanderplatz 1"}}, "location", "address", "Alexanderplatz 1"),
        ({"contact": {"phone_number": "+49301234567", "first_name": "Erika", "last_name": "Beispiel"}},
         "contacts", "phone", "+49301234567"),
        ({"poll": {"id": "1", "question": "Welcher Tag?", "options": [{"text": "Mo"}, {"text": "Di"}]}},
         "unsupported", "title", "Welcher Tag?"),
        ({"dice": {"emoji": "🎲", "value": 3}}, "unsupported", "type", "dice"),
    ],
)  # fmt: skip
def test_every_telegram_kind_becomes_a_message(
    content: dict[str, Any], kind: str, field: str, value: str
) -> None:
    from konsent.channels.telegram import TelegramChannel

    [ev] = TelegramChannel().parse(TG_ACCOUNT, _tg(**content))
    assert isinstance(ev, InboundMessage)
    assert ev.kind == kind and dict(ev.details)[field] == value


def test_telegram_edited_message_is_an_edit_naming_the_original() -> None:
    from konsent.channels.telegram import TelegramChannel
    from tests.channels import fixtures_telegram as tg

    update = copy.deepcopy(tg.TEXT_UPDATE)
    update["edited_message"] = update.pop("message")
    update["edited_message"].update(text="Dienstag, nicht Montag", edit_date=1697139700)
    [ev] = TelegramChannel().parse(TG_ACCOUNT, json.dumps(update).encode())
    assert (ev.kind, ev.text, ev.ref_id) == ("edit", "Dienstag, nicht Montag", "20")


def test_telegram_asks_for_edited_messages_when_registering_the_webhook() -> None:
    from konsent.channels.telegram import ALLOWED_UPDATES

    assert "edited_message" in ALLOWED_UPDATES


MS_ACCOUNT = AccountConfig(3, "messenger", settings={"page_id": "<PAGE_ID>"}, secrets={"app_secret": "x"})


def _ms(item: dict[str, Any]) -> bytes:
    base = {"sender": {"id": "<PSID>"}, "recipient": {"id": "<PAGE_ID>"}, "timestamp": 1458692752478}
    return fx.meta_bytes(fx.page_envelope({**base, **item}))


@pytest.mark.parametrize(
    ("item", "kind", "field", "value"),
    [
        ({"message": {"mid": "m1", "attachments": [{"type": "location", "title": "Rösterei", "payload": {
            "coordinates": {"lat": 52.52, "long": 13.405}}}]}}, "location", "name", "Rösterei"),
        ({"message": {"mid": "m2", "text": "Schön!", "reply_to": {"story": {
            "url": "https://lookaside.example/story", "id": "s1"}}}}, "story", "type", "story_reply"),
        ({"message": {"mid": "m3", "attachments": [{"type": "story_mention", "payload": {
            "url": "https://lookaside.example/mention"}}]}}, "story", "type", "story_mention"),
        ({"message": {"mid": "m4", "attachments": [{"type": "fallback", "title": "Unser Shop", "payload": {
            "url": "https://shop.example/p/1"}}]}}, "unsupported", "url", "https://shop.example/p/1"),
        ({"reaction": {"mid": "m0", "action": "react", "reaction": "love", "emoji": "❤"}},
         "reaction", "emoji", "❤"),
        ({"reaction": {"mid": "m0", "action": "unreact"}}, "reaction", "removed", "✓"),
        ({"message": {"mid": "m5", "is_deleted": True}}, "revoke", None, None),
        ({"message": {"mid": "m6", "is_unsupported": True}}, "unsupported", "type", "is_unsupported"),
    ],
)  # fmt: skip
def test_every_messenger_and_instagram_kind_becomes_a_message(
    item: dict[str, Any], kind: str, field: str | None, value: str | None
) -> None:
    from konsent.channels.messenger import MessengerChannel

    [ev] = MessengerChannel().parse(MS_ACCOUNT, _ms(item))
    assert isinstance(ev, InboundMessage)
    assert ev.kind == kind
    if field is not None:
        assert dict(ev.details)[field] == value


def test_messenger_location_is_stored_and_shown_through_the_webhook(ctx, crew: Crew, client):  # type: ignore[no-untyped-def]
    conn = fx.connect(ctx, "messenger")
    place = {"coordinates": {"lat": 52.52, "long": 13.4}}
    attachment = {"type": "location", "title": "Rösterei Mitte", "payload": place}
    item = {
        "sender": {"id": "4711"},
        "recipient": {"id": fx.PAGE_ID},
        "timestamp": 1765000000000,
        "message": {"mid": "m.loc.1", "attachments": [attachment]},
    }
    assert post(ctx, conn, fx.page_envelope(item, page_id=fx.PAGE_ID)).status == 200
    with ctx.db.read() as s:
        conv_id = s.scalars(select(Message.conversation_id).where(Message.provider_id == "m.loc.1")).one()
    sign_in(client, ctx, crew.users["owner"])
    assert "Rösterei Mitte" in client.get(f"/admin/inbox/{conv_id}").text
