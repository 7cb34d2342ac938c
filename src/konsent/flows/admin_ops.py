"""Use cases behind the admin UI: sign-in, dashboard, contact page, channel setup (C3, S3, S7).

Reads that show personal data append to the audit log in the same transaction;
the web layer only checks permissions and renders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from konsent import channels
from konsent.domain import received
from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import api_ops, audit, contacts
from konsent.flows.context import Konsent
from konsent.flows.organisation import channel_admin, channel_health, staff, tenants, totp, trusted_devices
from konsent.flows.privacy import proof
from konsent.store.tables import (
    ChannelAccount,
    Consent,
    Contact,
    ContactIdentity,
    Message,
    OptInRequest,
    OutboxRow,
    StaffSession,
    StaffUser,
    Tenant,
)
from konsent.store.types import utcnow

# ---------------------------------------------------------------- sign-in


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    must_change_password: bool
    device_cookie: str = ""  # marks this browser as trusted by the user (flows.organisation.trusted_devices)


def sign_in(
    ctx: Konsent,
    s: Session,
    tenant_slug: str,
    email: str,
    password: str,
    now: datetime | None = None,
    totp_code: str = "",
    device_cookie: str = "",
) -> SignedIn | None:
    """Check tenant, e-mail, password and, where set up, the authenticator code (S3); start a session.

    A locked account still admits a browser the user signed in with before (`device_cookie`)."""
    try:
        tenant = tenants.tenant_by_slug(s, tenant_slug.strip().lower())
    except NotFound:
        staff.burn_password_check(password)  # an unknown tenant must not answer faster
        return None
    user = staff.authenticate(
        s,
        tenant,
        email,
        password,
        now,
        second_factor=lambda u: totp.verify(ctx, s, u, totp_code, now),
        trusted_device=lambda u: bool(device_cookie) and trusted_devices.is_trusted(ctx, s, u, device_cookie),
    )
    if user is None:
        return None
    user.last_login_at = now or utcnow()
    new = staff.start_session(s, user, ctx.settings.session_ttl_hours)
    audit.record(s, tenant.id, f"user:{user.id}", "staff.login", f"user:{user.id}")
    return SignedIn(new.cookie, user.must_change_password, trusted_devices.new_device_cookie(ctx, s, user))


def trusted_browser(ctx: Konsent, tenant_slug: str, email: str, device_cookie: str) -> bool:
    """Whether this browser signed in to this account before (it then skips the per-account limit)."""
    if not device_cookie:
        return False
    with ctx.db.read() as s:
        tenant = s.scalars(select(Tenant).where(Tenant.slug == tenant_slug.strip().lower())).one_or_none()
        if tenant is None:
            return False
        user = s.scalars(
            select(StaffUser).where(
                StaffUser.tenant_id == tenant.id, StaffUser.email == email.strip().lower()
            )
        ).one_or_none()
        return user is not None and trusted_devices.is_trusted(ctx, s, user, device_cookie)


def sign_out(s: Session, cookie: str) -> None:
    staff.end_session(s, cookie)


WRONG_CURRENT_PASSWORD = "The current password is wrong."  # noqa: S105 (a message, not a password)


def change_password(
    s: Session, tenant_id: int, user_id: int, cookie: str, current: str, new: str, repeat: str
) -> str | None:
    """A staff member sets a new password; the demo's one-time password must be replaced (U1).

    Returns an error msgid when the current password is wrong instead of raising, so that
    the failed attempt still counts towards the lock-out (the transaction commits).
    Other sessions of the user end; the one in use stays.
    """
    user = s.get(StaffUser, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound()
    if new != repeat:
        raise InvalidInput(detail="The two new passwords differ.")
    if new == current:
        raise InvalidInput(detail="The new password must differ from the current one.")
    if len(new) < 10:
        raise InvalidInput(detail="passwords need at least 10 characters")
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    if staff.authenticate(s, tenant, user.email, current) is None:
        return WRONG_CURRENT_PASSWORD
    staff.set_password(s, user, new)
    keep = hashlib.sha256(cookie.encode()).hexdigest()
    s.execute(
        delete(StaffSession).where(
            StaffSession.tenant_id == tenant_id, StaffSession.user_id == user.id, StaffSession.id != keep
        )
    )
    audit.record(s, tenant_id, f"user:{user.id}", "staff.password_change", f"user:{user.id}")
    return None


# ---------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class Dashboard:
    contacts: int
    active_by_topic: list[tuple[str, dict[str, str], int]]  # slug, names, count
    pending_optins: int
    queued_messages: int


def dashboard(s: Session, tenant_id: int, now: datetime | None = None) -> Dashboard:
    """The numbers on the admin's first page; no personal data."""
    now = now or utcnow()
    n_contacts = s.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    )
    active = dict(
        s.execute(
            select(Consent.purpose, func.count())
            .where(Consent.tenant_id == tenant_id, Consent.status == "active")
            .group_by(Consent.purpose)
        ).all()
    )
    pending = s.scalar(
        select(func.count())
        .select_from(OptInRequest)
        .where(
            OptInRequest.tenant_id == tenant_id,
            OptInRequest.confirmed_at.is_(None),
            OptInRequest.expires_at > now,
        )
    )
    queued = s.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(
            OutboxRow.tenant_id == tenant_id,
            OutboxRow.state.in_(("available", "running", "unconfirmed", "held")),
        )
    )
    by_topic = [
        (t.slug, dict(t.names), int(active.get(f"newsletter:{t.slug}", 0)))
        for t in tenants.topics(s, tenant_id, active_only=False)
    ]
    return Dashboard(int(n_contacts or 0), by_topic, int(pending or 0), int(queued or 0))


# ---------------------------------------------------------------- contacts


@dataclass(frozen=True)
class ContactRow:
    """One line of the contact list: states and channels, no names or numbers."""

    id: int
    created_at: datetime
    last_activity_at: datetime | None
    has_contacted_us: bool
    channels: list[str]
    active: list[str]
    withdrawn: list[str]


def contact_list(
    s: Session, tenant_id: int, limit: int = 50, offset: int = 0, only: Any | None = None
) -> list[ContactRow]:
    rows = contacts.list_contacts(s, tenant_id, limit, offset, only)
    ids = [c.id for c in rows]
    if not ids:
        return []
    accounts = s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id))
    kinds = {a.id: a.kind for a in accounts}
    chans: dict[int, set[str]] = {}
    for ident in s.scalars(
        select(ContactIdentity).where(
            ContactIdentity.tenant_id == tenant_id, ContactIdentity.contact_id.in_(ids)
        )
    ):
        chans.setdefault(ident.contact_id, set()).add(kinds.get(ident.channel_account_id, "?"))
    states: dict[int, dict[str, list[str]]] = {}
    for c in s.scalars(select(Consent).where(Consent.tenant_id == tenant_id, Consent.contact_id.in_(ids))):
        states.setdefault(c.contact_id, {}).setdefault(c.status, []).append(c.purpose)
    return [
        ContactRow(
            c.id,
            c.created_at,
            c.last_activity_at,
            c.has_contacted_us,
            sorted(chans.get(c.id, ())),
            sorted(states.get(c.id, {}).get("active", [])),
            sorted(states.get(c.id, {}).get("withdrawn", [])),
        )
        for c in rows
    ]


@dataclass(frozen=True)
class TopicState:
    purpose: str
    names: dict[str, str]
    status: str  # active / withdrawn / none
    text_version: int | None
    changed_at: datetime | None


@dataclass
class ContactPage:
    id: int
    created_at: datetime
    locale: str | None
    has_contacted_us: bool
    unreachable: bool
    topics: list[TopicState]
    ledger: list[dict[str, Any]]
    personal: bool
    name: str = ""
    identities: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def _thread_item(ctx: Konsent, s: Session, m: Message) -> dict[str, Any]:
    d = api_ops.describe_message(ctx, s, m, with_body=True)
    shown = {"kind": d.get("kind"), "details": d.get("details"), "ref": d.get("refers_to")}
    return {**d, "author": m.author, "received": received.view_of(shown)}


def contact_page(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, personal: bool
) -> ContactPage:
    """Everything the contact page shows; with `personal`, audited as a view of personal data (S4)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    rows = {r.purpose: r for r in contacts.consent_rows(s, contact)}
    states: list[TopicState] = []
    for t in tenants.topics(s, tenant_id, active_only=False):
        purpose = f"newsletter:{t.slug}"
        r = rows.pop(purpose, None)
        states.append(
            TopicState(
                purpose,
                dict(t.names),
                r.status if r else "none",
                r.text_version if r else None,
                r.changed_at if r else None,
            )
        )
    for purpose, r in sorted(rows.items()):  # purposes of topics that no longer exist
        states.append(TopicState(purpose, {}, r.status, r.text_version, r.changed_at))
    ledger = [
        {"seq": e.seq, "purpose": e.purpose, "action": e.action, "recorded_at": e.created_at, **e.payload}
        for e in proof.ledger_entries(s, contact)
    ]
    page = ContactPage(
        contact.id,
        contact.created_at,
        contact.locale,
        contact.has_contacted_us,
        contact.unreachable,
        states,
        ledger,
        personal,
    )
    if personal and contact.wrapped_key is not None:
        audit.record(s, tenant_id, actor, "contact.view", f"contact:{contact.id}")
        described = contacts.describe(ctx, s, contact, personal=True)
        page.name = str(described.get("name") or "")
        page.identities = list(described.get("identities") or [])  # type: ignore[call-overload]
        msgs = s.scalars(
            select(Message)
            .where(Message.tenant_id == tenant_id, Message.contact_id == contact.id)
            .order_by(Message.id.desc())
            .limit(200)
        ).all()
        page.messages = [_thread_item(ctx, s, m) for m in reversed(msgs)]
    return page


# ---------------------------------------------------------------- channels


@dataclass(frozen=True)
class ChannelView:
    id: int
    kind: str
    label: str
    name: str
    provider_ref: str
    webhook_url: str
    processing_region: str
    safeguard: str
    settings: list[tuple[str, Any]]  # (field label msgid, value)
    secrets_set: list[tuple[str, bool]]  # (field label msgid, a value is stored) — never the value
    registers_webhook: bool = False  # konsent can register the webhook URL at the provider itself
    receives_inbound: bool = True  # False: the provider posts nothing, there is no URL to configure
    active: bool = True
    health: channel_health.Health | None = None
    fields: list[Any] = field(default_factory=list)  # what the edit form offers
    values: dict[str, str] = field(default_factory=dict)  # current non-secret values for the form
    deletable: bool = False


@dataclass(frozen=True)
class ChannelKind:
    kind: str
    label: str
    processing_region: str
    safeguard: str
    fields: list[Any]


def channel_kinds() -> list[ChannelKind]:
    """Every registered adapter with the fields its setup form asks for."""
    out = []
    for kind in channels.kinds():
        cls = channels.adapter_class(kind)
        caps = cls.capabilities
        out.append(
            ChannelKind(kind, cls.label, caps.processing_region, caps.safeguard, list(cls.setup_fields))
        )
    return out


def channel_views(ctx: Konsent, s: Session, tenant_id: int) -> list[ChannelView]:
    """The tenant's channel accounts with webhook URL and where the provider processes data (S7)."""
    base = ctx.settings.base_url.rstrip("/")
    now = utcnow()
    out = []
    for acc in channel_admin.all_accounts(s, tenant_id):
        try:
            cls = channels.adapter_class(acc.kind)
        except KeyError:
            continue
        cfg = tenants.account_config(ctx, s, acc)
        labels = {f.name: f.label for f in cls.setup_fields}
        out.append(
            ChannelView(
                acc.id,
                acc.kind,
                cls.label,
                acc.name,
                acc.provider_ref,
                f"{base}/webhooks/{acc.route_key}",
                cls.capabilities.processing_region,
                cls.capabilities.safeguard,
                [(labels.get(k, k), v) for k, v in acc.settings.items()],
                [(f.label, bool(cfg.secrets.get(f.name))) for f in cls.setup_fields if f.secret],
                cls.registers_webhook,
                cls.capabilities.receives_inbound,
                acc.active,
                channel_health.health(s, acc, now),
                channel_admin.editable_fields(acc.kind),
                {"provider_ref": acc.provider_ref, **{k: str(v) for k, v in acc.settings.items()}},
                not channel_admin.in_use(s, acc),
            )
        )
    return out


MAX_FIELD = 2000


def add_channel_account(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, kind: str, name: str, values: dict[str, str]
) -> ChannelAccount:
    """Connect a new channel account from the admin form; secret fields are sealed (S1, S7)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput(detail="Give the account a name (at most 200 characters).")
    # every field is checked before anything is saved: a value the provider would refuse never lands
    provider_ref, settings, secrets_ = channel_admin.clean_new(kind, values)
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    acc = tenants.create_channel_account(
        ctx, s, tenant, kind, name, provider_ref=provider_ref, settings=settings, secrets_=secrets_
    )
    audit.record(s, tenant_id, actor, "channel.create", f"channel:{acc.id}", kind=kind)
    return acc
