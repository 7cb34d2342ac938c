"""What an outbound message may contain: one set of rules for every sending path (M1, M3, CH3).

`problems(content)` checks what holds on every channel (a body, the text and caption limits,
a media link's shape, a template's name, language and variables, reply buttons, lists and link
buttons by `domain.interactive`); `problems(content, caps)` adds what the chosen channel
declares it can send (interactive parts it cannot show become text: `channels.base.fit`).
The API, the inbox, broadcasts and the bulk enqueue all ask here, so the rules cannot drift
apart. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from konsent.domain import interactive
from konsent.domain.errors import InvalidInput
from konsent.domain.interactive import Button, LinkButton, ListRow
from konsent.domain.media import MAX_CAPTION, media_problem

MAX_TEXT = 4096  # no channel takes a longer text
MAX_TEMPLATE_PARAMS = 20
MAX_TEMPLATE_PARAM = 1000
TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
TEMPLATE_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


def N_(msgid: str) -> str:
    """Mark a msgid for extraction; it is translated where it is shown."""
    return msgid


EMPTY = N_("a message needs text, media or a template")
TOO_LONG = N_("the text is longer than {limit} characters")
TOO_LONG_HERE = N_("the text is longer than {limit} characters for this channel")
CAPTION_TOO_LONG = N_("a caption is at most {limit} characters long")
BAD_TEMPLATE_NAME = N_("a template name has lower-case letters, digits and underscores")
BAD_TEMPLATE_LANGUAGE = N_("a template language looks like de or en_US")
BAD_TEMPLATE_PARAMS = N_("at most 20 template variables of up to 1000 characters")
NO_TEMPLATES = N_("this channel has no message templates")
NO_MEDIA = N_("this channel cannot send this media with this caption")


class Content(Protocol):
    """The parts of an outbound message the rules look at (channels.base.OutboundContent)."""

    @property
    def text(self) -> str: ...
    @property
    def template(self) -> str | None: ...
    @property
    def template_language(self) -> str | None: ...
    @property
    def template_params(self) -> Sequence[str]: ...
    @property
    def media_url(self) -> str | None: ...
    @property
    def media_kind(self) -> str | None: ...
    @property
    def media_filename(self) -> str | None: ...
    @property
    def buttons(self) -> Sequence[Button]: ...
    @property
    def rows(self) -> Sequence[ListRow]: ...
    @property
    def list_button(self) -> str: ...
    @property
    def link(self) -> LinkButton | None: ...


class Capabilities(Protocol):
    """What a channel declares it can send (channels.base.Capabilities)."""

    @property
    def templates(self) -> bool: ...
    @property
    def max_text_len(self) -> int: ...
    def can_send_media(self, kind: str, caption: str) -> bool: ...


@dataclass(frozen=True)
class Problem:
    """One rule the content breaks: a stable code (a batch's skip reason) and a msgid with params."""

    code: str
    msgid: str
    params: Mapping[str, object] = field(default_factory=dict)


def problems(content: Content, capabilities: Capabilities | None = None) -> list[Problem]:
    """Every rule `content` breaks, on any channel and, with `capabilities`, on that one."""
    out: list[Problem] = []
    text, template = content.text, content.template
    bad_media = media_problem(content.media_url, content.media_kind, content.media_filename)
    if bad_media:
        out.append(Problem("bad_media", bad_media))
    if not (text or template or content.media_url):
        out.append(Problem("empty", EMPTY))
    if len(text) > MAX_TEXT:
        out.append(Problem("too_long", TOO_LONG, {"limit": MAX_TEXT}))
    elif content.media_url and len(text) > MAX_CAPTION:
        out.append(Problem("caption_too_long", CAPTION_TOO_LONG, {"limit": MAX_CAPTION}))
    if template is not None:
        if not TEMPLATE_NAME.fullmatch(template):
            out.append(Problem("bad_template_name", BAD_TEMPLATE_NAME))
        language = content.template_language
        if language is None or not TEMPLATE_LANGUAGE.fullmatch(language):
            out.append(Problem("bad_template_language", BAD_TEMPLATE_LANGUAGE))
        params = content.template_params
        if len(params) > MAX_TEMPLATE_PARAMS or any(len(p) > MAX_TEMPLATE_PARAM for p in params):
            out.append(Problem("bad_template_params", BAD_TEMPLATE_PARAMS))
    for issue in interactive.issues(
        text, content.buttons, content.rows, content.list_button, content.link,
        has_media=bool(content.media_url), has_template=template is not None,
    ):  # fmt: skip
        limit = {"limit": issue.limit} if issue.limit is not None else {}
        out.append(Problem(issue.code, issue.msgid, limit))
    if capabilities is None:
        return out
    if template is not None and not capabilities.templates:
        out.append(Problem("no_templates", NO_TEMPLATES))
    if content.media_url and not capabilities.can_send_media(content.media_kind or "", text):
        out.append(Problem("no_media", NO_MEDIA))
    if len(text) > capabilities.max_text_len and len(text) <= MAX_TEXT:
        out.append(Problem("too_long", TOO_LONG_HERE, {"limit": capabilities.max_text_len}))
    return out


def require_valid(content: Content, capabilities: Capabilities | None = None) -> None:
    """Raise InvalidInput naming the first rule `content` breaks (a 422 the caller can act on)."""
    found = problems(content, capabilities)
    if found:
        raise InvalidInput(found[0].msgid, **found[0].params)
