"""Outbound media: which kinds exist and what a media link must look like (M3, CH3).

A media link is the company's own content (a product photo, a PDF), not personal
data; it is still stored inside the sealed message body together with its caption.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MEDIA_KINDS = ("image", "document", "video", "audio")
MAX_MEDIA_URL = 2000  # characters; providers fetch the link themselves, and long ones break
MAX_FILENAME = 240
MAX_CAPTION = 1024  # WhatsApp's and Telegram's caption limit; a longer caption fits no channel
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_FILENAME_RE = re.compile(r"^[^\x00-\x1f/\\]{1,240}$")


def media_problem(url: str | None, kind: str | None, filename: str | None = None) -> str:
    """Why this media part cannot be sent ("" when it can); an English msgid-shaped sentence."""
    if not url and not kind and not filename:
        return ""
    if not url:
        return "a media attachment needs a link"
    if len(url) > MAX_MEDIA_URL:
        return "the media link is longer than 2000 characters"
    parts = urlsplit(url)
    # http only on this machine: an installation tried out on 127.0.0.1 serves agents' attachments
    # to its simulator so (no provider can reach such a link anyway)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK
    if (parts.scheme != "https" and not loopback) or not parts.hostname or any(ch.isspace() for ch in url):
        return "the media link must be an https:// address"
    if parts.username or parts.password:
        return "the media link must not carry a user name or password"
    if kind not in MEDIA_KINDS:
        return "the media kind must be one of image, document, video, audio"
    if filename is not None and filename != "":
        if kind != "document":
            return "only a document has a file name"
        if not _FILENAME_RE.match(filename):
            return "a file name has at most 240 characters and no slashes"
    return ""
