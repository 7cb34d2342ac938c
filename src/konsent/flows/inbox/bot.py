"""The chatbot engine: runs a tenant's flows (data) on inbound messages (M2).

The rules live in `domain.flowsteps`; this module loads flows and sessions, carries
the actions out (messages through `enqueue_message`, consents into the ledger,
answers into sealed contact fields) and hands the conversation to the inbox.
Keywords (STOP, DATEN, LÖSCHEN, INFO) and opt-in codes are handled before the bot
is asked (flows.inbound), so they always win over any step.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.channels.base import Button, OutboundContent
from konsent.domain import flowsteps as fs
from konsent.domain import interactive
from konsent.domain.content import problems
from konsent.domain.disclosure import HANDOVER, wants_human
from konsent.domain.errors import InvalidInput, NoLegalBasis
from konsent.domain.events import InboundMessage
from konsent.domain.interactive import LIST_BUTTON
from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.flows.consent import grants as consent
from konsent.flows.contacts import open_for_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbox import disclosure, live
from konsent.flows.inbox import listing as inbox
from konsent.flows.inbox.bot_flows import (
    list_flows,
    save_flow,
)
from konsent.flows.organisation import staff, teams
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.webhooks.events import emit_closed
from konsent.i18n import t
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


def _pick_flow(
    s: Session, tenant_id: int, ev: InboundMessage, conv: Conversation
) -> tuple[BotFlow, fs.Flow] | None:
    """The flow this message starts; asks whether it is the first message only if a flow is active."""
    candidates = []
    rows = s.scalars(
        select(BotFlow)
        .where(BotFlow.tenant_id == tenant_id, BotFlow.active.is_(True))
        .order_by(BotFlow.priority, BotFlow.id)
    ).all()
    first = _first_message(s, conv) if rows else False
    for row in rows:
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
    if session is not None:
        if session.state != "running":
            return  # a person has taken over, or the bot finished: the inbox handles it
        if wants_human(ev.text):  # a person at any time (AI Act Art. 50)
            _say(ctx, s, account, contact, conv, t(locale, HANDOVER), ev.at)
            session.state, session.step, session.updated_at = "handover", "", ev.at
            live.record(s, conv.tenant_id, conv.id, "bot_handover")
            return
        row = s.get(BotFlow, session.flow_id)
        try:
            flow = fs.parse_flow(row.definition) if row else None
        except fs.FlowError:
            flow = None
        if flow is None:
            result = fs.Advance(finished="handover")
        else:
            situation = fs.Situation(locale, _active_consents(s, contact), dict(session.vars))
            result = fs.advance(flow, session.step, situation, ev.text, ev.payload)
    else:
        if conv.first_response_at is not None or conv.assignee_id is not None:
            return  # a person already handles this conversation: no flow starts in the middle of it
        picked = _pick_flow(s, account.tenant_id, ev, conv)
        if picked is None:
            return
        row, flow = picked
        situation = fs.Situation(locale, _active_consents(s, contact), {})
        session = BotSession(
            tenant_id=account.tenant_id, conversation_id=conv.id, flow_id=row.id, step="", state="running",
            vars={}, started_at=ev.at, updated_at=ev.at,
        )  # fmt: skip
        s.add(session)
        s.flush()
        result = _disclosed(fs.start(flow, situation, ev.at), disclosure.text_for(tenant, locale))
    _carry_out(ctx, s, account, contact, conv, session, result, ev.at, locale)


def _disclosed(result: fs.Advance, text: str | None) -> fs.Advance:
    """The first message of a session says the contact talks to an automated system (AI Act Art. 50)."""
    if not text:
        return result
    actions = list(result.actions)
    first = next((i for i, a in enumerate(actions) if isinstance(a, fs.Send)), None)
    if first is None:
        actions.insert(0, fs.Send(text))
    else:
        send = actions[first]
        assert isinstance(send, fs.Send)
        actions[first] = dataclasses.replace(send, text=f"{text}\n\n{send.text}")
    return dataclasses.replace(result, actions=actions)


def _say(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    contact: Contact,
    conv: Conversation,
    text: str,
    at: datetime,
) -> None:
    try:
        enqueue_message(
            ctx, s, contact, "service", OutboundContent(text=text), channel_account_id=account.id,
            conversation_id=conv.id, author=BOT_AUTHOR, at=at,
        )  # fmt: skip
    except NoLegalBasis:
        log.info("bot reply refused contact=%s conversation=%s", contact.id, conv.id)


def choice_content(action: fs.Send, locale: str) -> OutboundContent:
    """A bot message in the one content model (CH5, M2): up to 3 short options as reply buttons, up to
    10 as a list, otherwise numbered text; a channel without them gets numbered text when queued."""
    if not action.buttons:
        return OutboundContent(text=action.text)
    buttons, rows = interactive.choices(action.buttons)
    content = OutboundContent(
        text=action.text, buttons=buttons, rows=rows, list_button=t(locale, LIST_BUTTON) if rows else ""
    )
    if (buttons or rows) and not problems(content):
        return content
    options = [Button(i, title) for i, title in action.buttons]
    text = interactive.fallback_text(action.text, options, (), None)
    return OutboundContent(text=text, numbered=tuple(b.title for b in options))


def _carry_out(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    contact: Contact,
    conv: Conversation,
    session: BotSession,
    result: fs.Advance,
    at: datetime,
    locale: str,
) -> None:
    for action in result.actions:
        if isinstance(action, fs.Send):
            content = choice_content(action, locale)
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
