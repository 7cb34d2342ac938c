"""The simulator's provider side: a mailbox per phone and signed deliveries into konsent (CH1)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import select

from konsent.channels.base import OutboundContent, WebhookRequest
from konsent.channels.simulator import SIGNATURE_HEADER, sign
from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows.context import Konsent
from konsent.flows.inbound.receive import WebhookResult, receive_webhook
from konsent.flows.organisation.tenants import account_config
from konsent.store.tables import ChannelAccount, EarlyStatus, SimulatorMail
from konsent.store.types import utcnow

MAX_TEXT = 4096


def normalize_phone(value: str) -> str:
    """E.164 of a number typed on the simulator phone; German numbers without +49 are fine."""
    try:
        num = phonenumbers.parse(value, "DE")
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(detail="not a phone number") from exc
    if not phonenumbers.is_possible_number(num):
        raise InvalidInput(detail="not a possible phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _account(ctx: Konsent, account_id: int) -> ChannelAccount:
    with ctx.db.read() as s:
        acc = s.get(ChannelAccount, account_id)
        if acc is None or acc.kind != "simulator" or not acc.active:
            raise NotFound()
        return acc


class StoreMailbox:
    """Where the simulator channel 'delivers': a table the phone page reads."""

    def __init__(self, ctx: Konsent) -> None:
        self.ctx = ctx

    def deliver(self, account_id: int, address: str, content: OutboundContent) -> str:
        provider_id = "sim." + secrets.token_hex(10)
        with self.ctx.db.write() as s:
            acc = s.get(ChannelAccount, account_id)
            assert acc is not None
            s.add(
                SimulatorMail(
                    tenant_id=acc.tenant_id,
                    channel_account_id=acc.id,
                    address_index=self.ctx.keys.index(s, acc.tenant_id, "sim-mail", address),
                    provider_id=provider_id,
                    content_sealed=self.ctx.keys.seal_for_tenant(
                        s, acc.tenant_id, json.dumps(content.as_dict()), f"sim:{provider_id}"
                    ),
                )
            )
            if content.ref:
                # The provider side's "sent" status, echoing the reference: stored with the mail in one
                # transaction, as a real provider's webhook arrives even when konsent crashed (#14).
                s.add(
                    EarlyStatus(
                        tenant_id=acc.tenant_id, channel_account_id=acc.id, provider_id=provider_id,
                        status="sent", reason="", at=utcnow(), ref=content.ref[:64],
                    )
                )  # fmt: skip
        return provider_id


@dataclass(frozen=True)
class PhoneMessage:
    id: int
    provider_id: str
    text: str
    buttons: list[dict[str, str]]
    at: datetime
    media: dict[str, str] | None = None  # {"url", "kind", "filename"} of a media message; text is its caption
    link: dict[str, str] | None = None  # {"title", "url"} of a link button (CH5)


def phone_inbox(ctx: Konsent, account_id: int, phone: str, after_id: int = 0) -> list[PhoneMessage]:
    """Messages konsent sent to this simulated phone, oldest first."""
    acc = _account(ctx, account_id)
    address = normalize_phone(phone)
    with ctx.db.read() as s:
        idx = ctx.keys.index(s, acc.tenant_id, "sim-mail", address)
        rows = s.scalars(
            select(SimulatorMail)
            .where(
                SimulatorMail.channel_account_id == acc.id,
                SimulatorMail.address_index == idx,
                SimulatorMail.id > after_id,
            )
            .order_by(SimulatorMail.id)
            .limit(200)
        ).all()
        out = []
        for r in rows:
            data = json.loads(
                ctx.keys.open_for_tenant(s, acc.tenant_id, r.content_sealed, f"sim:{r.provider_id}")
            )
            media = None
            if data.get("media_url"):
                media = {
                    "url": str(data["media_url"]),
                    "kind": str(data.get("media_kind") or ""),
                    "filename": str(data.get("media_filename") or ""),
                }
            # A list's rows are tapped like reply buttons on the phone page; a tap answers with the id.
            buttons = data.get("buttons") or [
                {"id": w["id"], "title": w["title"]} for w in data.get("rows") or []
            ]
            link = data.get("link") if isinstance(data.get("link"), dict) else None
            out.append(
                PhoneMessage(r.id, r.provider_id, data.get("text", ""), buttons, r.created_at, media, link)
            )
        return out


def _deliver(ctx: Konsent, acc: ChannelAccount, payload: dict) -> WebhookResult:
    body = json.dumps(payload).encode()
    with ctx.db.read() as s:
        secret = account_config(ctx, s, acc).secrets.get("webhook_secret", "")
    req = WebhookRequest(
        method="POST",
        headers={SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json"},
        query={},
        body=body,
    )
    return receive_webhook(ctx, acc.route_key, req)


def phone_send(
    ctx: Konsent,
    account_id: int,
    phone: str,
    text: str,
    *,
    name: str | None = None,
    locale: str | None = None,
    button: str | None = None,
) -> WebhookResult:
    """The simulated contact sends a message: konsent receives it as a signed webhook."""
    acc = _account(ctx, account_id)
    text = text.strip()
    if not text and not button:
        raise InvalidInput(detail="empty message")
    if len(text) > MAX_TEXT:
        raise InvalidInput(detail="message too long")
    message = {
        "id": "simin." + secrets.token_hex(10),
        "from": normalize_phone(phone),
        "text": text,
        "timestamp": utcnow().timestamp(),
        "name": (name or "")[:100] or None,
        "locale": locale,
        "button": button,
    }
    return _deliver(ctx, acc, {"messages": [message]})


def phone_ack(ctx: Konsent, account_id: int, provider_ids: list[str], status: str) -> WebhookResult:
    """The phone page showed messages: report delivered/read back to konsent (CH4)."""
    if status not in ("delivered", "read"):
        raise InvalidInput(detail="status must be delivered or read")
    acc = _account(ctx, account_id)
    ts = utcnow().timestamp()
    return _deliver(
        ctx,
        acc,
        {"statuses": [{"id": p, "status": status, "timestamp": ts} for p in provider_ids[:200]]},
    )
