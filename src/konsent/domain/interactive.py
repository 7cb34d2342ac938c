"""Interactive messages: reply buttons, a list, a link button, and their text fallback (CH5, M1-M3).

One content model for the inbox, the bot, broadcasts and the API. The limits are the
strictest provider's (WhatsApp Cloud API), so a message that passes here is expressible
on every channel that declares the feature, and a readable numbered text everywhere else
(`fallback_text`): the contact answers with the number or the title, and the bot's
`flowsteps.match_option` understands both. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_BUTTONS = 3  # reply buttons (WhatsApp: "up to 3 buttons")
MAX_BUTTON_TITLE = 20
MAX_ROWS = 10  # list rows, all sections together
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_LIST_BUTTON = 20  # the label of the button that opens the list
MAX_LINK_TITLE = 20  # WhatsApp cta_url display_text, Messenger/Telegram URL button title
MAX_BODY = 1024  # the text above buttons, list or link
MAX_ID_BYTES = 64  # Telegram's callback_data is 1-64 bytes; the strictest, so ids travel everywhere
MAX_URL = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def N_(msgid: str) -> str:
    """Mark a msgid for extraction; it is translated where it is shown."""
    return msgid


LIST_BUTTON = N_("Choose")  # the label of the bot's list button, in the contact's language
BROADCAST_CHOICES = N_("a broadcast carries up to 3 reply buttons or one link button, no list")
ONE_KIND = N_("a message has reply buttons, a list or a link button, only one of them")
NEEDS_TEXT = N_("buttons, a list or a link button need a text above them")
BODY_TOO_LONG = N_("the text above buttons, a list or a link button is at most {limit} characters long")
NOT_WITH_MEDIA = N_("buttons, a list or a link button go without media or a template")
TOO_MANY_BUTTONS = N_("at most {limit} reply buttons")
BAD_BUTTON_TITLE = N_("a button title has 1 to {limit} characters")
TOO_MANY_ROWS = N_("a list has 1 to {limit} rows")
BAD_ROW_TITLE = N_("a list row title has 1 to {limit} characters")
BAD_ROW_DESCRIPTION = N_("a list row description is at most {limit} characters long")
BAD_LIST_BUTTON = N_("the button that opens the list needs a label of 1 to {limit} characters")
BAD_CHOICE_ID = N_("a button or row id has 1 to 64 bytes, without control characters, and is unique")
DUPLICATE_TITLE = N_("two buttons or rows have the same title")
BAD_LINK_TITLE = N_("a link button title has 1 to {limit} characters")
BAD_LINK_URL = N_("a link button opens an https:// address of at most 2000 characters")


@dataclass(frozen=True)
class Button:
    """A reply button: the contact taps it, `id` comes back as the reply's payload, `title` as its text."""

    id: str
    title: str


@dataclass(frozen=True)
class ListRow:
    """One row of a list message; a tap comes back like a button's."""

    id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class LinkButton:
    """A call-to-action button that opens `url` (nothing comes back when tapped)."""

    title: str
    url: str


@dataclass(frozen=True)
class Issue:
    """One broken rule: a stable code, a msgid and its parameters (domain.content.Problem's parts)."""

    code: str
    msgid: str
    limit: int | None = None


def _bad_title(title: str, limit: int) -> bool:
    return not title.strip() or len(title) > limit or bool(_CONTROL.search(title))


def _bad_id(ident: str) -> bool:
    return not ident or len(ident.encode()) > MAX_ID_BYTES or bool(_CONTROL.search(ident))


def _choice_issues(ids: list[str], titles: list[str]) -> list[Issue]:
    out = []
    if any(_bad_id(i) for i in ids) or len(set(ids)) != len(ids):
        out.append(Issue("bad_choice_id", BAD_CHOICE_ID))
    folded = [t.strip().casefold() for t in titles]
    if len(set(folded)) != len(folded):  # WhatsApp refuses it, and a numbered answer would be ambiguous
        out.append(Issue("duplicate_title", DUPLICATE_TITLE))
    return out


def issues(
    text: str,
    buttons: Sequence[Button],
    rows: Sequence[ListRow],
    list_button: str,
    link: LinkButton | None,
    *,
    has_media: bool,
    has_template: bool,
) -> list[Issue]:
    """Every rule the interactive part of a message breaks ([] for a message without one)."""
    kinds = sum(1 for part in (buttons, rows, link) if part)
    if not kinds and not list_button:
        return []
    out: list[Issue] = []
    if kinds > 1:
        out.append(Issue("interactive_mixed", ONE_KIND))
    if has_media or has_template:
        out.append(Issue("interactive_media", NOT_WITH_MEDIA))
    if not text.strip():
        out.append(Issue("interactive_text", NEEDS_TEXT))
    elif len(text) > MAX_BODY:
        out.append(Issue("interactive_text", BODY_TOO_LONG, MAX_BODY))
    if buttons:
        if len(buttons) > MAX_BUTTONS:
            out.append(Issue("too_many_buttons", TOO_MANY_BUTTONS, MAX_BUTTONS))
        if any(_bad_title(b.title, MAX_BUTTON_TITLE) for b in buttons):
            out.append(Issue("bad_button_title", BAD_BUTTON_TITLE, MAX_BUTTON_TITLE))
        out += _choice_issues([b.id for b in buttons], [b.title for b in buttons])
    if rows or list_button:
        if not 1 <= len(rows) <= MAX_ROWS:
            out.append(Issue("too_many_rows", TOO_MANY_ROWS, MAX_ROWS))
        if any(_bad_title(r.title, MAX_ROW_TITLE) for r in rows):
            out.append(Issue("bad_row_title", BAD_ROW_TITLE, MAX_ROW_TITLE))
        if any(len(r.description) > MAX_ROW_DESCRIPTION or _CONTROL.search(r.description) for r in rows):
            out.append(Issue("bad_row_description", BAD_ROW_DESCRIPTION, MAX_ROW_DESCRIPTION))
        if _bad_title(list_button, MAX_LIST_BUTTON):
            out.append(Issue("bad_list_button", BAD_LIST_BUTTON, MAX_LIST_BUTTON))
        out += _choice_issues([r.id for r in rows], [r.title for r in rows])
    if link is not None:
        if _bad_title(link.title, MAX_LINK_TITLE):
            out.append(Issue("bad_link_title", BAD_LINK_TITLE, MAX_LINK_TITLE))
        if not is_https_url(link.url):
            out.append(Issue("bad_link_url", BAD_LINK_URL))
    return out


def is_https_url(url: str) -> bool:
    """An absolute https:// address without credentials or blanks, at most MAX_URL characters."""
    if not url or len(url) > MAX_URL or any(ch.isspace() for ch in url) or _CONTROL.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not (parts.username or parts.password)


def fallback_text(
    text: str, buttons: Sequence[Button], rows: Sequence[ListRow], link: LinkButton | None
) -> str:
    """The message as plain text for a channel without the feature: numbered options, or the link.

    The contact answers with the number or the title; both reach the bot and the inbox.
    """
    lines: list[str] = []
    if buttons:
        lines = [f"{i}. {b.title}" for i, b in enumerate(buttons, 1)]
    elif rows:
        lines = [
            f"{i}. {r.title}" + (f" – {r.description}" * bool(r.description)) for i, r in enumerate(rows, 1)
        ]
    elif link is not None:
        lines = [f"{link.title}: {link.url}"]
    if not lines:
        return text
    return f"{text}\n" + "\n".join(lines) if text else "\n".join(lines)


def picked(offered: Sequence[str], said: str) -> str:
    """The option a contact's text answer names, by its number in `offered` or by its title;
    "" when it names none (the inbox shows "2" as the option it stands for, CH5)."""
    said = said.strip().rstrip(".)").strip().casefold()
    if not said or not offered:
        return ""
    if said.isascii() and said.isdigit() and len(said) <= 3:
        n = int(said)
        return offered[n - 1] if 1 <= n <= len(offered) else ""
    return next((o for o in offered if o.strip().casefold() == said), "")


def choices(options: Sequence[tuple[str, str]]) -> tuple[tuple[Button, ...], tuple[ListRow, ...]]:
    """(id, title) options as reply buttons (up to 3 short titles) or list rows (up to 10).

    Neither, when they fit neither: the caller sends them as numbered text (`fallback_text`).
    """
    ids = [i for i, _ in options]
    if not options or any(_bad_id(i) for i in ids) or len(set(ids)) != len(ids):
        return (), ()
    if _choice_issues(ids, [t for _, t in options]):
        return (), ()
    if len(options) <= MAX_BUTTONS and not any(_bad_title(t, MAX_BUTTON_TITLE) for _, t in options):
        return tuple(Button(i, t) for i, t in options), ()
    if len(options) <= MAX_ROWS and not any(_bad_title(t, MAX_ROW_TITLE) for _, t in options):
        return (), tuple(ListRow(i, t) for i, t in options)
    return (), ()


def numbered_ids(titles: Sequence[object], prefix: str) -> list[str]:
    """Ids for options typed without one (the composer, a broadcast form): `<prefix>1`, `<prefix>2` ..."""
    return [f"{prefix}{i}" for i in range(1, len(titles) + 1)]


@dataclass(frozen=True)
class Interactive:
    """The interactive part of a message as a composer, a broadcast form or the API hands it over."""

    buttons: tuple[Button, ...] = ()
    rows: tuple[ListRow, ...] = ()
    list_button: str = ""
    link: LinkButton | None = None

    def parts(self) -> dict[str, Any]:
        """Keyword arguments of `channels.base.OutboundContent`."""
        return {
            "buttons": self.buttons,
            "rows": self.rows,
            "list_button": self.list_button,
            "link": self.link,
        }


KINDS = ("", "buttons", "list", "link")


def from_form(
    kind: str,
    titles: Sequence[str],
    descriptions: Sequence[str] = (),
    list_button: str = "",
    link_title: str = "",
    link_url: str = "",
) -> Interactive:
    """What a form's fields mean: titles typed without ids get `b1`, `b2` … / `r1`, `r2` …; blank
    lines are left out; the checks are `issues`' (one place)."""
    if kind == "buttons":
        kept = [t.strip() for t in titles if t.strip()]
        ids = numbered_ids(kept, "b")
        return Interactive(buttons=tuple(Button(i, t) for i, t in zip(ids, kept, strict=True)))
    if kind == "list":
        pairs = [
            (t.strip(), (descriptions[n] if n < len(descriptions) else "").strip())
            for n, t in enumerate(titles)
            if t.strip()
        ]
        ids = numbered_ids(pairs, "r")
        rows = tuple(ListRow(i, t, d) for i, (t, d) in zip(ids, pairs, strict=True))
        return Interactive(rows=rows, list_button=list_button.strip())
    if kind == "link":
        return Interactive(link=LinkButton(link_title.strip(), link_url.strip()))
    return Interactive()


def offered(body: Mapping[str, Any]) -> list[str]:
    """What a stored outbound body offered to tap: button and row titles, a link button's title and
    address (for the contact's data export; [] for everything else)."""
    out = [str(b.get("title", "")) for b in body.get("buttons") or [] if isinstance(b, Mapping)]
    out += [str(r.get("title", "")) for r in body.get("rows") or [] if isinstance(r, Mapping)]
    link = body.get("link")
    if isinstance(link, Mapping):
        out.append(f"{link.get('title', '')}: {link.get('url', '')}")
    return out
