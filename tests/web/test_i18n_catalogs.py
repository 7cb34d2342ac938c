"""Every string konsent shows has a German translation, with the same placeholders (U2)."""

from __future__ import annotations

import re
import string
from collections import defaultdict
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import konsent
from konsent.i18n import t, translations

SRC = Path(konsent.__file__).parent
PO_DIR = SRC / "locales" / "de" / "LC_MESSAGES"

# `t(locale, msgid, ...)` takes the msgid second; `_` and `N_` take it first.
KEYWORDS = {"t": (2,), "_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [
    ("**/locales/**", "ignore"),
    ("**.py", "python"),
    ("web/templates/**.html", "jinja2.ext:babel_extract"),
    ("web/templates/**.txt", "jinja2.ext:babel_extract"),
]


def extracted() -> dict[str, list[str]]:
    """msgid → where it is used, from Python code and Jinja2 templates."""
    out: dict[str, list[str]] = defaultdict(list)
    options = {"web/templates/**.html": {"silent": "false"}, "web/templates/**.txt": {"silent": "false"}}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(SRC), METHODS, options, keywords=KEYWORDS, strip_comment_tags=True
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            # Babel's Python extractor is token-based: `t(loc, STRINGS["qr_label"])` yields the key
            # "qr_label". Such lower-case identifiers are lookup keys, never a text anyone reads.
            if msgid and not re.fullmatch(r"[a-z0-9_]+", msgid):
                out[msgid].append(f"{filename}:{lineno}")
    return out


def _fields(text: str) -> set[str]:
    """The {placeholders} `.format(**params)` fills; `{first_name|there}` is literal example text."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return {"<unbalanced braces>"}
    return {name for _, name, _, _ in parsed if name is not None and name.isidentifier()}


def test_extraction_finds_the_core_texts():
    """The extractor itself works: the contact-facing texts of the core are found."""
    ids = extracted()
    assert "You have no active subscriptions with us." in ids
    assert "Sign me up for news from {tenant}. Code: {code}" in ids


def test_every_msgid_has_a_german_translation():
    """U2: each msgid in code or templates is translated in the merged German catalog."""
    catalog = translations("de")._catalog  # type: ignore[attr-defined]
    missing = {msgid: where for msgid, where in extracted().items() if msgid not in catalog}
    report = "\n".join(
        f"{where[0]}: {msgid!r}" for msgid, where in sorted(missing.items(), key=lambda x: x[1])
    )
    assert not missing, f"{len(missing)} msgids without German translation:\n{report}"


def _po_messages() -> list[tuple[str, str, str]]:
    out = []
    for po in sorted(PO_DIR.glob("*.po")):
        with po.open("rb") as fh:
            for msg in read_po(fh, locale="de"):
                if not msg.id:
                    continue
                ids = msg.id if isinstance(msg.id, tuple) else (msg.id,)
                strs = msg.string if isinstance(msg.string, tuple) else (msg.string,)
                for msgid, msgstr in zip(ids, strs, strict=False):
                    if msgstr:
                        out.append((po.name, msgid, msgstr))
    return out


def test_german_translations_keep_the_placeholders():
    """A translation that drops or renames {placeholder} would crash or mislead at send time."""
    wrong = [
        f"{po}: {msgid!r} → {msgstr!r}"
        for po, msgid, msgstr in _po_messages()
        if _fields(msgid) != _fields(msgstr)
    ]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_the_same_msgid_is_translated_the_same_way_in_every_catalog():
    """Catalogs are merged; two areas translating one msgid differently would make one of them lose."""
    seen: dict[str, dict[str, str]] = defaultdict(dict)
    for po, msgid, msgstr in _po_messages():
        seen[msgid][po] = msgstr
    clashes = [f"{msgid!r}: {per_po}" for msgid, per_po in seen.items() if len(set(per_po.values())) > 1]
    assert not clashes, "conflicting translations:\n" + "\n".join(clashes)


@pytest.mark.parametrize(
    ("msgid", "params"),
    [
        ("Unknown topic: {topic}", {"topic": "wetter"}),
        ("You have unsubscribed from: {topics}. You will get no more messages about this.", {"topics": "A"}),
    ],
)
def test_translated_text_fills_its_placeholders(msgid: str, params: dict[str, str]):
    de = t("de", msgid, **params)
    assert de != msgid.format(**params) and all(v in de for v in params.values())


def _ledger_actions() -> set[str]:
    """Every action the code appends to the ledger: `append_ledger(s, t, c, purpose, "<action>", …)`."""
    import ast

    actions = set()
    for py in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "append_ledger"
                and len(node.args) >= 5
                and isinstance(node.args[4], ast.Constant)
            ):
                actions.add(str(node.args[4].value))
    return actions


def test_labels_built_from_values_are_translated():
    """Templates show `_("action:" ~ e.action)`, `_("state:" ~ …)`, `_("status:" ~ …)`: each value the
    core produces needs its German label, or the proof shows a raw key."""
    from konsent.domain.purposes import ConsentStatus

    catalog = translations("de")._catalog  # type: ignore[attr-defined]
    actions = _ledger_actions()
    assert {"granted", "withdrawn"} <= actions
    statuses = [
        "queued",
        "retrying",
        "sent",
        "delivered",
        "read",
        "failed",
        "refused",
        "cancelled",
        "received",
    ]
    wanted = (
        [f"action:{a}" for a in sorted(actions)]
        + [f"state:{s.value}" for s in ConsentStatus]
        + [f"status:{s}" for s in statuses]
    )
    missing = [m for m in wanted if m not in catalog]
    assert not missing, f"labels without German translation: {missing}"
