# ruff: noqa: F811
"""Interactive messages on the wire: each provider's documented body, checked by its fake (CH5, #16 item 2).

WhatsApp: `interactive` button / list / cta_url; Telegram: inline keyboard with callback and URL
buttons; Messenger and Instagram: quick replies and the button template. The fakes refuse what
the real APIs refuse (too many buttons, too long titles), so a body that passes here is one the
provider takes.
"""

from __future__ import annotations

import copy

import pytest

from konsent.channels.base import Button, LinkButton, ListRow, OutboundContent, SendOutcome
from konsent.channels.messenger import InstagramChannel, MessengerChannel
from konsent.channels.whatsapp import WhatsAppCloudChannel
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.channels.test_telegram import CHAT
from tests.channels.test_telegram import fake as telegram_fake  # noqa: F401  (pytest fixture)
from tests.channels.test_telegram import send as telegram_send
from tests.channels.test_whatsapp_send import _raw
from tests.fakes.meta_fake import validate_messenger, validate_whatsapp

LIST = OutboundContent(
    text="Wie dürfen wir liefern?",
    rows=(ListRow("std", "Standard", "3-5 Werktage"), ListRow("exp", "Express", "morgen")),
    list_button="Versandart",
)
LINK = OutboundContent(
    text="Ihr Paket ist unterwegs.", link=LinkButton("Sendung verfolgen", "https://shop.example/t/1")
)
BUTTONS = OutboundContent(text="Passt der Termin?", buttons=(Button("yes", "Ja"), Button("no", "Nein")))


def _wa(fake, content):  # type: ignore[no-untyped-def]
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    return fx.run_send(WhatsAppCloudChannel(), fx.account_config("whatsapp", fake), "+16505551234", content)


def test_whatsapp_list_goes_out_as_interactive_list_the_fake_accepts(fake):
    result = _wa(fake, LIST)
    assert result.outcome is SendOutcome.SENT
    [sent] = fake.accepted
    inter = sent["body"]["interactive"]
    assert inter["type"] == "list" and inter["body"] == {"text": "Wie dürfen wir liefern?"}
    assert inter["action"] == {
        "button": "Versandart",
        "sections": [
            {
                "rows": [
                    {"id": "std", "title": "Standard", "description": "3-5 Werktage"},
                    {"id": "exp", "title": "Express", "description": "morgen"},
                ]
            }
        ],
    }


def test_whatsapp_link_button_goes_out_as_cta_url(fake):
    assert _wa(fake, LINK).outcome is SendOutcome.SENT
    inter = fake.accepted[0]["body"]["interactive"]
    assert inter["type"] == "cta_url"
    assert inter["action"] == {
        "name": "cta_url",
        "parameters": {"display_text": "Sendung verfolgen", "url": "https://shop.example/t/1"},
    }


def _list_body(rows: int, title: str = "Row", description: str = "") -> dict:
    row = {"id": "", "title": title}
    if description:
        row["description"] = description
    return {
        "messaging_product": "whatsapp",
        "to": "+16505551234",
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pick"},
            "action": {"button": "Go", "sections": [{"rows": [{**row, "id": f"r{i}"} for i in range(rows)]}]},
        },
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_list_body(11), 131009),  # "up to 10 rows for all sections combined"
        (_list_body(1, title="x" * 25), 131009),  # row title max 24
        (_list_body(1, description="d" * 73), 131009),  # row description max 72
        (
            {**_list_body(1), "interactive": {**_list_body(1)["interactive"], "body": {"text": "x" * 1025}}},
            100,
        ),
    ],
)
def test_whatsapp_fake_refuses_lists_past_the_documented_limits(body, code):
    refused = validate_whatsapp(body, None)
    assert refused is not None and refused[0] == code
    assert validate_whatsapp(_list_body(10), None) is None


def test_whatsapp_fake_refuses_four_buttons_long_titles_and_a_cta_without_https(fake):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    long_title = copy.deepcopy(fx.WA_SEND_BUTTONS)
    long_title["interactive"]["action"]["buttons"][0]["reply"]["title"] = "x" * 21
    assert _raw(fake, long_title)[1]["error"]["code"] == 131009
    cta = {
        "messaging_product": "whatsapp",
        "to": "+16505551234",
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "body": {"text": "Track"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "ftp://x"}},
        },
    }
    assert _raw(fake, cta)[1]["error"]["code"] == 131009
    cta["interactive"]["action"]["parameters"]["url"] = "https://shop.example/t/1"  # type: ignore[index]
    assert _raw(fake, cta)[0] == 200


def test_telegram_list_rows_become_keyboard_rows_and_a_link_a_url_button(telegram_fake):
    assert telegram_send(telegram_fake, LIST).outcome is SendOutcome.SENT
    assert telegram_send(telegram_fake, LINK).outcome is SendOutcome.SENT
    listed, linked = telegram_fake.sent
    assert [(b["text"], b["callback_data"]) for b in listed.buttons] == [
        ("Standard", "std"),
        ("Express", "exp"),
    ]
    assert linked.buttons == [{"text": "Sendung verfolgen", "url": "https://shop.example/t/1"}]
    assert listed.chat_id == CHAT


def test_telegram_fake_refuses_a_url_button_that_is_no_url(telegram_fake):
    from tests.fakes.telegram_fake import _keyboard

    assert (
        _keyboard({"inline_keyboard": [[{"text": "Go", "url": "javascript:alert(1)"}]]})[1]
        == "BUTTON_URL_INVALID"
    )
    assert _keyboard({"inline_keyboard": [[{"text": "Go", "url": "https://x", "callback_data": "a"}]]})[1]


@pytest.mark.parametrize("channel", [MessengerChannel, InstagramChannel])
def test_messenger_link_button_is_a_button_template_and_a_list_quick_replies(fake, channel):
    kind = channel.kind
    conn_values = fx.account_config(kind, fake)
    fake.add_page(
        fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET, obj="page" if kind == "messenger" else "instagram"
    )
    fake.window_opened(fx.PAGE_ID, "4242")
    short_list = OutboundContent(
        text="Wie?", rows=(ListRow("std", "Standard"), ListRow("exp", "Express")), list_button="Go"
    )
    results = [fx.run_send(channel(), conn_values, "4242", c) for c in (LINK, short_list, BUTTONS)]
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 3, results
    link, listed, buttons = (a["body"]["message"] for a in fake.accepted)
    assert link["attachment"] == {
        "type": "template",
        "payload": {
            "template_type": "button",
            "text": "Ihr Paket ist unterwegs.",
            "buttons": [{"type": "web_url", "url": "https://shop.example/t/1", "title": "Sendung verfolgen"}],
        },
    }
    assert [q["payload"] for q in listed["quick_replies"]] == ["std", "exp"]
    assert [q["title"] for q in buttons["quick_replies"]] == ["Ja", "Nein"]


def test_messenger_fake_refuses_a_button_template_with_four_buttons_or_a_long_text():
    button = {"type": "web_url", "url": "https://shop.example", "title": "Shop"}
    body = {
        "recipient": {"id": "4242"},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "button", "text": "Hi", "buttons": [button] * 4},
            }
        },
    }
    assert validate_messenger(body) is not None
    body["message"]["attachment"]["payload"]["buttons"] = [button]  # type: ignore[index]
    assert validate_messenger(body) is None
    body["message"]["attachment"]["payload"]["text"] = "x" * 641  # type: ignore[index]
    assert validate_messenger(body) is not None
    too_many = {
        "recipient": {"id": "4242"},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "Hi",
            "quick_replies": [{"content_type": "text", "title": f"q{i}", "payload": "p"} for i in range(14)],
        },
    }
    assert validate_messenger(too_many) is not None
