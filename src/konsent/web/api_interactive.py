"""The interactive part of an API message or broadcast: reply buttons, a list, a link button (CH5, M4).

Only the shape is checked here (and sizes far beyond any limit); the limits themselves are
`domain.interactive`'s, the one place every sending path asks, so the API answers 422 with
the same message as the inbox.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from konsent.domain.interactive import Button, Interactive, LinkButton, ListRow

_Short = Annotated[str, Field(max_length=200)]


class ButtonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: _Short | None = Field(
        None, description="Comes back as the tap's `payload` (1-64 bytes); defaults to `b1`, `b2`, `b3`."
    )
    title: _Short = Field(description="At most 20 characters; comes back as the tap's text.")


class RowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: _Short | None = Field(
        None, description="Comes back as the tap's `payload`; defaults to `r1`, `r2` ..."
    )
    title: _Short = Field(description="At most 24 characters.")
    description: _Short = Field("", description="At most 72 characters; optional.")


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    button: _Short = Field(description="The label of the button that opens the list, at most 20 characters.")
    rows: list[RowIn] = Field(max_length=50, description="1 to 10 rows.")


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: _Short = Field(description="The button's title, at most 20 characters.")
    url: str = Field(max_length=4000, description="An https:// address the button opens.")


BUTTONS_DOC = (
    "Up to 3 reply buttons under `text` (at most 1024 characters then). Channels without buttons get "
    "numbered text; the contact answers by number or title. Not with media, a template, `list` or `link`."
)
LIST_DOC = "A list of up to 10 rows behind a button; numbered text where the channel has no lists."
LINK_DOC = "One button that opens an https address; the address in the text where the channel has none."


def to_domain(buttons: list[ButtonIn] | None, choice_list: ListIn | None, link: LinkIn | None) -> Interactive:
    """The API's shape as the domain's content model; missing ids numbered."""
    return Interactive(
        buttons=tuple(Button(b.id or f"b{i}", b.title) for i, b in enumerate(buttons or [], 1)),
        rows=tuple(
            ListRow(r.id or f"r{i}", r.title, r.description)
            for i, r in enumerate(choice_list.rows if choice_list else [], 1)
        ),
        list_button=choice_list.button if choice_list else "",
        link=LinkButton(link.title, link.url) if link else None,
    )
