"""Files agents attach in the inbox: which kinds and types are accepted, and which are active
content that a browser must never render (M1, S8, #17).

Pure rules, no I/O: the flow checks size and type with these before anything is stored, and
the web layer asks `serve_inline` before it lets a browser show a file instead of saving it.
"""

from __future__ import annotations

import re

# Types a browser would execute or render with scripts: never inline, always as a download.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/javascript",
        "text/javascript",
        "application/ecmascript",
        "text/xml",
        "application/xml",
        "application/x-shockwave-flash",
    }
)
ACTIVE_SUFFIXES = (".html", ".htm", ".xhtml", ".svg", ".svgz", ".js", ".mjs", ".xml", ".swf")
# What a browser may show inline, once the bytes are checked to be what the type says.
INLINE_IMAGES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_MARKUP = re.compile(rb"<\s*(!doctype\s+html|html|svg|script|iframe|body|\?xml)", re.IGNORECASE)
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,60}/[a-z0-9][a-z0-9!#$&^_.+-]{0,60}$")


def clean_type(declared: str) -> str:
    """The MIME type without parameters, lower case; "" when it is not a type at all."""
    base = declared.split(";", 1)[0].strip().lower()
    return base if _TYPE.match(base) else ""


def allowed_types(setting: str) -> frozenset[str]:
    """The installation's list of accepted types (a comma-separated setting)."""
    return frozenset(t for t in (clean_type(x) for x in setting.split(",")) if t)


def media_kind(mime: str) -> str:
    """How a channel sends this type: image, video, audio or (anything else) document."""
    major = mime.split("/", 1)[0]
    if mime in INLINE_IMAGES or (major == "image" and mime != "image/svg+xml"):
        return "image"
    if major in ("video", "audio"):
        return major
    return "document"


def is_active(mime: str, filename: str, head: bytes) -> bool:
    """Whether the file is, names itself or looks like content a browser would run (HTML, SVG, JS)."""
    if mime in ACTIVE_TYPES or filename.lower().endswith(ACTIVE_SUFFIXES):
        return True
    return bool(_MARKUP.search(head[:1024]))


def serve_inline(mime: str, filename: str, head: bytes) -> bool:
    """Whether staff's browser may show this file in the page: only raster images whose bytes
    start as their type says, never active content."""
    signatures = INLINE_IMAGES.get(mime)
    if not signatures or is_active(mime, filename, head):
        return False
    return any(head.startswith(sig) for sig in signatures)


def safe_filename(name: str) -> str:
    """A file name without paths or control characters, at most 120 characters ("file" if empty)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>:|?*')
    name = " ".join(name.split()).strip(". ")
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:120]
    return name or "file"
