"""Provider events other than customer messages, applied in the event's transaction (CH4, C4):
a delivery status on the slow path (the group commit in `status_sink` takes status-only
deliveries), a block or unblock on the platform, a marketing stop or resume.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.events import (
    MarketingPreference,
    ReachabilityChange,
    StatusUpdate,
)
from konsent.flows.consent import grants as consent_flow
from konsent.flows.contacts import find_identity
from konsent.flows.context import Konsent
from konsent.flows.outbound import costs
from konsent.flows.webhooks.events import emit_status
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    EarlyStatus,
    Message,
)

_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def on_status(s: Session, account: ChannelAccount, ev: StatusUpdate) -> None:
    """Move a sent message forward; a late 'delivered' never undoes 'read' (CH4).

    The row is locked: providers post a message's statuses concurrently and out of
    order, and two webhooks must not both decide from the same old status.
    """
    msg = s.scalars(
        select(Message)
        .where(
            Message.channel_account_id == account.id,
            Message.direction == "out",
            Message.provider_id == ev.provider_id,
        )
        .with_for_update()
    ).one_or_none()
    if msg is None and ev.ref:  # an echo of a send whose outcome a crash left unknown (#14)
        reason = f"{ev.error_code or ''} {ev.error_title or ''}".strip()[:300]
        s.add(
            EarlyStatus(
                tenant_id=account.tenant_id, channel_account_id=account.id, provider_id=ev.provider_id[:200],
                status=ev.status[:16], reason=reason, at=ev.at, ref=ev.ref[:64],
            )
        )  # fmt: skip
        return
    if msg is None or msg.tenant_id != account.tenant_id:
        return
    costs.record_charge(s, msg, ev)  # CH6: what the provider charges it as, once per message
    before = msg.status
    if ev.status == "failed":
        if msg.status not in ("delivered", "read"):
            msg.status = "failed"
            msg.status_reason = f"{ev.error_code or ''} {ev.error_title or ''}".strip()[:300]
    elif _STATUS_RANK.get(ev.status, -1) > _STATUS_RANK.get(msg.status, -1):
        msg.status = ev.status
    msg.updated_at = max(msg.updated_at, ev.at)
    if msg.status != before:
        emit_status(s, msg.tenant_id, msg.id, msg.status, msg.status_reason)


def _identity_contact(
    ctx: Konsent, s: Session, account: ChannelAccount, address: str, user_id: str | None = None
) -> Contact | None:
    ident: ContactIdentity | None = find_identity(ctx, s, account, address, user_id)
    return s.get(Contact, ident.contact_id) if ident else None


def on_reachability(ctx: Konsent, s: Session, account: ChannelAccount, ev: ReachabilityChange) -> None:
    """A block on the platform is a withdrawal of marketing, recorded with its source; an unblock
    makes the contact reachable again, is recorded in the ledger as a platform resume and grants
    nothing (C3, C4)."""
    contact = _identity_contact(ctx, s, account, ev.address)
    if contact is not None:
        was_unreachable = contact.unreachable
        contact.unreachable = not ev.reachable
        if ev.blocked:
            consent_flow.withdraw(s, contact, None, source="provider_block", at=ev.at, channel=account.kind)
        elif ev.reachable and was_unreachable:
            consent_flow.record_platform_resume(
                s, contact, source="provider_unblock", at=ev.at, channel=account.kind
            )


def on_preference(ctx: Konsent, s: Session, account: ChannelAccount, ev: MarketingPreference) -> None:
    """A platform's marketing stop (WhatsApp "stop promotions", Messenger/Instagram unsubscribe):
    every marketing purpose withdrawn, queued marketing cancelled, in this transaction (C4).
    A platform "resume" grants nothing: it is only recorded in the ledger (C3, CH6)."""
    contact = _identity_contact(ctx, s, account, ev.address, ev.user_id)
    if contact is None:
        return
    if ev.stop:
        consent_flow.withdraw(s, contact, None, source=ev.source, at=ev.at, channel=account.kind)
    else:
        consent_flow.record_platform_resume(s, contact, source=ev.source, at=ev.at, channel=account.kind)
