"""Interactive content: one set of limits for every sending path, a readable fallback (CH5, #16 item 2)."""

from __future__ import annotations

from konsent.channels.base import Capabilities, OutboundContent, fit
from konsent.domain.content import problems
from konsent.domain.flowsteps import Option, match_option
from konsent.domain.interactive import Button, LinkButton, ListRow, choices, fallback_text, from_form


def _codes(content: OutboundContent) -> list[str]:
    return [p.code for p in problems(content)]


def _buttons(n: int, title: str = "Option") -> tuple[Button, ...]:
    return tuple(Button(f"b{i}", f"{title} {i}") for i in range(1, n + 1))


def _rows(n: int) -> tuple[ListRow, ...]:
    return tuple(ListRow(f"r{i}", f"Row {i}") for i in range(1, n + 1))


def test_three_reply_buttons_pass_four_are_refused():
    assert _codes(OutboundContent(text="Which?", buttons=_buttons(3))) == []
    assert _codes(OutboundContent(text="Which?", buttons=_buttons(4))) == ["too_many_buttons"]


def test_ten_list_rows_pass_eleven_are_refused_and_a_list_needs_its_button_label():
    assert _codes(OutboundContent(text="Pick", rows=_rows(10), list_button="Choose")) == []
    assert _codes(OutboundContent(text="Pick", rows=_rows(11), list_button="Choose")) == ["too_many_rows"]
    assert _codes(OutboundContent(text="Pick", rows=_rows(2))) == ["bad_list_button"]


def test_titles_past_the_providers_limits_are_refused_with_the_limit_named():
    long_button = OutboundContent(text="?", buttons=(Button("a", "x" * 21),))
    long_row = OutboundContent(text="?", rows=(ListRow("a", "x" * 25),), list_button="Go")
    long_description = OutboundContent(text="?", rows=(ListRow("a", "ok", "d" * 73),), list_button="Go")
    [button] = problems(long_button)
    [row] = problems(long_row)
    assert (button.code, button.params) == ("bad_button_title", {"limit": 20})
    assert (row.code, row.params) == ("bad_row_title", {"limit": 24})
    assert _codes(long_description) == ["bad_row_description"]
    assert _codes(OutboundContent(text="?", buttons=(Button("a", "x" * 20),))) == []


def test_text_above_buttons_is_required_and_at_most_1024_characters():
    assert _codes(OutboundContent(buttons=_buttons(2))) == ["empty", "interactive_text"]
    assert _codes(OutboundContent(text="x" * 1025, buttons=_buttons(2))) == ["interactive_text"]


def test_ids_fit_telegram_callback_data_and_titles_are_unique():
    assert _codes(OutboundContent(text="?", buttons=(Button("é" * 33, "A"),))) == ["bad_choice_id"]
    assert _codes(OutboundContent(text="?", buttons=(Button("a", "Ja"), Button("a", "Nein")))) == [
        "bad_choice_id"
    ]
    assert _codes(OutboundContent(text="?", buttons=(Button("a", "Ja"), Button("b", "ja")))) == [
        "duplicate_title"
    ]


def test_one_kind_per_message_and_none_with_media_or_template():
    both = OutboundContent(text="?", buttons=_buttons(1), link=LinkButton("Shop", "https://shop.example"))
    assert _codes(both) == ["interactive_mixed"]
    media = OutboundContent(
        text="?", buttons=_buttons(1), media_url="https://cdn.example/a.png", media_kind="image"
    )
    assert _codes(media) == ["interactive_media"]


def test_link_button_opens_only_an_https_address():
    ok = OutboundContent(text="Track", link=LinkButton("Track", "https://shop.example/t/1"))
    assert _codes(ok) == []
    for url in ("http://shop.example", "javascript:alert(1)", "https://user:pw@shop.example", "https://a b"):
        assert _codes(OutboundContent(text="Track", link=LinkButton("Track", url))) == ["bad_link_url"]


NO_BUTTONS = Capabilities()  # Threema: nothing interactive
BUTTONS_ONLY = Capabilities(buttons=True, max_buttons=3)
EVERYTHING = Capabilities(
    buttons=True, max_buttons=3, max_list_rows=10, max_list_title=24, list_descriptions=True,
    link_buttons=True, max_link_text=1024,
)  # fmt: skip


def test_channel_without_buttons_gets_numbered_text_that_match_option_understands():
    content = OutboundContent(
        text="Worum geht es?", buttons=(Button("buy", "Kaufen"), Button("help", "Hilfe"))
    )
    sent = fit(content, NO_BUTTONS)
    assert sent == OutboundContent(text="Worum geht es?\n1. Kaufen\n2. Hilfe", numbered=("Kaufen", "Hilfe"))
    options = (Option("buy", "Kaufen"), Option("help", "Hilfe"))
    assert match_option(options, "2", None) == options[1]
    assert match_option(options, "kaufen", None) == options[0]


def test_fit_keeps_what_the_channel_declares_and_falls_back_for_the_rest():
    listed = OutboundContent(text="Pick", rows=(ListRow("a", "Alpha", "first"),), list_button="Go")
    assert fit(listed, EVERYTHING) is listed
    assert fit(listed, BUTTONS_ONLY).text == "Pick\n1. Alpha – first"
    no_descriptions = Capabilities(max_list_rows=10, max_list_title=24)
    assert fit(listed, no_descriptions).rows == ()  # a description the channel cannot show is not dropped
    link = OutboundContent(text="Your parcel", link=LinkButton("Track", "https://shop.example/t/1"))
    assert fit(link, EVERYTHING) is link
    assert fit(link, NO_BUTTONS).text == "Your parcel\nTrack: https://shop.example/t/1"
    long_for_template = Capabilities(link_buttons=True, max_link_text=5)  # Messenger's 640 in small
    assert fit(link, long_for_template).link is None


def test_bot_options_become_buttons_up_to_three_a_list_up_to_ten_else_text():
    three = [("a", "Eins"), ("b", "Zwei"), ("c", "Drei")]
    assert [b.title for b in choices(three)[0]] == ["Eins", "Zwei", "Drei"]
    four = [*three, ("d", "Vier")]
    assert choices(four)[0] == () and [r.id for r in choices(four)[1]] == ["a", "b", "c", "d"]
    assert choices([("a", "x" * 22), ("b", "y")])[1] != ()  # too long for a button, fine for a row
    assert choices([(str(i), f"Option {i}") for i in range(11)]) == ((), ())
    assert choices([("a", "x" * 25)]) == ((), ())


def test_form_titles_get_numbered_ids_and_blank_lines_are_left_out():
    made = from_form("buttons", ["Ja", "", "Nein"])
    assert made.buttons == (Button("b1", "Ja"), Button("b2", "Nein"))
    listed = from_form("list", ["A", "", "C"], ["da", "", "dc"], list_button="Wählen")
    assert listed.rows == (ListRow("r1", "A", "da"), ListRow("r2", "C", "dc"))
    assert from_form("link", [], link_title="Shop", link_url="https://x.example").link == LinkButton(
        "Shop", "https://x.example"
    )
    assert fallback_text("Hi", (), (), None) == "Hi"
