"""Domain errors carry no HTTP status and every message of theirs is translatable (#11 item 6, U2):
web/errors.py maps codes to statuses, and each message is a msgid with parameters, rendered in
German or English when it is shown."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from babel.messages.pofile import read_po

import konsent
from konsent.i18n import translations
from konsent.web.errors import STATUS_BY_CODE
from tests.flows.support import api_token, auth

SRC = Path(konsent.__file__).parent
ROOTS = {"DomainError"}


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(SRC.rglob("*.py")) if "migrations" not in p.parts]


def _error_classes(trees: list[tuple[Path, ast.Module]]) -> dict[str, ast.ClassDef]:
    """Every subclass of DomainError in the source, by name."""
    classes = {n.name: n for _, tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    found = {name: classes[name] for name in ROOTS}
    grew = True
    while grew:
        grew = False
        for name, node in classes.items():
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if name not in found and bases & set(found):
                found[name], grew = node, True
    return found


def _messages(trees, classes) -> tuple[dict[str, str], list[str]]:  # type: ignore[no-untyped-def]
    """msgid → where, for every literal an error is raised with; and every f-string message."""
    found: dict[str, str] = {}
    formatted: list[str] = []
    for path, tree in trees:
        for n in ast.walk(tree):
            if isinstance(n, ast.ClassDef) and n.name in classes:
                for b in n.body:
                    is_message = isinstance(b, ast.Assign) and any(
                        getattr(t, "id", "") == "message" for t in b.targets
                    )
                    if is_message and isinstance(b.value, ast.Constant):  # type: ignore[union-attr]
                        found.setdefault(b.value.value, f"{path.name}:{b.lineno}")  # type: ignore[union-attr]
            if not isinstance(n, ast.Call):
                continue
            name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
            if name not in classes:
                continue
            for arg in [*n.args[:1], *(k.value for k in n.keywords if k.arg in ("detail", "message"))]:
                if isinstance(arg, ast.JoinedStr):
                    formatted.append(f"{path.relative_to(SRC)}:{n.lineno}")
                elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, f"{path.relative_to(SRC)}:{n.lineno}")
    return {k: v for k, v in found.items() if k not in ("{detail}", "{reason}")}, formatted


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_no_error_is_raised_with_an_f_string_message():
    """An f-string bakes English and values together: untranslatable. Use a msgid and parameters."""
    trees = _trees()
    _, formatted = _messages(trees, _error_classes(trees))
    assert formatted == []


def test_every_error_message_has_german_text_with_the_same_placeholders():
    trees = _trees()
    messages, _ = _messages(trees, _error_classes(trees))
    assert len(messages) > 80  # the walk really finds them
    german = translations("de")._catalog  # type: ignore[attr-defined]
    missing = sorted(f"{where}: {m!r}" for m, where in messages.items() if m not in german)
    assert missing == []
    broken = sorted(m for m in messages if _fields(german[m]) != _fields(m))
    assert broken == []


def test_the_english_error_catalog_holds_every_german_entry():
    def ids(locale: str) -> set[str]:
        with (SRC / "locales" / locale / "LC_MESSAGES" / "errors.po").open("rb") as fh:
            return {m.id for m in read_po(fh) if m.id and m.string}

    assert ids("de") and ids("de") == ids("en")


def test_domain_errors_carry_no_http_status_and_web_maps_every_code():
    trees = _trees()
    classes = _error_classes(trees)
    with_status = sorted(
        name
        for name, node in classes.items()
        for b in node.body
        if isinstance(b, ast.Assign) and any(getattr(t, "id", "") == "status" for t in b.targets)
    )
    assert with_status == []
    codes = {
        b.value.value
        for node in classes.values()
        for b in node.body
        if isinstance(b, ast.Assign)
        and any(getattr(t, "id", "") == "code" for t in b.targets)
        and isinstance(b.value, ast.Constant)
    }
    assert codes <= set(STATUS_BY_CODE), codes - set(STATUS_BY_CODE)


def test_api_error_is_english_by_default_and_german_when_asked(ctx, demo, client):
    """The message is rendered in the caller's language; code and parameters stay the same."""
    from tests.flows.support import contact_of
    from tests.helpers import subscribe

    subscribe(ctx, "+4915112345678", ["angebote"])
    cid = contact_of(ctx, "+4915112345678").id
    body = {"contact_id": cid, "purpose": "newsletter:gibtsnicht", "text": "Hallo"}
    headers = auth(api_token(ctx))
    en = client.post("/api/v1/messages", json=body, headers=headers)
    de = client.post("/api/v1/messages", json=body, headers={**headers, "accept-language": "de-DE"})
    assert en.status_code == de.status_code == 422
    assert en.json()["message"] == "unknown topic 'gibtsnicht' in purpose 'newsletter:gibtsnicht'"
    assert de.json()["message"] == "unbekanntes Thema 'gibtsnicht' im Zweck 'newsletter:gibtsnicht'"
    assert en.json()["code"] == de.json()["code"] == "invalid_input"
    assert en.json()["topic"] == "'gibtsnicht'"
