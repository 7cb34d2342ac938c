"""Threema Gateway in Basic mode: `send_simple`, Threema encrypts on its server (CH1, CH3, S7).

Wire facts: shared/protocols/threema.md §1-2. The trade-off is the reason this is
a kind of its own rather than a switch on the E2E account: in Basic mode Threema
holds the gateway ID's private key and therefore sees every message in plaintext,
and the gateway delivers nothing back — no replies, no delivery receipts. So a
Basic-mode account cannot take opt-in codes or STOP (`receives_inbound=False`:
the widget does not offer it), its messages end at *sent*, and the channel page
says that Threema reads the text. E2E (`threema`) stays the default Threema kind.

A contact's address may be a Threema ID (sent as `to`), a phone number (E.164,
sent as `phone` without `+`) or an e-mail address (`email`); Threema looks the
latter two up, which costs credits, and answers 404 when nobody has them.
"""

from __future__ import annotations

import re

from konsent.channels import media, register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    SetupField,
    WebhookRejected,
    WebhookRequest,
)
from konsent.channels.threema import MAX_TEXT_BYTES, ThreemaChannel, _gateway_id, _map_status
from konsent.channels.transport import Provider, Transport, default_transport
from konsent.domain.errors import InvalidInput
from konsent.domain.events import Event

PROVIDER = Provider("threema_basic", "https://msgapi.threema.ch", frozenset({"msgapi.threema.ch"}))
_THREEMA_ID = re.compile(r"^[0-9A-Z*]{8}$")
_PHONE = re.compile(r"^\+?[1-9][0-9]{5,14}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


def recipient_field(address: str) -> tuple[str, str] | None:
    """The send_simple field naming this recipient: ("to" | "phone" | "email", value), or None."""
    value = address.strip()
    if _THREEMA_ID.match(value.upper()) and not value.isdigit():
        return "to", value.upper()
    if _PHONE.match(value):
        return "phone", value.lstrip("+")
    if _EMAIL.match(value):
        return "email", value.lower()
    return None


@register
class ThreemaBasicChannel(ChannelAdapter):
    kind = "threema_basic"
    label = "Threema (Basic mode)"
    capabilities = Capabilities(
        service_window_hours=None,
        templates=False,
        buttons=False,
        max_buttons=0,
        max_text_len=MAX_TEXT_BYTES,
        throughput_per_s=ThreemaChannel.capabilities.throughput_per_s,
        receives_inbound=False,
        address_is_phone=False,
        processing_region=(
            "Threema GmbH, Switzerland (servers in Switzerland). Basic mode: Threema's server encrypts "
            "the messages and therefore sees their text"
        ),
        safeguard=ThreemaChannel.capabilities.safeguard,
    )
    setup_fields = (
        SetupField(
            "gateway_id",
            "Gateway ID",
            help="Your Basic-mode Threema ID, 8 characters starting with *.",
        ),
        SetupField("api_secret", "API secret", secret=True, help="From the Threema Gateway admin page."),
    )

    def __init__(self, timeout_s: float = 15.0, transport: Transport | None = None) -> None:
        self._timeout = timeout_s
        self._transport = transport or default_transport()

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Basic mode receives nothing: every callback is refused and only counted (CH2)."""
        raise WebhookRejected(403, "threema basic mode receives no callbacks")

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        raise ValueError("threema basic mode receives no callbacks")

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        """send_simple with from, to|phone|email, text, secret; the answer is the message id (CH3)."""
        if content.media_url:  # declares no media: never send the caption alone
            return media.refuse(content, self.capabilities)
        if not content.text:
            return SendResult(SendOutcome.PERMANENT, error_code="invalid_content", error_text="no text")
        if len(content.text.encode("utf-8")) > MAX_TEXT_BYTES:
            return SendResult(
                SendOutcome.PERMANENT, error_code="413", error_text=f"text over {MAX_TEXT_BYTES} bytes"
            )
        recipient = recipient_field(address)
        if recipient is None:
            return SendResult(
                SendOutcome.PERMANENT,
                error_code="invalid_address",
                error_text="neither a Threema ID, a phone number nor an e-mail address",
            )
        form = {
            "from": _gateway_id(account),
            recipient[0]: recipient[1],
            "text": content.text,
            "secret": account.secrets.get("api_secret", ""),
        }
        base = self._transport.base_url(PROVIDER, account)
        reply = await self._transport.send(
            PROVIDER, "POST", f"{base}/send_simple", data=form, timeout_s=self._timeout, max_bytes=10_000
        )
        if isinstance(reply, SendResult):
            return reply
        answer = reply.body[:200].decode("ascii", "replace").strip()
        status, headers = reply.status, reply.headers
        if status == 200 and re.fullmatch(r"[0-9a-fA-F]{16}", answer):
            return SendResult(SendOutcome.SENT, provider_id=answer.lower())
        if status == 200:
            return SendResult(SendOutcome.UNKNOWN, error_code="bad_answer", error_text="no message id")
        return _map_status(status, headers)

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        raise InvalidInput(detail="this channel cannot receive the confirmation code")
