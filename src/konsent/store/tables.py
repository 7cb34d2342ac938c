"""Every table carries its tenant (invariant 4); personal data is sealed (invariant 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from konsent.store.types import BigId, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


def _id() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def _tenant() -> Mapped[int]:
    return mapped_column(BigId, ForeignKey("tenants.id"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = _id()
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    default_locale: Mapped[str] = mapped_column(String(8), default="de")
    privacy_url: Mapped[str] = mapped_column(String(500), default="")
    privacy_version: Mapped[str] = mapped_column(String(64), default="1")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = _created()


class TenantKey(Base):
    """The tenant's data key and blind-index key, wrapped by the master key."""

    __tablename__ = "tenant_keys"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_index_key: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)


class ChainHead(Base):
    """Head of a tenant's hash chain; locking this row serialises appends."""

    __tablename__ = "chain_heads"
    tenant_id: Mapped[int] = mapped_column(BigId, ForeignKey("tenants.id"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(BigId, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(8), default="de")
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: the tenant's
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)


class StaffSession(Base):
    __tablename__ = "staff_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    tenant_id: Mapped[int] = _tenant()
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="admin")
    # None: everything the role may do; else "area:read" / "area:write" entries (M4)
    scopes: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # who made it; ends with them
    created_by: Mapped[str] = mapped_column(String(120), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_api_tokens_user", "tenant_id", "user_id"),)


class StaffInvite(Base):
    """A one-time link to choose a password: an invitation or a reset (S3); only its hash is kept."""

    __tablename__ = "staff_invites"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # invite / reset
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Topic(Base):
    __tablename__ = "topics"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    slug: Mapped[str] = mapped_column(String(63))
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # locale -> name
    descriptions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: archived (widget, new broadcasts)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # display order
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)


class ConsentText(Base):
    """A consent text exactly as shown, per locale and version (C3, C6)."""

    __tablename__ = "consent_texts"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    locale: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    author: Mapped[str] = mapped_column(String(120), default="", server_default="")
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "locale", "version"),)


class ChannelAccount(Base):
    __tablename__ = "channel_accounts"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    route_key: Mapped[str] = mapped_column(String(64), unique=True)  # random, in the webhook URL
    provider_ref: Mapped[str] = mapped_column(String(128), default="")  # phone_number_id, bot name ...
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    # health (U5): written at most about once a minute on success, on every failure
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")  # provider code: text
    failing_sends: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts since a success


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None = shredded
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    has_contacted_us: Mapped[bool] = mapped_column(Boolean, default=False)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    objected_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()


class ContactIdentity(Base):
    """The contact's address on one channel account, found by blind index only."""

    __tablename__ = "contact_identities"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    address_index: Mapped[str] = mapped_column(String(64))
    address_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    user_id_index: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()
    # ISO country of a phone number (or BSUID) from its calling code, for price estimates (CH6);
    # None where unknown (identities older than migration 0018, channels without numbers)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel_account_id", "address_index"),
        Index("ix_identity_user", "tenant_id", "channel_account_id", "user_id_index"),
    )


class Consent(Base):
    """Current state per contact and purpose; the ledger holds the history."""

    __tablename__ = "consents"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"))
    purpose: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    text_version: Mapped[int] = mapped_column(Integer, default=0)
    channel_account_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("tenant_id", "contact_id", "purpose"),
        Index("ix_consent_purpose", "tenant_id", "purpose", "status"),
        Index("ix_consent_audience", "tenant_id", "purpose", "status", "contact_id"),
    )


class LedgerEntry(Base):
    """Append-only, hash-chained consent ledger (C3, invariant 3)."""

    __tablename__ = "consent_ledger"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    seq: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    purpose: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)


class AuditEntry(Base):
    """Append-only, hash-chained audit log of staff access (S4, invariant 3)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    seq: Mapped[int] = mapped_column(BigId)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(120), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)


class OptInRequest(Base):
    """A pending double opt-in: created by the widget, confirmed by the contact's code (C2)."""

    __tablename__ = "optin_requests"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    topics: Mapped[list[str]] = mapped_column(JSON)
    consent_text_id: Mapped[int] = mapped_column(BigId, ForeignKey("consent_texts.id"))
    privacy_url: Mapped[str] = mapped_column(String(500))
    privacy_version: Mapped[str] = mapped_column(String(64))
    source_url: Mapped[str] = mapped_column(String(500), default="")
    ip_hash: Mapped[str] = mapped_column(String(64), default="")
    ua_hash: Mapped[str] = mapped_column(String(64), default="")
    locale: Mapped[str] = mapped_column(String(8))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    state: Mapped[str] = mapped_column(String(16), default="open")
    started_at: Mapped[datetime] = _created()
    last_message_at: Mapped[datetime] = _created()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # inbox (M1): routing, assignment, snooze; `version` is bumped by every change (optimistic locking)
    team_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # when an agent last opened it: inbound messages after this are unread (M1, #17)
    agent_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_conv_list", "tenant_id", "state", "last_message_at"),)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    purpose: Mapped[str | None] = mapped_column(String(80), nullable=True)
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The unredacted body of an outgoing message that carries a link or code meant for the contact
    # alone: only the delivery worker reads it, and it is cleared once sent; staff see body_sealed,
    # where such secrets are replaced (flows.privacy.secrets, #13).
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(String(300), default="")
    author: Mapped[str] = mapped_column(String(120), default="")
    # Which registered template (and which version of it) an agent sent; no foreign key, so
    # removing a template from the registry keeps the record of what went out.
    template_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("channel_account_id", "direction", "provider_id", name="uq_message_provider"),
    )


class OutboxRow(Base):
    """The delivery queue, in the same database as consent (DESIGN: storage and scale)."""

    __tablename__ = "outbox"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id"))
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    channel_account_id: Mapped[int] = mapped_column(BigId)
    purpose: Mapped[str] = mapped_column(String(80))
    min_text_version: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="available")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_at: Mapped[datetime] = _created()
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # set for broadcast messages
    # When this attempt's request was about to go on the wire (group-committed before the send):
    # a row whose worker died without it was never sent and goes back to the queue silently.
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        Index("ix_outbox_claim", "state", "run_at"),
        Index("ix_outbox_broadcast", "broadcast_id", "state"),
        Index("ix_outbox_account_claim", "channel_account_id", "state", "run_at"),
        Index("ix_outbox_contact", "tenant_id", "contact_id", "state"),
    )


class WebhookEvent(Base):
    """Idempotency record of every inbound event (invariant 6)."""

    __tablename__ = "webhook_events"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId)
    dedupe_key: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("channel_account_id", "dedupe_key"),)


class Counter(Base):
    """Counters that leave no personal trace, such as rejected webhook signatures (CH2)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[int] = mapped_column(BigId, default=0)


class SimulatorMail(Base):
    """The simulator provider's mailbox: what the phone page shows (sealed like everything)."""

    __tablename__ = "simulator_mail"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId)
    address_index: Mapped[str] = mapped_column(String(64), index=True)
    provider_id: Mapped[str] = mapped_column(String(64), unique=True)
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()


class SimulatorPhone(Base):
    """A simulated phone and the browser that made it: only that browser may act as it (CH1, S8)."""

    __tablename__ = "simulator_phones"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId)
    address_index: Mapped[str] = mapped_column(String(64))
    browser_hash: Mapped[str] = mapped_column(String(64))  # keyed hash of the browser's secret cookie
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("channel_account_id", "address_index"),)


# --- privacy centre (D1-D5, L1, C7) -------------------------------------------------------------


class SuppressionEntry(Base):
    """A keyed hash of an address that withdrew or was erased; blocks silent re-adds (C7, D2)."""

    __tablename__ = "suppression_list"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    address_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))  # withdrawn / erased
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "address_hash"),)


class ErasureNote(Base):
    """The only trace an erasure leaves: when and through which door (D2)."""

    __tablename__ = "erasure_notes"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(40))


class PrivacyRequest(Base):
    """A data-subject request with its one-month due date (D5, Art. 12(3))."""

    __tablename__ = "privacy_requests"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # None once erased
    kind: Mapped[str] = mapped_column(String(16))  # access / erasure / rectification / objection
    channel: Mapped[str] = mapped_column(String(16))  # keyword / portal / staff / email / letter
    state: Mapped[str] = mapped_column(String(16))  # open / confirming / done / rejected
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirm_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handled_by: Mapped[str] = mapped_column(String(120), default="")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    __table_args__ = (Index("ix_privacy_requests_due", "tenant_id", "state", "due_at"),)


class PrivacyExport(Base):
    """A ready export ZIP, sealed with the contact's key, behind a single-use link (D1)."""

    __tablename__ = "privacy_exports"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PrivacyLink(Base):
    """A single-use, expiring link to the contact's self-service privacy page (D1, D2)."""

    __tablename__ = "privacy_links"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PrivacyProof(Base):
    """Proof that whoever opened a self-service link also holds the contact's messenger (D1-D4, #13):
    a code sent there, then a short browser session; both stored as keyed hashes only."""

    __tablename__ = "privacy_proofs"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)  # token digest of the link
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    session_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    session_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()


class RetentionRule(Base):
    """A tenant's retention period for one category of data (L1)."""

    __tablename__ = "retention_rules"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    category: Mapped[str] = mapped_column(String(40))
    hours: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "category"),)


class RetentionRun(Base):
    """One application of the deletion concept and what it deleted per category (L1)."""

    __tablename__ = "retention_runs"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(120), default="")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Broadcast(Base):
    """A newsletter to the consented audience of one topic; its checkpoint makes queuing resumable (M3)."""

    __tablename__ = "broadcasts"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(80))  # newsletter:<topic>
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # text and/or template with variables
    min_text_version: Mapped[int] = mapped_column(Integer, default=0)
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channel_account_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # None: where subscribed
    state: Mapped[str] = mapped_column(String(16), default="draft")
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    checkpoint: Mapped[int] = mapped_column(BigId, default=0)  # last contact id queued
    audience: Mapped[int] = mapped_column(Integer, default=0)  # contacts looked at so far
    queued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # reason -> count
    author: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused_reason: Mapped[str] = mapped_column(String(300), default="")  # set when konsent paused it
    # CH6 costs, in millionths of the price list's currency: the cap (None: none) and what the
    # messages queued so far are estimated to cost (flows.outbound.budget)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cost_reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (Index("ix_broadcast_due", "state", "scheduled_at"),)


class Segment(Base):
    """A saved audience definition (domain.segments): data, evaluated at send time inside the
    topic's consent, copied into each broadcast that uses it (M5)."""

    __tablename__ = "segments"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_segment_name"),)


class EarlyStatus(Base):
    """A status webhook that overtook the recording of its message's provider id (CH4)."""

    __tablename__ = "early_statuses"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId)
    provider_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The opaque reference the provider echoed (WhatsApp biz_opaque_callback_data, Messenger metadata):
    # names the outbox row whose send was of unknown outcome after a crash (delivery.echoes).
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        Index("ix_early_status", "channel_account_id", "provider_id"),
        Index("ix_early_status_ref", "ref"),
    )


# Retention deletes messages in batches; the outbox's foreign key must not force a scan per row.
Index("ix_outbox_message", OutboxRow.message_id)


# --- inbox and chatbot (M1, M2, S3) --------------------------------------------------------------

Index("ix_conv_recent", Conversation.tenant_id, Conversation.last_message_at)
Index("ix_conv_team", Conversation.tenant_id, Conversation.team_id, Conversation.last_message_at)


class Team(Base):
    """A group of agents; conversations are routed to one (M1, S3)."""

    __tablename__ = "teams"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)


class TeamMember(Base):
    __tablename__ = "team_members"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("teams.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id"), index=True)
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)


class ConversationLabel(Base):
    __tablename__ = "conversation_labels"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id"), index=True)
    label: Mapped[str] = mapped_column(String(40))
    __table_args__ = (
        UniqueConstraint("conversation_id", "label"),
        Index("ix_conv_label", "tenant_id", "label"),
    )


class ConversationNote(Base):
    """An internal note; sealed with the contact's key so erasure shreds it too."""

    __tablename__ = "conversation_notes"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id"), index=True)
    author: Mapped[str] = mapped_column(String(120))
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()


class CannedReply(Base):
    """A reusable answer with {variables}; holds no personal data."""

    __tablename__ = "canned_replies"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "shortcut"),)


class MessageTemplate(Base):
    """A provider-approved message template of one channel account; company text, not sealed (M1, CH3)."""

    __tablename__ = "message_templates"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(20))  # MARKETING / UTILITY / AUTHENTICATION
    status: Mapped[str] = mapped_column(String(20))  # APPROVED / PENDING / REJECTED / PAUSED
    body: Mapped[str] = mapped_column(Text)
    header: Mapped[str] = mapped_column(String(200), default="")
    buttons: Mapped[list[str]] = mapped_column(JSON, default=list)
    variables: Mapped[int] = mapped_column(Integer, default=0)  # derived from {{1}}…{{n}} in the body
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped on every change
    updated_at: Mapped[datetime] = _created()
    quality: Mapped[str] = mapped_column(String(16), default="")  # GREEN / YELLOW / RED, as Meta rates it
    __table_args__ = (UniqueConstraint("tenant_id", "channel_account_id", "name", "language"),)


class CsatRating(Base):
    """A satisfaction question after a conversation was resolved, and the contact's answer (M1, S5).

    Kept per conversation and team, never per agent, so works-council mode needs no second table."""

    __tablename__ = "csat_ratings"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int] = mapped_column(BigId, unique=True)
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    team_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 bad, 2 okay, 3 good
    asked_at: Mapped[datetime] = _created()
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TemplateEvent(Base):
    """A provider's change of a template's status, quality or category, kept as its history (T4, M1)."""

    __tablename__ = "template_events"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel_accounts.id"))
    template_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(16))  # status / quality / category
    old: Mapped[str] = mapped_column(String(40), default="")
    new: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_template_events_template", "tenant_id", "template_id"),)


class InboxAttachment(Base):
    """A file an agent attached to a reply: name and bytes sealed with the contact's key, so erasing
    the contact shreds it; served to staff of the conversation's team and, by a short-lived signed
    link, to the provider that delivers it (M1, S1, #17)."""

    __tablename__ = "inbox_attachments"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, index=True)
    conversation_id: Mapped[int] = mapped_column(BigId, index=True)
    message_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    uploaded_by: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # image / document / video / audio
    mime: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    filename_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    data_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()


class InboxEvent(Base):
    """A change in the inbox, for live updates across processes (SSE poll fallback)."""

    __tablename__ = "inbox_events"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = _created()
    # who is replying in one conversation (flows.inbox.presence) is asked per conversation
    __table_args__ = (Index("ix_inbox_events_conversation", "tenant_id", "conversation_id"),)


class BotFlow(Base):
    """A chatbot flow stored as data, run by flows.bot (M2)."""

    __tablename__ = "bot_flows"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class BotSession(Base):
    """Where a flow stands in one conversation; `vars` holds only choice ids, never free text."""

    __tablename__ = "bot_sessions"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id"), unique=True)
    flow_id: Mapped[int] = mapped_column(BigId, ForeignKey("bot_flows.id"))
    step: Mapped[str] = mapped_column(String(63), default="")
    state: Mapped[str] = mapped_column(String(16), default="running")  # running / handover / done
    vars: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ContactField(Base):
    """A value the bot collected with consent (name, customer number ...), sealed (M2, S1)."""

    __tablename__ = "contact_fields"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    value_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    purpose: Mapped[str] = mapped_column(String(80), default="")  # the data consent it was kept under
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "contact_id", "name"),)


class StaffTotp(Base):
    """A staff member's TOTP secret, sealed with the tenant key; active once confirmed (S3)."""

    __tablename__ = "staff_totp"
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id"), primary_key=True)
    tenant_id: Mapped[int] = _tenant()
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_step: Mapped[int] = mapped_column(BigId, default=0)  # refuses a code's reuse


class ReconsentCampaign(Base):
    """Re-consent asked of the contacts whose consent rests on an older text version (C6)."""

    __tablename__ = "reconsent_campaigns"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    consent_text_id: Mapped[int] = mapped_column(BigId, ForeignKey("consent_texts.id"))
    locale: Mapped[str] = mapped_column(String(8))
    to_version: Mapped[int] = mapped_column(Integer)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)  # purposes asked about
    targeted: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # reason -> count
    author: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReconsentRequest(Base):
    """One contact's re-consent request: the code they send back to confirm the new text (C6)."""

    __tablename__ = "reconsent_requests"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("reconsent_campaigns.id"), index=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)  # purposes this contact was asked about
    from_versions: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # purpose -> old version
    message_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # sent / confirmed
    created_at: Mapped[datetime] = _created()
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IdempotencyKey(Base):
    """The first answer to a POST sent with an `Idempotency-Key` (M4); unique per token, so a retry,
    even a concurrent one, finds it instead of creating or sending again. Kept 24 hours."""

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    actor: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body hash
    status: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("tenant_id", "actor", "key", name="uq_idempotency_key"),
        Index("ix_idempotency_created", "created_at"),
    )


class WebhookEndpoint(Base):
    """A tenant's system that receives signed events (M4); the secret sealed with the tenant key."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[Any] = mapped_column(JSON)  # list of event types; ["*"] for all
    include_personal: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(String(300), default="")
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()


class WebhookDelivery(Base):
    """One event for one endpoint: written in the transaction of the action that caused it, sent at
    least once by the worker with leases and backoff (M4). Holds ids, never personal data."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    endpoint_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[Any] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending running done failed
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = _created()
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        Index("ix_webhook_deliveries_claim", "state", "run_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )


class WorkerHeartbeat(Base):
    """A delivery worker's last sign of life (U6); installation-wide, so no tenant and nothing personal."""

    __tablename__ = "worker_heartbeats"
    worker_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- costs (CH6, #16 item 4) -----------------------------------------------------------------------


class MessageCharge(Base):
    """What the provider said a sent message is charged as (WhatsApp `pricing` in status webhooks).

    One row per message, written with the status that first carried the pricing block. No personal
    data: `message_ref` is the message's id without a foreign key (and deliberately not named
    `message_id`), so the anonymous cost record stays when retention or an erasure deletes the
    message, and the month's figures do not change afterwards.
    """

    __tablename__ = "message_charges"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_account_id: Mapped[int] = mapped_column(BigId)
    message_ref: Mapped[int] = mapped_column(BigId)
    purpose: Mapped[str] = mapped_column(String(80), default="")
    country: Mapped[str] = mapped_column(String(2), default="")  # ISO 3166 alpha-2, "" unknown
    category: Mapped[str] = mapped_column(String(32), default="")  # marketing, utility, service …
    pricing_type: Mapped[str] = mapped_column(String(32), default="")  # regular, free_customer_service …
    pricing_model: Mapped[str] = mapped_column(String(8), default="")  # PMP (CBP before July 2025)
    billable: Mapped[bool] = mapped_column(Boolean, default=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM (UTC) of the status
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("tenant_id", "message_ref", name="uq_message_charge"),
        Index("ix_message_charges_month", "tenant_id", "month"),
    )


class PriceList(Base):
    """One imported version of the price table, valid from a date until the next one (CH6)."""

    __tablename__ = "price_lists"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    source: Mapped[str] = mapped_column(String(200), default="")  # the file's name
    imported_by: Mapped[str] = mapped_column(String(120), default="")
    imported_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_price_lists_valid", "tenant_id", "valid_from"),)


class Price(Base):
    """The price of one message of a category to a country ("*": every other country) (CH6)."""

    __tablename__ = "prices"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    price_list_id: Mapped[int] = mapped_column(BigId, ForeignKey("price_lists.id", ondelete="CASCADE"))
    country: Mapped[str] = mapped_column(String(2))
    category: Mapped[str] = mapped_column(String(32))
    price_micros: Mapped[int] = mapped_column(BigInteger)  # millionths of the list's currency
    __table_args__ = (UniqueConstraint("price_list_id", "country", "category", name="uq_price"),)


# --- contact labels, typed attributes and search (M5, S1, L1; flows/contact_data) --------------


class LabelDefinition(Base):
    """A label a tenant puts on contacts ("VIP", "Messe 2026"); company vocabulary, not sealed."""

    __tablename__ = "label_definitions"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_label_definitions_name"),)


class ContactLabel(Base):
    """A label on one contact; erasure deletes it with the contact (D2)."""

    __tablename__ = "contact_labels"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    label_id: Mapped[int] = mapped_column(BigId, ForeignKey("label_definitions.id"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("contact_id", "label_id", name="uq_contact_labels"),
        Index("ix_contact_labels_label", "tenant_id", "label_id", "contact_id"),
    )


class AttributeDefinition(Base):
    """A typed custom attribute of a tenant's contacts, with its purpose and retention rule (M5, L1)."""

    __tablename__ = "attribute_definitions"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    key: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))  # text / number / date / choice
    options: Mapped[list[str]] = mapped_column(JSON, default=list)  # choice only
    purpose: Mapped[str] = mapped_column(String(300))
    retention: Mapped[str] = mapped_column(String(24))  # domain.attributes.Retention
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_attribute_definitions_key"),)


class ContactAttribute(Base):
    """One contact's value of an attribute: sealed with the contact's key, found by blind index (S1)."""

    __tablename__ = "contact_attributes"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    attribute_id: Mapped[int] = mapped_column(BigId, ForeignKey("attribute_definitions.id"))
    value_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    value_index: Mapped[str] = mapped_column(String(64))  # keyed HMAC of the folded canonical value
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("contact_id", "attribute_id", name="uq_contact_attributes"),
        Index("ix_contact_attributes_value", "tenant_id", "attribute_id", "value_index"),
        Index("ix_contact_attributes_index", "tenant_id", "value_index"),
    )


class ContactSearchGram(Base):
    """A keyed trigram of a contact's folded display name: the name search index (S1; docs/PRIVACY.md)."""

    __tablename__ = "contact_search_grams"
    tenant_id: Mapped[int] = mapped_column(BigId, ForeignKey("tenants.id"), primary_key=True)
    gram: Mapped[str] = mapped_column(String(16), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), primary_key=True, index=True)
