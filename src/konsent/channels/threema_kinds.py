"""Threema E2E messages beyond text (CH5): locations, files, images and anything else, kept and shown.

Type codes from ../shared/protocols/threema.md (0x02 image, 0x10 location, 0x13 video, 0x17 file with a
JSON descriptor). Media blobs are not fetched (the blob download is not built); what the descriptor says
is shown instead, so the agent knows the customer sent something.
"""

from __future__ import annotations

import json

from konsent.channels.whatsapp_kinds import Parsed
from konsent.domain.received import clip_details, coordinate, map_link

TYPE_IMAGE, TYPE_LOCATION, TYPE_VIDEO, TYPE_FILE = 0x02, 0x10, 0x13, 0x17


def location(content: bytes) -> Parsed:
    """'lat,lng[,accuracy]' then optional lines: a place's name and its address."""
    lines = content.decode("utf-8").split("\n")
    parts = lines[0].split(",")
    if len(parts) < 2:
        raise ValueError("location without coordinates")
    lat, lng = coordinate(parts[0], "latitude"), coordinate(parts[1], "longitude")
    rest = [line.strip() for line in lines[1:] if line.strip()]
    name, address = (rest[0], " ".join(rest[1:])) if len(rest) > 1 else ("", " ".join(rest))
    pairs = [
        ("name", name),
        ("address", address),
        ("latitude", lat),
        ("longitude", lng),
        ("map", map_link(lat, lng)),
    ]
    return Parsed("location", name or address, clip_details(pairs))


def file(content: bytes) -> Parsed:
    try:
        desc = json.loads(content.decode("utf-8"))
    except ValueError as exc:
        raise ValueError("file descriptor is not JSON") from exc
    if not isinstance(desc, dict):
        raise ValueError("file descriptor must be an object")
    caption = str(desc.get("d") or "")[:1000]
    pairs = [("type", "file"), ("name", desc.get("n")), ("title", desc.get("m")), ("payload", desc.get("s"))]
    return Parsed("unsupported", caption, clip_details(pairs))


def parse_other(kind: int, content: bytes) -> Parsed:
    """Every E2E type other than text and delivery receipts; content that does not read is still kept."""
    try:
        if kind == TYPE_LOCATION:
            return location(content)
        if kind == TYPE_FILE:
            return file(content)
    except (ValueError, UnicodeDecodeError):
        pass  # an authentic message we cannot read: shown as unsupported rather than refused and lost
    label = {TYPE_IMAGE: "image", TYPE_VIDEO: "video"}.get(kind, f"threema:{kind:#04x}")
    return Parsed("unsupported", "", clip_details([("type", label)]))
