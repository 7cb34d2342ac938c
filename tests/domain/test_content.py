"""One outbound-content validation for every sending path (#11 item 4, M3, CH3)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from konsent.channels.base import Capabilities, OutboundContent
from konsent.domain.content import problems, require_valid
from konsent.domain.errors import InvalidInput

PHOTO = "https://cdn.example.com/p.jpg"
CAPS = Capabilities(max_text_len=2000, media_kinds=frozenset({"image"}), max_caption_len=500,
                    captioned_kinds=frozenset({"image"}))  # fmt: skip


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (OutboundContent(), "empty"),
        (OutboundContent(text="x" * 4097), "too_long"),
        (OutboundContent(text="x" * 1025, media_url=PHOTO, media_kind="image"), "caption_too_long"),
        (OutboundContent(text="hi", media_url="http://cdn.example.com/p", media_kind="image"), "bad_media"),
        (OutboundContent(template="Weekly-Offers", template_language="de"), "bad_template_name"),
        (OutboundContent(template="weekly", template_language="deutsch"), "bad_template_language"),
        (OutboundContent(template="weekly"), "bad_template_language"),
        (OutboundContent(template="weekly", template_language="de", template_params=("x",) * 21),
         "bad_template_params"),
    ],
)  # fmt: skip
def test_each_rule_that_holds_on_every_channel_has_its_code(content, code):
    assert [p.code for p in problems(content)] == [code]
    with pytest.raises(InvalidInput):
        require_valid(content)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (OutboundContent(template="weekly", template_language="de"), "no_templates"),
        (OutboundContent(media_url=PHOTO, media_kind="video"), "no_media"),
        (OutboundContent(text="x" * 501, media_url=PHOTO, media_kind="image"), "no_media"),
        (OutboundContent(text="x" * 2001), "too_long"),
    ],
)
def test_each_channel_rule_comes_from_the_declared_capabilities(content, code):
    assert problems(content) == []
    assert [p.code for p in problems(content, CAPS)] == [code]


def test_valid_contents_have_no_problem():
    caps = Capabilities(templates=True, media_kinds=frozenset({"image"}), max_caption_len=1024,
                        captioned_kinds=frozenset({"image"}))  # fmt: skip
    for content in (
        OutboundContent(text="Hallo"),
        OutboundContent(text="Schau", media_url=PHOTO, media_kind="image"),
        OutboundContent(template="weekly_offers", template_language="en_US", template_params=("Anna",)),
    ):
        assert problems(content, caps) == []


def test_the_refusal_carries_a_msgid_and_its_parameters_for_translation():
    with pytest.raises(InvalidInput) as exc:
        require_valid(OutboundContent(text="x" * 4097))
    assert exc.value.message == "the text is longer than {limit} characters"
    assert exc.value.params == {"limit": 4096}
    assert str(exc.value) == "the text is longer than 4096 characters"


@dataclass
class _Plain:
    """Any object with the fields is checked the same way (the rules are not tied to a class)."""

    text: str = ""
    template: str | None = None
    template_language: str | None = None
    template_params: tuple[str, ...] = ()
    media_url: str | None = None
    media_kind: str | None = None
    media_filename: str | None = None
    buttons: tuple[()] = ()  # reply buttons, a list, a link button (domain.interactive)
    rows: tuple[()] = ()
    list_button: str = ""
    link: None = None


def test_rules_read_fields_not_a_class():
    assert [p.code for p in problems(_Plain())] == ["empty"]
