"""Customer satisfaction after a resolved conversation (M1, S5): optional, lawful, per team only.

When a tenant switches it on, resolving a conversation asks the contact one question with three reply
buttons (good, okay, bad) — as a service message inside the channel's messaging window, or outside it
with the approved utility template the tenant names; otherwise nobody is asked. The answer is the
button's payload `csat:<conversation>:<score>`, taken before keywords and the bot, once per
conversation and only from that conversation's contact. Results exist per team and in aggregate,
never per agent, so works-council mode (S5) holds by construction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.channels.base import Button, OutboundContent
from konsent.domain import interactive
from konsent.domain.content import problems
from konsent.domain.errors import DomainError, InvalidInput, WindowClosed
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff
from konsent.flows.outbound import templates
from konsent.flows.outbound.messaging import enqueue_message
from konsent.i18n import LOCALES, t
from konsent.store.tables import ChannelAccount, Contact, Conversation, CsatRating, Team, Tenant
from konsent.store.tenant_settings import merge_settings
from konsent.store.types import utcnow

log = logging.getLogger(__name__)
KEY = "csat"
AUTHOR = "csat"
PAYLOAD = re.compile(r"^csat:(\d{1,18}):([123])$")


def N_(msgid: str) -> str:
    return msgid


QUESTION = N_("How satisfied are you with our help?")
ANSWERS = {3: N_("Good"), 2: N_("Okay"), 1: N_("Bad")}
THANKS = N_("Thank you for your rating!")


@dataclass(frozen=True)
class Settings:
    enabled: bool
    question: dict[str, str]  # locale -> the tenant's own question; empty means the default
    template: str  # an approved UTILITY template for outside the window, "" for none
    template_language: str


def settings_of(tenant: Tenant) -> Settings:
    raw: Any = (tenant.settings or {}).get(KEY) or {}
    return Settings(
        enabled=bool(raw.get("enabled", False)),
        question={loc: str(raw.get(f"question_{loc}") or "") for loc in LOCALES},
        template=str(raw.get("template") or ""),
        template_language=str(raw.get("template_language") or ""),
    )


def settings_for(s: Session, tenant_id: int) -> Settings:
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    return settings_of(tenant)


def save_settings(s: Session, who: staff.StaffMember, value: Settings) -> None:
    """Switch the question on or off, word it, name the template for outside the window (audited)."""
    staff.require(who.role, "settings.manage")
    if any(len(q) > 300 for q in value.question.values()):
        raise InvalidInput(detail="the question is too long")
    stored: dict[str, object] = {"enabled": value.enabled, "template": value.template.strip()}
    stored["template_language"] = value.template_language.strip()
    stored.update({f"question_{loc}": " ".join(q.split()) for loc, q in value.question.items()})
    merge_settings(s, who.tenant_id, {KEY: stored})
    audit.record(
        s, who.tenant_id, who.actor, "csat.settings", f"tenant:{who.tenant_id}", enabled=value.enabled
    )


def ask(ctx: Konsent, s: Session, conv: Conversation, at: datetime | None = None) -> bool:
    """Ask the contact of a just resolved conversation, if the tenant wants it and a lawful way exists."""
    at = at or utcnow()
    tenant = s.get(Tenant, conv.tenant_id)
    contact = s.get(Contact, conv.contact_id)
    assert tenant is not None and contact is not None
    cfg = settings_of(tenant)
    if not cfg.enabled or contact.erased_at is not None:
        return False
    if s.scalars(select(CsatRating.id).where(CsatRating.conversation_id == conv.id)).first() is not None:
        return False  # one question per conversation, even when it is resolved again
    locale = contact.locale or tenant.default_locale
    question = cfg.question.get(locale) or t(locale, QUESTION)
    buttons = tuple(Button(f"csat:{conv.id}:{score}", t(locale, label)) for score, label in ANSWERS.items())
    account = s.get(ChannelAccount, conv.channel_account_id)
    assert account is not None
    # Where the channel has no buttons the message goes as numbered text: the numbers are the answers.
    content = OutboundContent(text=question, buttons=buttons)
    if problems(content):  # a tenant's question longer than buttons allow: numbered text instead
        text = interactive.fallback_text(question, buttons, (), None)
        content = OutboundContent(text=text, numbered=tuple(b.title for b in buttons))
    try:
        _send(ctx, s, contact, conv, content, at)
    except WindowClosed:
        if not cfg.template:  # outside the messaging window only an approved utility template may ask
            return False
        try:
            template, _ = templates.approved_content(ctx, s, account, cfg.template, cfg.template_language, [])
            _send(ctx, s, contact, conv, template, at)
        except DomainError as exc:
            log.info("csat not asked conversation=%s reason=%s", conv.id, exc.code)
            return False
    except DomainError as exc:  # no legal basis, unreachable ...: nobody is asked
        log.info("csat not asked conversation=%s reason=%s", conv.id, exc.code)
        return False
    s.add(
        CsatRating(
            tenant_id=conv.tenant_id, conversation_id=conv.id, contact_id=contact.id, team_id=conv.team_id,
            asked_at=at,
        )
    )  # fmt: skip
    return True


def _send(
    ctx: Konsent, s: Session, contact: Contact, conv: Conversation, content: OutboundContent, at: datetime
) -> None:
    enqueue_message(
        ctx, s, contact, "service", content, channel_account_id=conv.channel_account_id,
        conversation_id=conv.id, author=AUTHOR, at=at,
    )  # fmt: skip


def record(s: Session, contact: Contact, payload: str | None, at: datetime) -> str | None:
    """The contact's answer: "rated", "again" (answered before: nothing changes), or None when the
    payload is no rating asked of this contact."""
    m = PAYLOAD.match(payload or "")
    if m is None:
        return None
    conv_id, score = int(m.group(1)), int(m.group(2))
    row = s.scalars(
        select(CsatRating).where(
            CsatRating.tenant_id == contact.tenant_id,
            CsatRating.conversation_id == conv_id,
            CsatRating.contact_id == contact.id,
        )
    ).one_or_none()
    if row is None:
        return None  # not asked of this contact: someone else's conversation, or made up
    if row.score is not None:
        return "again"
    row.score, row.rated_at = score, at
    return "rated"


@dataclass(frozen=True)
class TeamCsat:
    team: str
    asked: int
    answered: int
    good: int
    okay: int
    bad: int

    @property
    def score(self) -> float | None:
        """Share of good answers among the answered, in percent."""
        return round(100 * self.good / self.answered, 1) if self.answered else None


def results(s: Session, who: staff.StaffMember, since: datetime) -> list[TeamCsat]:
    """Per team and 'no team', never per agent (S5)."""
    staff.require(who.role, "stats.view")
    rows = s.execute(
        select(CsatRating.team_id, CsatRating.score, func.count())
        .where(CsatRating.tenant_id == who.tenant_id, CsatRating.asked_at >= since)
        .group_by(CsatRating.team_id, CsatRating.score)
    ).all()
    names = dict(s.execute(select(Team.id, Team.name).where(Team.tenant_id == who.tenant_id)).all())
    by_team: dict[int | None, dict[int | None, int]] = {}
    for team_id, score, n in rows:
        by_team.setdefault(team_id, {})[score] = n
    out = []
    for team_id, counts in by_team.items():
        answered = sum(n for sc, n in counts.items() if sc is not None)
        out.append(
            TeamCsat(
                names.get(team_id, "—") if team_id is not None else "—", sum(counts.values()), answered,
                counts.get(3, 0), counts.get(2, 0), counts.get(1, 0),
            )
        )  # fmt: skip
    return sorted(out, key=lambda r: r.team)
