"""What a contact can send us beyond text, and how staff see it (CH5, M2).

Channels turn every inbound kind into an `InboundMessage` with a `kind` and `details`; nothing a
customer sends is dropped. Only the conversational kinds go through keywords, opt-in codes and the bot;
the others are stored, shown in the inbox, the contact page and the export, and covered by retention
and erasure like any message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def N_(msgid: str) -> str:
    """Mark a message id for the catalogs; translated where it is shown."""
    return msgid


# kinds that carry words a keyword, an opt-in code or the bot may act on
CONVERSATIONAL = frozenset({"text", "button", "media", "start"})
# kinds that say nothing new to answer (no bot, no keywords) and do not open a messaging window
REACTIONS = frozenset({"reaction", "revoke"})

# kind -> its label for staff
KINDS: dict[str, str] = {
    "text": N_("Text"),
    "button": N_("Button"),
    "media": N_("Media"),
    "start": N_("Start"),
    "location": N_("Location"),
    "contacts": N_("Contact card"),
    "reaction": N_("Reaction"),
    "order": N_("Order"),
    "flow_reply": N_("Form answers"),
    "call_permission": N_("Call permission"),
    "edit": N_("Edited message"),
    "revoke": N_("Deleted by the customer"),
    "story": N_("Story reply or mention"),
    "postback": N_("Button"),
    "unsupported": N_("Not supported by the provider"),
    "system": N_("System message"),
}

# detail field -> its label for staff; fields not listed are shown under their own name
FIELDS: dict[str, str] = {
    "latitude": N_("Latitude"),
    "longitude": N_("Longitude"),
    "name": N_("Name"),
    "address": N_("Address"),
    "url": N_("Link"),
    "map": N_("Map"),
    "phone": N_("Phone number"),
    "email": N_("E-mail"),
    "organisation": N_("Organisation"),
    "emoji": N_("Emoji"),
    "removed": N_("Reaction removed"),
    "item": N_("Item"),
    "catalog": N_("Catalogue"),
    "total": N_("Total"),
    "response": N_("Answer"),
    "expires": N_("Valid until"),
    "source": N_("Source"),
    "error": N_("Provider's reason"),
    "error_code": N_("Provider's error code"),
    "type": N_("Type"),
    "referral_source": N_("Came from an ad or post"),
    "referral_headline": N_("Ad headline"),
    "referral_url": N_("Ad link"),
    "referral_click_id": N_("Ad click id"),
    "story_url": N_("Story"),
    "title": N_("Title"),
    "payload": N_("Payload"),
    "refers_to": N_("On the message"),
    "truncated": N_("More fields were cut"),
}

MAX_DETAILS = 60  # fields kept per message; an order or a Flow with more is cut, and says so
MAX_VALUE = 1000


@dataclass(frozen=True)
class Received:
    """How staff see one inbound message that is more than text."""

    kind: str
    label: str  # msgid of the kind
    lines: tuple[tuple[str, str], ...]  # (label msgid or field name, value)
    ref_id: str | None = None


def clip_details(pairs: Iterable[tuple[str, object]]) -> tuple[tuple[str, str], ...]:
    """Keep (field, value) pairs as short strings without NUL, at most MAX_DETAILS of them."""
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if value is None or value == "":
            continue
        text = str(value).replace("\x00", "")[:MAX_VALUE]
        if len(out) == MAX_DETAILS:
            out[-1] = ("truncated", "…")
            break
        out.append((str(key)[:40], text))
    return tuple(out)


def coordinate(value: object, what: str) -> str:
    """A latitude or longitude as a short decimal string; ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number")
    number = float(value)
    if not -180.0 <= number <= 180.0:
        raise ValueError(f"{what} out of range")
    return f"{number:.6f}".rstrip("0").rstrip(".")


def map_link(latitude: str, longitude: str) -> str:
    """A link to the coordinates on OpenStreetMap (opened by staff on click, never loaded)."""
    return f"https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=17/{latitude}/{longitude}"


def describe(
    kind: str, details: Mapping[str, str] | Iterable[tuple[str, str]], ref_id: str | None = None
) -> Received | None:
    """The staff view of a stored inbound body; None for plain text, buttons and media (shown as before)."""
    pairs = tuple(details.items()) if isinstance(details, Mapping) else tuple(details)
    if kind in CONVERSATIONAL and not pairs:
        return None
    lines = tuple((FIELDS.get(k, k), v) for k, v in pairs)
    return Received(kind, KINDS.get(kind, KINDS["unsupported"]), lines, ref_id)


def details_of(body: Mapping[str, object]) -> list[list[str]]:
    """The (field, value) pairs of a stored inbound body, as stored."""
    raw = body.get("details")
    if not isinstance(raw, list):
        return []
    return [[str(p[0]), str(p[1])] for p in raw if isinstance(p, list | tuple) and len(p) == 2]


def view_of(
    body: Mapping[str, object], texts_by_provider_id: Mapping[str, str] | None = None
) -> Received | None:
    """The staff view of a stored inbound body; a reaction, edit or deletion names its message."""
    kind = str(body.get("kind") or "text")
    pairs = [(k, v) for k, v in details_of(body)]
    ref = body.get("ref")
    ref_id = str(ref) if isinstance(ref, str) else None
    if ref_id and texts_by_provider_id is not None and ref_id in texts_by_provider_id:
        pairs.append(("refers_to", texts_by_provider_id[ref_id][:120]))
    return describe(kind, pairs, ref_id)
