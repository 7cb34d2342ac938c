"""German and English for everything a contact or staff member reads (U2).

Catalogs are gettext .po files under `locales/<locale>/LC_MESSAGES/` (one per
area: core, public pages, admin ...), merged and compiled in memory with Babel
at start-up, so no compiled .mo files live in the repository.
"""

from __future__ import annotations

import gettext
import io
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("de", "en")
_DIR = Path(__file__).parent / "locales"


@lru_cache(maxsize=8)
def translations(locale: str) -> gettext.NullTranslations:
    """The translations of one locale; English msgids are the fallback."""
    locale = pick_locale(locale)
    files = sorted((_DIR / locale / "LC_MESSAGES").glob("*.po"))
    if not files:
        return gettext.NullTranslations()
    catalog = Catalog(locale=locale)
    for po in files:
        with po.open("rb") as fh:
            for msg in read_po(fh, locale=locale):
                if msg.id and msg.string:
                    catalog.add(msg.id, msg.string)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def pick_locale(value: str | None, default: str = "de") -> str:
    """Map 'de-DE', 'en_US', 'de' ... to a supported locale."""
    if not value:
        return default
    base = value.replace("_", "-").split("-")[0].strip().lower()
    return base if base in LOCALES else default


def negotiate(accept_language: str | None, default: str = "de") -> str:
    """Pick a locale from an Accept-Language header, by its q-values."""
    if not accept_language:
        return default
    ranked: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        lang, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        base = lang.split("-")[0].strip().lower()
        if base in LOCALES:
            ranked.append((weight, base))
    return max(ranked)[1] if ranked else default


def t(locale: str | None, msgid: str, **params: Any) -> str:
    """Translate `msgid` into `locale` and fill its {placeholders}."""
    text = translations(pick_locale(locale)).gettext(msgid)
    return text.format(**params) if params else text
