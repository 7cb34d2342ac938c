"""Message templates as WhatsApp knows them: the pure rules for checking, importing and filling
them (M1, M3, CH3). No I/O: `flows.templates` keeps the per-tenant registry.

A template's body carries numbered variables `{{1}}` … `{{n}}`; their count is derived from
the body, so a send with the wrong number of values is refused before any provider sees it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from konsent.domain.content import TEMPLATE_LANGUAGE, TEMPLATE_NAME
from konsent.domain.errors import DomainError

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED")
MAX_BODY = 1024  # Meta's limit for a template body
MAX_HEADER = 60
MAX_BUTTONS = 10
MAX_BUTTON_TEXT = 25
MAX_IMPORT = 500

_NAME = TEMPLATE_NAME  # one pattern for registering and for sending (domain.content)
_LANGUAGE = TEMPLATE_LANGUAGE
_VAR = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def N_(msgid: str) -> str:
    """Mark a msgid for extraction; it is translated where it is shown."""
    return msgid


BAD_NAME = N_("a template name has lower-case letters, digits and underscores")
BAD_LANGUAGE = N_("a template language looks like de or en_US")
BAD_CATEGORY = N_("the category must be MARKETING, UTILITY or AUTHENTICATION")
BAD_STATUS = N_("the status must be APPROVED, PENDING, REJECTED or PAUSED")
EMPTY_BODY = N_("the template needs a body text of at most 1024 characters")
BAD_NUMBERING = N_("the variables must be numbered {{1}}, {{2}} … without gaps")
BAD_HEADER = N_("the header text has at most 60 characters and no variables")
BAD_BUTTONS = N_("at most 10 quick-reply buttons of up to 25 characters each")
NOT_AN_OBJECT = N_("each template must be a JSON object")


class TemplateInvalid(DomainError):
    """One template breaks a rule; `reason` is a msgid the admin translates (M1)."""

    code = "invalid_template"
    message = "{reason}"


class TemplateImportInvalid(DomainError):
    """An import with broken templates; nothing of it was stored."""

    code = "invalid_template_import"
    message = "The import was refused and nothing was stored."

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        super().__init__()
        self.problems = problems  # (position from 1, template name or "", reason msgid)


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    language: str
    category: str
    status: str
    body: str
    header: str = ""
    buttons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def variables(self) -> int:
        return variable_count(self.body)


def variable_count(body: str) -> int:
    """How many values the body needs: the highest `{{n}}`; the numbers must run 1…n."""
    numbers = {int(n) for n in _VAR.findall(body)}
    if not numbers:
        return 0
    if numbers != set(range(1, max(numbers) + 1)):
        raise TemplateInvalid(reason=BAD_NUMBERING)
    return max(numbers)


def check(spec: TemplateSpec) -> TemplateSpec:
    """The template, cleaned, or TemplateInvalid with a reason a person can act on."""
    clean = TemplateSpec(
        name=spec.name.strip(),
        language=spec.language.strip(),
        category=spec.category.strip().upper(),
        status=spec.status.strip().upper(),
        body=spec.body.strip(),
        header=spec.header.strip(),
        buttons=tuple(b.strip() for b in spec.buttons if b.strip()),
    )
    if not _NAME.fullmatch(clean.name):
        raise TemplateInvalid(reason=BAD_NAME)
    if not _LANGUAGE.fullmatch(clean.language):
        raise TemplateInvalid(reason=BAD_LANGUAGE)
    if clean.category not in CATEGORIES:
        raise TemplateInvalid(reason=BAD_CATEGORY)
    if clean.status not in STATUSES:
        raise TemplateInvalid(reason=BAD_STATUS)
    if not clean.body or len(clean.body) > MAX_BODY:
        raise TemplateInvalid(reason=EMPTY_BODY)
    variable_count(clean.body)
    if len(clean.header) > MAX_HEADER or _VAR.search(clean.header):
        raise TemplateInvalid(reason=BAD_HEADER)
    if len(clean.buttons) > MAX_BUTTONS or any(len(b) > MAX_BUTTON_TEXT for b in clean.buttons):
        raise TemplateInvalid(reason=BAD_BUTTONS)
    return clean


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def from_meta(item: Any) -> TemplateSpec:
    """One entry of Meta's `GET /<WABA_ID>/message_templates` `data` list, checked."""
    if not isinstance(item, dict):
        raise TemplateInvalid(reason=NOT_AN_OBJECT)
    body = header = ""
    buttons: list[str] = []
    components = item.get("components")
    for comp in components if isinstance(components, list) else []:
        if not isinstance(comp, dict):
            continue
        kind = _text(comp.get("type")).upper()
        if kind == "BODY":
            body = _text(comp.get("text"))
        elif kind == "HEADER" and _text(comp.get("format")).upper() == "TEXT":
            header = _text(comp.get("text"))
        elif kind == "BUTTONS" and isinstance(comp.get("buttons"), list):
            buttons += [
                _text(b.get("text"))
                for b in comp["buttons"]
                if isinstance(b, dict) and _text(b.get("type")).upper() == "QUICK_REPLY"
            ]
    return check(
        TemplateSpec(
            name=_text(item.get("name")),
            language=_text(item.get("language")),
            category=_text(item.get("category")),
            status=_text(item.get("status")),
            body=body,
            header=header,
            buttons=tuple(buttons),
        )
    )


INVALID_JSON = N_("this is not valid JSON")
NO_DATA = N_('the JSON needs a "data" list of templates, as Meta returns it')
TOO_MANY = N_("at most 500 templates per import")
DUPLICATE = N_("this name and language appear twice in the import")


def parse_meta_export(raw: str) -> list[TemplateSpec]:
    """All templates of a Meta export, or TemplateImportInvalid listing every broken one."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise TemplateImportInvalid([(0, "", INVALID_JSON)]) from None
    items = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise TemplateImportInvalid([(0, "", NO_DATA)])
    if len(items) > MAX_IMPORT:
        raise TemplateImportInvalid([(0, "", TOO_MANY)])
    specs: list[TemplateSpec] = []
    problems: list[tuple[int, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items, start=1):
        name = _text(item.get("name"))[:80] if isinstance(item, dict) else ""
        try:
            spec = from_meta(item)
        except TemplateInvalid as exc:
            problems.append((i, name, str(exc.params["reason"])))
            continue
        if (spec.name, spec.language) in seen:
            problems.append((i, name, DUPLICATE))
            continue
        seen.add((spec.name, spec.language))
        specs.append(spec)
    if problems:
        raise TemplateImportInvalid(problems)
    return specs


def language_rank(language: str, preferred: list[str]) -> int:
    """0 for the first preferred language (de matches de_DE), 1 for the next …, else len()."""
    base = language.split("_")[0].lower()
    for i, want in enumerate(preferred):
        if want and base == want.replace("-", "_").split("_")[0].lower():
            return i
    return len(preferred)
