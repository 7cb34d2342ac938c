"""Chatbot flows as data, and the pure rules that run them (M2).

A flow is a dict (stored as JSON, imported from YAML or JSON): a trigger, optional
business hours, a start step and a list of steps. `parse_flow` checks it and
`advance` computes what happens next for one inbound message: a list of actions
(send, store a field, record a consent, route, hand over ...) and the step the bot
now waits at. The engine in `flows/bot.py` carries the actions out; nothing here
does I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from konsent.domain.purposes import Purpose

Text = str | Mapping[str, str]  # one text, or one per locale

STEP_TYPES = ("message", "choice", "question", "consent", "branch", "route", "handover", "end")
TRIGGERS = ("first_message", "keyword", "button")
VALIDATORS = ("text", "email", "number")
WAITING_TYPES = ("choice", "question", "consent")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_STEPS_PER_MESSAGE = 50
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_NUMBER = re.compile(r"^\d{1,30}([.,]\d{1,10})?$")
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_YES = {"yes", "ja", "j", "y", "ok", "okay", "einverstanden", "zustimmen", "agree"}
_NO = {"no", "nein", "n", "nicht", "ablehnen", "decline"}


class FlowError(ValueError):
    """A flow definition that cannot run; the message names the step."""


@dataclass(frozen=True)
class Option:
    id: str
    title: Text
    next: str | None = None


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    text: Text = ""
    next: str | None = None
    options: tuple[Option, ...] = ()
    var: str | None = None  # choice / branch: the session variable (a choice id, never free text)
    field: str | None = None  # question: the contact field the answer goes to
    validate: str = "text"
    purpose: str | None = None  # consent: what is asked; question: what storing needs
    yes: str | None = None
    no: str | None = None
    team: str | None = None
    cases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default: str | None = None
    invalid: Text = ""


@dataclass(frozen=True)
class Trigger:
    type: str
    keywords: tuple[str, ...] = ()
    payload: str | None = None


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    days: Mapping[int, tuple[tuple[time, time], ...]]  # weekday (0 = Monday) -> open spans
    out_of_hours: Text


@dataclass(frozen=True)
class Flow:
    name: str
    trigger: Trigger
    start: str
    steps: Mapping[str, Step]
    hours: BusinessHours | None = None


def localize(text: Text, locale: str) -> str:
    """The text in the locale, else German, else any."""
    if isinstance(text, str):
        return text
    return text.get(locale) or text.get("de") or next(iter(text.values()), "")


def _text(raw: Any, where: str, required: bool = True) -> Text:
    if raw is None or raw == "":
        if required:
            raise FlowError(f"{where}: a text is needed")
        return ""
    if isinstance(raw, str):
        return raw[:4096]
    if isinstance(raw, Mapping) and raw and all(isinstance(v, str) for v in raw.values()):
        return {str(k): v[:4096] for k, v in raw.items()}
    raise FlowError(f"{where}: text must be a string or a mapping locale -> string")


def _ident(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _ID.match(raw):
        raise FlowError(f"{where}: {raw!r} is not a valid id (a-z, 0-9, - and _)")
    return raw


def _parse_step(raw: Any) -> Step:
    if not isinstance(raw, Mapping):
        raise FlowError("every step must be a mapping")
    sid = _ident(raw.get("id"), "step")
    kind = raw.get("type")
    where = f"step {sid}"
    if kind not in STEP_TYPES:
        raise FlowError(f"{where}: unknown type {kind!r}")
    nxt = raw.get("next")
    common: dict[str, Any] = {"id": sid, "type": kind, "next": _ident(nxt, where) if nxt else None}
    if kind in ("message", "choice", "question", "consent"):
        common["text"] = _text(raw.get("text"), where)
    elif kind in ("handover", "end"):
        common["text"] = _text(raw.get("text"), where, required=False)
    if kind == "choice":
        opts = raw.get("options")
        if not isinstance(opts, list) or not 1 <= len(opts) <= 10:
            raise FlowError(f"{where}: a choice needs 1 to 10 options")
        common["options"] = tuple(
            Option(
                _ident(o.get("id"), where),
                _text(o.get("title"), where),
                _ident(o["next"], where) if o.get("next") else None,
            )
            for o in opts
        )
        common["var"] = _ident(raw["var"], where) if raw.get("var") else None
        common["invalid"] = _text(raw.get("invalid"), where, required=False)
    elif kind == "question":
        validate = raw.get("validate", "text")
        if validate not in VALIDATORS:
            raise FlowError(f"{where}: validate must be one of {', '.join(VALIDATORS)}")
        common["validate"] = validate
        if raw.get("field"):
            common["field"] = _ident(raw["field"], where)
            common["purpose"] = _purpose(raw.get("purpose") or f"data:{common['field']}", where)
        common["invalid"] = _text(raw.get("invalid"), where, required=False)
    elif kind == "consent":
        common["purpose"] = _purpose(raw.get("purpose"), where)
        # YAML 1.1 reads an unquoted `yes:` / `no:` key as a boolean; both spellings mean the same.
        common["yes"] = _ident(raw.get("yes", raw.get(True)), where)
        common["no"] = _ident(raw.get("no", raw.get(False)), where)
    elif kind == "branch":
        cases = raw.get("cases") or {}
        if not isinstance(cases, Mapping):
            raise FlowError(f"{where}: cases must map values to steps")
        common["var"] = _ident(raw.get("var"), where)
        common["cases"] = {str(k): _ident(v, where) for k, v in cases.items()}
        common["default"] = _ident(raw["default"], where) if raw.get("default") else None
    elif kind == "route":
        common["team"] = _ident(raw.get("team"), where)
    return Step(**common)


def _purpose(raw: Any, where: str) -> str:
    try:
        p = Purpose.parse(str(raw or ""))
    except ValueError as exc:
        raise FlowError(f"{where}: {exc}") from exc
    if not p.is_data:
        raise FlowError(f"{where}: a bot asks only for data consents (data:<field>)")
    return str(p)


def _parse_hours(raw: Any) -> BusinessHours | None:
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise FlowError("business_hours must be a mapping")
    tz = str(raw.get("timezone") or "Europe/Berlin")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FlowError(f"business_hours: unknown time zone {tz!r}") from exc
    days: dict[int, tuple[tuple[time, time], ...]] = {}
    for name, spans in (raw.get("days") or {}).items():
        if name not in DAYS:
            raise FlowError(f"business_hours: unknown day {name!r} (use {', '.join(DAYS)})")
        parsed = []
        for span in spans if isinstance(spans, list) else [spans]:
            m = _SPAN.match(str(span))
            if not m:
                raise FlowError(f"business_hours: {span!r} is not HH:MM-HH:MM")
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
                raise FlowError(f"business_hours: {span!r} is not a time of day")
            end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
            parsed.append((time(h1, m1), end))
        days[DAYS.index(name)] = tuple(parsed)
    return BusinessHours(tz, days, _text(raw.get("out_of_hours"), "business_hours.out_of_hours"))


def parse_flow(raw: Any) -> Flow:
    """Check a flow definition; raise FlowError naming what is wrong (M2)."""
    if not isinstance(raw, Mapping):
        raise FlowError("a flow must be a mapping")
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 200:
        raise FlowError("a flow needs a name (at most 200 characters)")
    trig = raw.get("trigger") or {"type": "first_message"}
    if not isinstance(trig, Mapping) or trig.get("type") not in TRIGGERS:
        raise FlowError(f"trigger type must be one of {', '.join(TRIGGERS)}")
    keywords = tuple(str(k).strip().casefold() for k in trig.get("keywords") or () if str(k).strip())
    if trig["type"] == "keyword" and not keywords:
        raise FlowError("a keyword trigger needs keywords")
    payload = trig.get("payload")
    if trig["type"] == "button" and not payload:
        raise FlowError("a button trigger needs the button's payload")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise FlowError("a flow needs steps")
    steps: dict[str, Step] = {}
    for sr in steps_raw:
        st = _parse_step(sr)
        if st.id in steps:
            raise FlowError(f"step {st.id}: id used twice")
        steps[st.id] = st
    start = raw.get("start") or steps_raw[0].get("id")
    if start not in steps:
        raise FlowError(f"start step {start!r} does not exist")
    for st in steps.values():
        targets = [st.next, st.yes, st.no, st.default, *st.cases.values(), *(o.next for o in st.options)]
        for target in targets:
            if target and target not in steps:
                raise FlowError(f"step {st.id}: goes to {target!r}, which does not exist")
    return Flow(
        name,
        Trigger(trig["type"], keywords, str(payload) if payload else None),
        start,
        steps,
        _parse_hours(raw.get("business_hours")),
    )


# --- answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validated:
    ok: bool
    value: str = ""


def validate_answer(kind: str, text: str) -> Validated:
    """Check one answer: e-mail, number or free text (at most 200 characters)."""
    value = text.strip()
    if not value:
        return Validated(False)
    if kind == "email":
        value = value.replace(" ", "")
        if len(value) > 254 or not _EMAIL.match(value):
            return Validated(False)
        local, domain = value.rsplit("@", 1)
        return Validated(True, f"{local}@{domain.lower()}")
    if kind == "number":
        compact = re.sub(r"[\s-]", "", value)
        return Validated(True, compact) if _NUMBER.match(compact) else Validated(False)
    return Validated(len(value) <= 200, value if len(value) <= 200 else "")


def match_option(options: tuple[Option, ...], text: str, payload: str | None) -> Option | None:
    """The option a contact picked: by button payload, number, id or title in any locale."""
    if payload:
        hit = next((o for o in options if o.id == payload), None)
        if hit:
            return hit
    said = text.strip().casefold()
    if not said:
        return None
    if said.isdigit() and 1 <= int(said) <= len(options):
        return options[int(said) - 1]
    for o in options:
        titles = [o.title] if isinstance(o.title, str) else list(o.title.values())
        if said == o.id or said in (t.strip().casefold() for t in titles):
            return o
    return None


def yes_or_no(text: str, payload: str | None) -> bool | None:
    if payload in ("yes", "no"):
        return payload == "yes"
    said = text.strip().casefold().rstrip("!.")
    if said in _YES:
        return True
    if said in _NO:
        return False
    return None


# --- business hours --------------------------------------------------------------------------------


def is_open(hours: BusinessHours | None, at: datetime) -> bool:
    """True within the business hours (always, when a flow has none)."""
    if hours is None:
        return True
    local = at.astimezone(ZoneInfo(hours.timezone))
    now = local.time()
    return any(start <= now < end for start, end in hours.days.get(local.weekday(), ()))


# --- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (id, title)


@dataclass(frozen=True)
class StoreField:
    name: str
    value: str
    purpose: str


@dataclass(frozen=True)
class GrantConsent:
    purpose: str
    question: str  # the text exactly as the contact saw it (evidence)
    answer: str


@dataclass(frozen=True)
class RouteToTeam:
    team: str


Action = Send | StoreField | GrantConsent | RouteToTeam


@dataclass(frozen=True)
class Situation:
    """What the rules may know about the contact: locale, active consents, session variables."""

    locale: str
    consents: frozenset[str] = frozenset()
    vars: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass
class Advance:
    """The result of one message: actions in order, the step waited at, or how the bot ended."""

    actions: list[Action] = dataclasses.field(default_factory=list)
    waiting: str | None = None
    finished: str | None = None  # "handover" or "done"
    vars: dict[str, str] = dataclasses.field(default_factory=dict)


def triggers(flow: Flow, text: str, payload: str | None, first_message: bool) -> bool:
    """Whether this inbound message starts the flow."""
    trig = flow.trigger
    if trig.type == "first_message":
        return first_message
    if trig.type == "button":
        return payload == trig.payload
    said = " ".join(text.casefold().split())
    return any(said == k or said.startswith(k + " ") for k in trig.keywords)


def start(flow: Flow, situation: Situation, at: datetime) -> Advance:
    """Begin a flow; outside business hours send the out-of-hours reply and hand over."""
    if not is_open(flow.hours, at):
        assert flow.hours is not None
        return Advance([Send(localize(flow.hours.out_of_hours, situation.locale))], finished="handover")
    return _run(flow, flow.start, situation, Advance(vars=dict(situation.vars)))


def advance(flow: Flow, waiting: str, situation: Situation, text: str, payload: str | None) -> Advance:
    """Feed the contact's answer to the step the bot waits at, then run on (M2)."""
    step = flow.steps.get(waiting)
    out = Advance(vars=dict(situation.vars))
    if step is None:  # the flow was edited under a running session
        out.finished = "handover"
        return out
    loc = situation.locale
    nxt: str | None
    if step.type == "choice":
        opt = match_option(step.options, text, payload)
        if opt is None:
            return _reprompt(step, loc, out)
        if step.var:
            out.vars[step.var] = opt.id
        nxt = opt.next or step.next
    elif step.type == "consent":
        answer = yes_or_no(text, payload)
        if answer is None:
            return _reprompt(step, loc, out)
        if answer:
            assert step.purpose is not None
            out.actions.append(GrantConsent(step.purpose, localize(step.text, loc), "yes"))
            situation = Situation(loc, situation.consents | {step.purpose}, out.vars)
        nxt = step.yes if answer else step.no
    elif step.type == "question":
        checked = validate_answer(step.validate, text)
        if not checked.ok:
            return _reprompt(step, loc, out)
        # Stored only with an active consent for its purpose; otherwise it stays in the conversation.
        if step.field and step.purpose and step.purpose in situation.consents:
            out.actions.append(StoreField(step.field, checked.value, step.purpose))
        nxt = step.next
    else:
        nxt = step.next
    if nxt is None:
        out.finished = "done"
        return out
    return _run(flow, nxt, Situation(loc, situation.consents, out.vars), out)


def _reprompt(step: Step, locale: str, out: Advance) -> Advance:
    if step.invalid:
        out.actions.append(Send(localize(step.invalid, locale)))
    out.actions.append(_prompt(step, locale))
    out.waiting = step.id
    return out


def _prompt(step: Step, locale: str) -> Send:
    if step.type == "choice":
        return Send(
            localize(step.text, locale), tuple((o.id, localize(o.title, locale)) for o in step.options)
        )
    if step.type == "consent":
        yes, no = ("Ja", "Nein") if locale == "de" else ("Yes", "No")
        return Send(localize(step.text, locale), (("yes", yes), ("no", no)))
    return Send(localize(step.text, locale))


def _run(flow: Flow, step_id: str, situation: Situation, out: Advance) -> Advance:
    """Run steps that need no answer until one waits for the contact or the flow ends."""
    current: str | None = step_id
    for _ in range(MAX_STEPS_PER_MESSAGE):
        if current is None:
            out.finished = "done"
            return out
        step = flow.steps[current]
        if step.type in WAITING_TYPES:
            if step.type == "consent" and step.purpose in situation.consents:
                current = step.yes  # asked and granted before: do not ask again
                continue
            out.actions.append(_prompt(step, situation.locale))
            out.waiting = step.id
            return out
        if step.type == "message":
            out.actions.append(Send(localize(step.text, situation.locale)))
            current = step.next
        elif step.type == "route":
            assert step.team is not None
            out.actions.append(RouteToTeam(step.team))
            current = step.next
        elif step.type == "branch":
            value = out.vars.get(step.var or "", "")
            current = step.cases.get(value, step.default)
        elif step.type in ("handover", "end"):
            if step.text:
                out.actions.append(Send(localize(step.text, situation.locale)))
            out.finished = "handover" if step.type == "handover" else "done"
            return out
    out.finished = "handover"  # a loop without a question: stop and let a person take over
    return out
