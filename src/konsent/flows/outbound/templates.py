"""The per-tenant registry of message templates per channel account (M1, M3, CH3).

Owners and admins add, edit, remove and import templates (Meta's `message_templates` JSON);
agents read them. Sends outside the customer-service window may only use a template that is
registered here as APPROVED for the sending account, with exactly its number of variables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import AccountConfig, OutboundContent, TemplateFetch
from konsent.domain import templates as rules
from konsent.domain.errors import InvalidInput, NotFound
from konsent.domain.templates import N_, TemplateImportInvalid, TemplateSpec
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.flows.organisation.tenants import account_config, channel_accounts, get_account
from konsent.store.tables import ChannelAccount, MessageTemplate
from konsent.store.types import utcnow

MANAGE = "settings.manage"
READ = "inbox.use"

NO_TEMPLATES = N_("this channel has no message templates")
NOT_REGISTERED = N_("this template is not registered as approved for this channel account")
WRONG_COUNT = N_("this template needs {wanted} variables, {given} were given")
EMPTY_VARIABLE = N_("every template variable needs a value")


class WrongVariableCount(InvalidInput):
    message = WRONG_COUNT


def template_accounts(ctx: Konsent, s: Session, tenant_id: int) -> list[ChannelAccount]:
    """The tenant's channel accounts whose channel has templates (WhatsApp Cloud, 360dialog)."""
    return [a for a in channel_accounts(s, tenant_id) if ctx.adapter(a.kind).capabilities.templates]


def _template_account(ctx: Konsent, s: Session, tenant_id: int, account_id: int) -> ChannelAccount:
    acc = get_account(s, tenant_id, account_id)
    if not ctx.adapter(acc.kind).capabilities.templates:
        raise InvalidInput(detail=NO_TEMPLATES)
    return acc


def list_templates(s: Session, who: StaffMember, account_id: int | None = None) -> list[MessageTemplate]:
    """The registry, by account, name and language; agents may read it."""
    staff.require(who.role, READ)
    q = select(MessageTemplate).where(MessageTemplate.tenant_id == who.tenant_id)
    if account_id is not None:
        q = q.where(MessageTemplate.channel_account_id == account_id)
    return list(
        s.scalars(
            q.order_by(MessageTemplate.channel_account_id, MessageTemplate.name, MessageTemplate.language)
        )
    )


def get_template(s: Session, tenant_id: int, template_id: int) -> MessageTemplate:
    """A template of this tenant, or NotFound (invariant 4)."""
    row = s.scalars(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id, MessageTemplate.id == template_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound()
    return row


def _find(s: Session, tenant_id: int, account_id: int, name: str, language: str) -> MessageTemplate | None:
    return s.scalars(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id,
            MessageTemplate.channel_account_id == account_id,
            MessageTemplate.name == name,
            MessageTemplate.language == language,
        )
    ).one_or_none()


def _apply(row: MessageTemplate, spec: TemplateSpec) -> bool:
    """Copy the spec into the row; True if anything changed (the version is bumped then)."""
    values = {
        "category": spec.category,
        "status": spec.status,
        "body": spec.body,
        "header": spec.header,
        "buttons": list(spec.buttons),
        "variables": spec.variables,
    }
    changed = any(getattr(row, k) != v for k, v in values.items())
    for k, v in values.items():
        setattr(row, k, v)
    if changed:
        row.version = (row.version or 0) + 1
        row.updated_at = utcnow()
    return changed


def save_template(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    account_id: int,
    spec: TemplateSpec,
    template_id: int | None = None,
) -> MessageTemplate:
    """Add a template, or change one (its version goes up); audited (M1)."""
    staff.require(who.role, MANAGE)
    spec = rules.check(spec)
    acc = _template_account(ctx, s, who.tenant_id, account_id)
    same = _find(s, who.tenant_id, acc.id, spec.name, spec.language)
    if template_id is None:
        row = same
    else:
        row = get_template(s, who.tenant_id, template_id)
        if same is not None and same.id != row.id:
            raise InvalidInput(detail=N_("a template with this name and language exists already"))
        row.channel_account_id, row.name, row.language = acc.id, spec.name, spec.language
    if row is None:
        row = MessageTemplate(
            tenant_id=who.tenant_id,
            channel_account_id=acc.id,
            name=spec.name,
            language=spec.language,
            category="",
            status="",
            body="",
            header="",
            buttons=[],
            variables=0,
            version=0,
        )
        s.add(row)
    _apply(row, spec)
    s.flush()
    audit.record(
        s, who.tenant_id, who.actor, "template.save", f"template:{row.id}",
        name=row.name, language=row.language, version=row.version,
    )  # fmt: skip
    return row


def delete_template(s: Session, who: StaffMember, template_id: int) -> None:
    """Remove a template from the registry; messages already sent keep its id and version."""
    staff.require(who.role, MANAGE)
    row = get_template(s, who.tenant_id, template_id)
    audit.record(
        s, who.tenant_id, who.actor, "template.delete", f"template:{row.id}",
        name=row.name, language=row.language,
    )  # fmt: skip
    s.delete(row)


@dataclass(frozen=True)
class ImportResult:
    added: int
    changed: int
    unchanged: int


def import_templates(ctx: Konsent, s: Session, who: StaffMember, account_id: int, raw: str) -> ImportResult:
    """Import Meta's `GET /<WABA_ID>/message_templates` JSON: all templates or none (M1)."""
    staff.require(who.role, MANAGE)
    acc = _template_account(ctx, s, who.tenant_id, account_id)
    specs = rules.parse_meta_export(raw)  # raises with every broken template listed
    return _store_all(s, who, acc, specs, "template.import")


SYNC_ERRORS = {
    "unsupported": N_("this channel cannot list its templates; import them as JSON instead"),
    "no_account_id": N_("enter the WhatsApp Business Account ID in the channel settings first"),
    "refused": N_("the provider refused the request: check the access token and the account ID"),
    "unreachable": N_("the provider could not be reached; please try again later"),
    "bad_answer": N_("the provider's answer was not understood"),
}


def sync_source(ctx: Konsent, s: Session, who: StaffMember, account_id: int) -> AccountConfig:
    """The account to fetch templates for, with its credentials; checked like an import."""
    staff.require(who.role, MANAGE)
    return account_config(ctx, s, _template_account(ctx, s, who.tenant_id, account_id))


def store_fetched(
    ctx: Konsent, s: Session, who: StaffMember, account_id: int, fetched: TemplateFetch
) -> ImportResult:
    """Store what the provider listed, all or nothing, as an import would (M1)."""
    staff.require(who.role, MANAGE)
    if fetched.error:
        raise InvalidInput(detail=SYNC_ERRORS.get(fetched.error, SYNC_ERRORS["bad_answer"]))
    acc = _template_account(ctx, s, who.tenant_id, account_id)
    specs = rules.parse_meta_export(json.dumps({"data": fetched.items}))
    return _store_all(s, who, acc, specs, "template.sync")


def _store_all(
    s: Session, who: StaffMember, acc: ChannelAccount, specs: list[TemplateSpec], action: str
) -> ImportResult:
    added = changed = unchanged = 0
    for spec in specs:
        row = _find(s, who.tenant_id, acc.id, spec.name, spec.language)
        if row is None:
            row = MessageTemplate(
                tenant_id=who.tenant_id, channel_account_id=acc.id, name=spec.name,
                language=spec.language, category="", status="", body="", header="",
                buttons=[], variables=0, version=0,
            )  # fmt: skip
            s.add(row)
            added += 1
            _apply(row, spec)
        elif _apply(row, spec):
            changed += 1
        else:
            unchanged += 1
    s.flush()
    audit.record(
        s, who.tenant_id, who.actor, action, f"channel_account:{acc.id}",
        added=added, changed=changed, unchanged=unchanged,
    )  # fmt: skip
    return ImportResult(added, changed, unchanged)


def approved_for(s: Session, tenant_id: int, account_id: int, preferred: list[str]) -> list[MessageTemplate]:
    """The APPROVED templates of one account, the preferred languages first (M1)."""
    rows = s.scalars(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id,
            MessageTemplate.channel_account_id == account_id,
            MessageTemplate.status == "APPROVED",
        )
    ).all()
    return sorted(rows, key=lambda r: (rules.language_rank(r.language, preferred), r.name, r.language))


def require_approved(
    s: Session, tenant_id: int, account_id: int, name: str, language: str, params: list[str]
) -> MessageTemplate:
    """The registered APPROVED template, or a refusal a person can act on (M1, CH3)."""
    row = _find(s, tenant_id, account_id, name, language)
    if row is None or row.status != "APPROVED":
        raise InvalidInput(detail=NOT_REGISTERED)
    check_values(row, params)
    return row


def approved_content(
    ctx: Konsent, s: Session, account: ChannelAccount, name: str, language: str, params: list[str]
) -> tuple[OutboundContent, MessageTemplate]:
    """A single message with a registered template: refused unless the account's channel has
    templates and it is APPROVED there with exactly these variables (M1, CH3). The message
    should record the returned row's id and version."""
    if not ctx.adapter(account.kind).capabilities.templates:
        raise InvalidInput(detail="this channel has no message templates")
    row = require_approved(s, account.tenant_id, account.id, name, language, params)
    content = OutboundContent(template=name, template_language=language, template_params=tuple(params))
    return content, row


@dataclass(frozen=True)
class Choice:
    """An approved name + language for the broadcast compose form, with where it is registered."""

    name: str
    language: str
    variables: int
    accounts: str

    @property
    def key(self) -> str:
        return f"{self.name}|{self.language}"


def approved_choices(s: Session, tenant_id: int) -> list[Choice]:
    """Every APPROVED name + language of the tenant, for the broadcast template select (M3)."""
    rows = s.execute(
        select(MessageTemplate, ChannelAccount.name)
        .join(ChannelAccount, ChannelAccount.id == MessageTemplate.channel_account_id)
        .where(MessageTemplate.tenant_id == tenant_id, MessageTemplate.status == "APPROVED")
        .order_by(MessageTemplate.name, MessageTemplate.language, ChannelAccount.id)
    ).all()
    grouped: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for row, account in rows:
        grouped.setdefault((row.name, row.language), (row.variables, []))[1].append(account)
    return [Choice(n, lang, v, ", ".join(a)) for (n, lang), (v, a) in grouped.items()]


def require_approved_for_broadcast(
    s: Session, tenant_id: int, account_id: int | None, name: str, language: str, params: list[str]
) -> None:
    """A broadcast's template fallback: approved on its account, or on every account of the tenant
    that has it registered as approved, with exactly its number of variables (M3)."""
    if account_id is not None:
        require_approved(s, tenant_id, account_id, name, language, params)
        return
    rows = s.scalars(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id,
            MessageTemplate.name == name,
            MessageTemplate.language == language,
            MessageTemplate.status == "APPROVED",
        )
    ).all()
    if not rows:
        raise InvalidInput(detail=NOT_REGISTERED)
    for row in rows:
        check_values(row, params)


def check_values(row: MessageTemplate, params: list[str]) -> None:
    if len(params) != row.variables:
        raise WrongVariableCount(wanted=row.variables, given=len(params))
    if any(not p.strip() for p in params):
        raise InvalidInput(detail=EMPTY_VARIABLE)


__all__ = [
    "AccountConfig",
    "ImportResult",
    "TemplateFetch",
    "TemplateImportInvalid",
    "TemplateSpec",
    "WrongVariableCount",
]
