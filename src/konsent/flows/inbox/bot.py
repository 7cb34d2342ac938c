"""The chatbot engine: runs a tenant's flows (data) on inbound messages (M2).

The rules live in `domain.flowsteps`; this module loads flows and sessions, carries
the actions out (messages through `enqueue_message`, consents into the ledger,
answers into sealed contact fields) and hands the conversation to the inbox.
Keywords (STOP, DATEN, LÖSCHEN, INFO) and opt-in codes are handled before the bot
is asked (flows.inbound), so they always win over any step.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.channels.base import Button, OutboundContent
from konsent.domain import flowsteps as fs
from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound
from konsent.domain.events import InboundMessage
from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.flows import audit
from konsent.flows.consent import grants as consent
from konsent.flows.contacts import open_for_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbox import listing as inbox
from konsent.flows.inbox import live
from konsent.flows.organisation import staff, teams
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.webhooks.events import emit_closed
from konsent.store.chain import append_ledger
from konsent.store.tables import (
    BotFlow,
    BotSession,
    ChannelAccount,
    Consent,
    Contact,
    ContactField,
    Conversation,
    Message,
    Tenant,
)
from konsent.store.types import utcnow

log = logging.getLogger(__name__)
BOT_AUTHOR = "bot"
MAX_IMPORT_BYTES = 200_000


# --- flows as data ---------------------------------------------------------------------------------


def load_definition(text: str, fmt: str = "yaml") -> dict[str, Any]:
    """Read a flow from YAML or JSON text (import, M2); raises InvalidInput."""
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise InvalidInput(detail="the flow file is too large")
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput("the file is not valid {format}", format=fmt.upper()) from exc
    if not isinstance(data, dict):
        raise InvalidInput(detail="a flow must be a mapping")
    return data


def dump_definition(definition: dict[str, Any], fmt: str = "yaml") -> str:
    """A flow as YAML or JSON text (export, M2)."""
    if fmt == "json":
        return json.dumps(definition, ensure_ascii=False, indent=2)
    return yaml.safe_dump(definition, allow_unicode=True, sort_keys=False)


def _checked(definition: dict[str, Any]) -> fs.Flow:
    try:
        return fs.parse_flow(definition)
    except fs.FlowError as exc:
        raise InvalidInput(detail=str(exc)) from exc


def save_flow(
    s: Session,
    tenant_id: int,
    actor: str,
    definition: dict[str, Any],
    *,
    flow_id: int | None = None,
    active: bool = True,
    priority: int = 100,
) -> BotFlow:
    """Create or replace a flow after checking it; routes must name existing teams."""
    flow = _checked(definition)
    for step in flow.steps.values():
        if step.team and teams.team_by_slug(s, tenant_id, step.team) is None:
            raise InvalidInput("step {step}: there is no team {team}", step=step.id, team=repr(step.team))
    row = get_flow(s, tenant_id, flow_id) if flow_id else BotFlow(tenant_id=tenant_id)
    row.name = flow.name
    row.definition = json.loads(json.dumps(definition))
    row.active = active
    row.priority = priority
    row.updated_at = utcnow()
    if flow_id is None:
        s.add(row)
    s.flush()
    audit.record(s, tenant_id, actor, "bot.flow_saved", f"flow:{row.id}", name=flow.name)
    return row


def get_flow(s: Session, tenant_id: int, flow_id: int) -> BotFlow:
    row = s.scalars(
        select(BotFlow).where(BotFlow.tenant_id == tenant_id, BotFlow.id == flow_id)
    ).one_or_none()
    if row is None:
        raise NotFound()
    return row


def list_flows(s: Session, tenant_id: int) -> list[BotFlow]:
    return list(
        s.scalars(
            select(BotFlow).where(BotFlow.tenant_id == tenant_id).order_by(BotFlow.priority, BotFlow.id)
        )
    )


# --- contact fields --------------------------------------------------------------------------------


def _field_aad(name: str) -> str:
    return f"field:{name}"


def store_field(
    ctx: Konsent, s: Session, contact: Contact, name: str, value: str, at: datetime, purpose: str = ""
) -> None:
    row = s.scalars(
        select(ContactField).where(
            ContactField.tenant_id == contact.tenant_id,
            ContactField.contact_id == contact.id,
            ContactField.name == name,
        )
    ).one_or_none()
    if row is None:
        row = ContactField(tenant_id=contact.tenant_id, contact_id=contact.id, name=name)
        s.add(row)
    row.value_sealed = seal_for_contact(ctx, s, contact, _field_aad(name), value)
    row.purpose = purpose or f"data:{name}"
    row.updated_at = at


def withdraw_data_consent(
    s: Session, contact: Contact, purpose: str, *, source: str, actor: str, at: datetime | None = None
) -> int:
    """Withdraw a `data:<field>` consent, deleting what was kept under it (M2, C4); returns the count."""
    at = at or utcnow()
    try:
        p = Purpose.parse(purpose)
    except ValueError as exc:
        raise InvalidInput(detail=str(exc)) from exc
    if not p.is_data:
        raise InvalidInput(detail="only data consents are withdrawn here")
    row = s.scalars(
        select(Consent)
        .where(
            Consent.tenant_id == contact.tenant_id,
            Consent.contact_id == contact.id,
            Consent.purpose == str(p),
            Consent.status == ConsentStatus.ACTIVE,
        )
        .with_for_update()
    ).one_or_none()
    if row is None:
        return 0
    row.status = ConsentStatus.WITHDRAWN
    row.changed_at = at
    fields = s.scalars(
        select(ContactField).where(
            ContactField.tenant_id == contact.tenant_id,
            ContactField.contact_id == contact.id,
            ContactField.purpose == str(p),
        )
    ).all()
    for f in fields:
        s.delete(f)
    append_ledger(
        s, contact.tenant_id, contact.id, str(p), "withdrawn",
        {"source": source, "actor": actor, "withdrawn_at": at, "fields_deleted": len(fields)},
    )  # fmt: skip
    return len(fields)


def contact_fields(ctx: Konsent, s: Session, contact: Contact) -> dict[str, str]:
    """The fields the bot collected for a contact (empty once the contact is erased)."""
    if contact.wrapped_key is None:
        return {}
    rows = s.scalars(
        select(ContactField)
        .where(ContactField.tenant_id == contact.tenant_id, ContactField.contact_id == contact.id)
        .order_by(ContactField.name)
    ).all()
    out = {}
    for r in rows:
        try:
            out[r.name] = open_for_contact(ctx, s, contact, _field_aad(r.name), r.value_sealed)
        except crypto.DecryptionError:  # pragma: no cover - a rotated or shredded key
            continue
    return out


def _active_consents(s: Session, contact: Contact) -> frozenset[str]:
    return frozenset(
        s.scalars(
            select(Consent.purpose).where(
                Consent.tenant_id == contact.tenant_id,
                Consent.contact_id == contact.id,
                Consent.status == ConsentStatus.ACTIVE,
            )
        ).all()
    )


# --- the engine ------------------------------------------------------------------------------------


def _first_message(s: Session, conv: Conversation) -> bool:
    count = s.scalars(
        select(Message.id).where(Message.conversation_id == conv.id, Message.direction == "in").limit(2)
    ).all()
    return len(count) <= 1


def _pick_flow(s: Session, tenant_id: int, ev: InboundMessage, first: bool) -> tuple[BotFlow, fs.Flow] | None:
    candidates = []
    for row in s.scalars(
        select(BotFlow)
        .where(BotFlow.tenant_id == tenant_id, BotFlow.active.is_(True))
        .order_by(BotFlow.priority, BotFlow.id)
    ):
        try:
            flow = fs.parse_flow(row.definition)
        except fs.FlowError:
            log.warning("skipping invalid bot flow id=%s", row.id)
            continue
        if fs.triggers(flow, ev.text, ev.payload, first):
            candidates.append((0 if flow.trigger.type != "first_message" else 1, row, flow))
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1], candidates[0][2]


def on_inbound(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    contact: Contact,
    conv: Conversation,
    ev: InboundMessage,
) -> None:
    """After keywords and opt-in codes: wake the conversation in the inbox, then run the bot (M1, M2)."""
    inbox.on_contact_message(s, conv)
    session = s.scalars(select(BotSession).where(BotSession.conversation_id == conv.id)).one_or_none()
    tenant = s.get(Tenant, account.tenant_id)
    assert tenant is not None
    locale = contact.locale or tenant.default_locale
    situation_vars: dict[str, str] = dict(session.vars) if session else {}
    situation = fs.Situation(locale, _active_consents(s, contact), situation_vars)
    if session is not None:
        if session.state != "running":
            return  # a person has taken over, or the bot finished: the inbox handles it
        row = s.get(BotFlow, session.flow_id)
        try:
            flow = fs.parse_flow(row.definition) if row else None
        except fs.FlowError:
            flow = None
        if flow is None:
            result = fs.Advance(finished="handover")
        else:
            result = fs.advance(flow, session.step, situation, ev.text, ev.payload)
    else:
        if conv.first_response_at is not None or conv.assignee_id is not None:
            return  # a person already handles this conversation: no flow starts in the middle of it
        picked = _pick_flow(s, account.tenant_id, ev, _first_message(s, conv))
        if picked is None:
            return
        row, flow = picked
        session = BotSession(
            tenant_id=account.tenant_id, conversation_id=conv.id, flow_id=row.id, step="", state="running",
            vars={}, started_at=ev.at, updated_at=ev.at,
        )  # fmt: skip
        s.add(session)
        s.flush()
        result = fs.start(flow, situation, ev.at)
    _carry_out(ctx, s, account, contact, conv, session, result, ev.at)


def _carry_out(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    contact: Contact,
    conv: Conversation,
    session: BotSession,
    result: fs.Advance,
    at: datetime,
) -> None:
    for action in result.actions:
        if isinstance(action, fs.Send):
            content = OutboundContent(
                text=action.text, buttons=tuple(Button(bid, title[:20]) for bid, title in action.buttons)
            )
            caps = ctx.adapter(account.kind).capabilities
            if action.buttons and (not caps.buttons or len(action.buttons) > caps.max_buttons):
                numbered = "\n".join(f"{i}. {title}" for i, (_, title) in enumerate(action.buttons, 1))
                content = OutboundContent(text=f"{action.text}\n{numbered}")
            try:
                enqueue_message(
                    ctx, s, contact, "service", content, channel_account_id=account.id,
                    conversation_id=conv.id, author=BOT_AUTHOR, at=at,
                )  # fmt: skip
            except NoLegalBasis:
                log.info("bot reply refused contact=%s conversation=%s", contact.id, conv.id)
        elif isinstance(action, fs.GrantConsent):
            consent.grant_consent(
                s,
                contact,
                Purpose.parse(action.purpose),
                text_version=0,
                evidence={
                    "source": "bot",
                    "flow_id": session.flow_id,
                    "step": session.step,
                    "question": action.question,
                    "answer": action.answer,
                    "channel": account.kind,
                    "conversation_id": conv.id,
                    "granted_at": at,
                },
                channel_account_id=account.id,
                at=at,
            )
        elif isinstance(action, fs.StoreField):
            store_field(ctx, s, contact, action.name, action.value, at, action.purpose)
        elif isinstance(action, fs.RouteToTeam):
            team = teams.team_by_slug(s, conv.tenant_id, action.team)
            if team is None:
                log.warning("bot route to a missing team flow=%s", session.flow_id)
            else:
                conv.team_id = team.id
                live.record(s, conv.tenant_id, conv.id, "routed")
    session.vars = dict(result.vars)
    session.updated_at = at
    if result.finished:
        session.state = result.finished
        session.step = ""
        if result.finished == "done":
            if conv.state != "closed":
                emit_closed(s, conv, by="bot")
            conv.state = "closed"
            conv.closed_at = at
        live.record(s, conv.tenant_id, conv.id, f"bot_{result.finished}")
    else:
        session.step = result.waiting or ""


def stop_bot(s: Session, who: inbox.StaffMember, conversation_id: int) -> None:
    """An agent takes over explicitly (M2)."""
    staff.require(who.role, "inbox.use")
    conv = inbox.get_conversation(s, who, conversation_id)
    session = s.scalars(select(BotSession).where(BotSession.conversation_id == conv.id)).one_or_none()
    if session is not None and session.state == "running":
        session.state = "handover"
        session.updated_at = utcnow()
        live.record(s, conv.tenant_id, conv.id, "bot_handover")


# --- the demo ------------------------------------------------------------------------------------

DEMO_FLOW: dict[str, Any] = {
    "name": "Begrüßung / Welcome",
    "trigger": {"type": "first_message"},
    "start": "greet",
    "steps": [
        {
            "id": "greet",
            "type": "message",
            "text": {
                "de": "Hallo! Hier ist der Assistent der Demo GmbH. Mit STOP, DATEN, LÖSCHEN oder INFO "
                "erreichen Sie jederzeit Ihre Datenschutz-Funktionen.",
                "en": "Hello! This is the Demo GmbH assistant. STOP, DATEN, LÖSCHEN or INFO reach your "
                "privacy functions at any time.",
            },
            "next": "concern",
        },
        {
            "id": "concern",
            "type": "choice",
            "var": "concern",
            "text": {"de": "Worum geht es?", "en": "What is it about?"},
            "options": [
                {"id": "sales", "title": {"de": "Kaufen", "en": "Buying"}, "next": "to_sales"},
                {"id": "support", "title": {"de": "Hilfe", "en": "Help"}, "next": "to_support"},
            ],
            "invalid": {
                "de": "Bitte wählen Sie eine der Antworten.",
                "en": "Please pick one of the answers.",
            },
        },
        {"id": "to_sales", "type": "route", "team": "sales", "next": "ask_consent"},
        {"id": "to_support", "type": "route", "team": "support", "next": "ask_consent"},
        {
            "id": "ask_consent",
            "type": "consent",
            "purpose": "data:name",
            "text": {
                "de": "Dürfen wir Ihren Namen speichern, damit unser Team Sie persönlich ansprechen kann? "
                "Sie können das jederzeit widerrufen.",
                "en": "May we store your name so our team can address you personally? "
                "You can withdraw this at any time.",
            },
            "yes": "ask_name",
            "no": "handover",
        },
        {
            "id": "ask_name",
            "type": "question",
            "field": "name",
            "validate": "text",
            "text": {"de": "Wie heißen Sie?", "en": "What is your name?"},
            "next": "handover",
        },
        {
            "id": "handover",
            "type": "handover",
            "text": {
                "de": "Danke! Ein Mensch aus unserem Team meldet sich hier gleich bei Ihnen.",
                "en": "Thank you! A person from our team will answer you here shortly.",
            },
        },
    ],
}


def seed_demo_flow(s: Session, tenant_id: int) -> None:
    """Teams sales and support and the demo's welcome flow (M2); does nothing when present."""
    for slug, name in (("sales", "Vertrieb / Sales"), ("support", "Support")):
        if teams.team_by_slug(s, tenant_id, slug) is None:
            teams.create_team(s, tenant_id, slug, name)
    if not list_flows(s, tenant_id):
        save_flow(s, tenant_id, "system", DEMO_FLOW)
