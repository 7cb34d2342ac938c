"""Threema Gateway in end-to-end mode: MAC-checked callbacks, NaCl boxes, delivery receipts (CH1-CH4).

Wire facts: shared/protocols/threema.md. E2E mode is the only one that
receives replies and receipts, which opt-in by code and STOP need. konsent
holds the gateway ID's private key (sealed with the tenant key); Threema
never sees it.

Sender public keys: `parse` is synchronous, so it looks keys up in this
order: the account's `settings["pubkeys"]` ({threema_id: hex}), an
in-process cache, then a blocking `GET /pubkeys/{id}` against the API base
(webhooks run in a worker thread, so blocking there is acceptable). A key
the gateway cannot give makes the callback fail with 400.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from datetime import UTC, datetime
from threading import Lock
from typing import Any

import aiohttp
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey

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
from konsent.channels.sessions import LoopSessions
from konsent.domain.errors import InvalidInput
from konsent.domain.events import Event, InboundMessage, StatusUpdate, UnknownEvent

DEFAULT_API_BASE = "https://msgapi.threema.ch"
MAX_TEXT_BYTES = 3500
MAX_BOX_BYTES = 4000
MAC_FIELDS = ("from", "to", "messageId", "date", "nonce", "box")
TYPE_TEXT = 0x01
TYPE_RECEIPT = 0x80
RECEIPT_STATUS = {0x01: "delivered", 0x02: "read", 0x03: "read", 0x04: "read"}  # ack/decline imply read

_ID_RE = re.compile(r"^[0-9A-Z*]{8}$")
_HEX_RE = re.compile(r"^(?:[0-9a-f]{2})+$")
_MIN_TS, _MAX_TS = 946_684_800, 4_102_444_800


# --- callback authentication ------------------------------------------------------------------------


def callback_mac(secret: str, fields: dict[str, str]) -> str:
    """Lowercase hex HMAC-SHA256(api_secret, from‖to‖messageId‖date‖nonce‖box) (threema.md §3)."""
    message = "".join(fields[k] for k in MAC_FIELDS).encode("ascii")
    return hmac.new(secret.encode("ascii"), message, hashlib.sha256).hexdigest()


def _form(body: bytes) -> dict[str, str]:
    """Decode a form body; every field at most once (a repeated field is not what Threema sends)."""
    try:
        text = body.decode("ascii")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a form body") from exc
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"field {key} repeated")
        out[key] = value
    return out


# --- key handling ------------------------------------------------------------------------------------


def generate_private_key() -> str:
    """A new gateway private key, hex (give its public half to Threema when requesting the ID)."""
    return bytes(PrivateKey.generate()).hex()


def public_key_hex(private_key_hex: str) -> str:
    return bytes(_private_key(private_key_hex).public_key).hex()


def _private_key(value: str) -> PrivateKey:
    value = value.strip().lower().removeprefix("private:")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("the Threema private key must be 64 hex characters")
    return PrivateKey(bytes.fromhex(value))


def _public_key(value: str) -> PublicKey:
    value = value.strip().lower().removeprefix("public:")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("a Threema public key is 64 hex characters")
    return PublicKey(bytes.fromhex(value))


class _KeyCache:
    """Public keys by (api base, Threema ID); a key never changes for an ID, so no expiry is needed."""

    def __init__(self, limit: int = 10_000) -> None:
        self._keys: OrderedDict[tuple[str, str], PublicKey] = OrderedDict()
        self._limit = limit
        self._lock = Lock()

    def get(self, key: tuple[str, str]) -> PublicKey | None:
        with self._lock:
            value = self._keys.get(key)
            if value is not None:
                self._keys.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: PublicKey) -> None:
        with self._lock:
            self._keys[key] = value
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)


def _api_base(account: AccountConfig) -> str:
    return str(account.settings.get("api_base") or DEFAULT_API_BASE).rstrip("/")


def _gateway_id(account: AccountConfig) -> str:
    return str(account.settings.get("gateway_id") or account.secrets.get("gateway_id") or "")


def _pubkey_url(account: AccountConfig, threema_id: str) -> str:
    query = urllib.parse.urlencode(
        {"from": _gateway_id(account), "secret": account.secrets.get("api_secret", "")}
    )
    return f"{_api_base(account)}/pubkeys/{urllib.parse.quote(threema_id, safe='*')}?{query}"


def _padded(kind: int, body: bytes) -> bytes:
    """type ‖ body ‖ PKCS#7-style random padding of 1-255 bytes, at least 32 bytes in all."""
    pad = 1 + secrets.randbelow(255)
    if 1 + len(body) + pad < 32:
        pad = 32 - 1 - len(body)
    return bytes([kind]) + body + bytes([pad]) * pad


def _unpadded(plain: bytes) -> tuple[int, bytes]:
    if len(plain) < 2:
        raise ValueError("message too short")
    pad = plain[-1]
    if pad < 1 or pad > len(plain) - 1:
        raise ValueError("bad padding")
    return plain[0], plain[1 : len(plain) - pad]


def encrypt_message(
    private_key: PrivateKey, public_key: PublicKey, kind: int, body: bytes
) -> tuple[bytes, bytes]:
    """(nonce, box) of a padded message: what send_e2e and the fake's callbacks carry."""
    nonce = secrets.token_bytes(24)
    return nonce, Box(private_key, public_key).encrypt(_padded(kind, body), nonce).ciphertext


def _map_status(status: int, headers: Any) -> SendResult:
    """HTTP status → outcome (threema.md §2: the status code is the whole answer)."""
    reasons = {
        400: "recipient invalid, or the gateway ID is not set up for this mode",
        401: "wrong API identity or secret",
        402: "not enough credits",
        404: "no Threema ID for this recipient",
        413: "message too long",
    }
    if status == 429:
        header = str(headers.get("Retry-After", "")) if headers is not None else ""
        return SendResult(
            SendOutcome.RETRY_AFTER,
            retry_after_s=float(header) if header.isdigit() else 10.0,
            error_code="429",
            error_text="rate limit reached",
        )
    if status == 404:
        return SendResult(SendOutcome.UNREACHABLE, error_code="404", error_text=reasons[404])
    if status >= 500:
        return SendResult(SendOutcome.TRANSIENT, error_code=str(status), error_text="gateway error")
    return SendResult(
        SendOutcome.PERMANENT, error_code=str(status), error_text=reasons.get(status, "refused")
    )


@register
class ThreemaChannel(ChannelAdapter):
    kind = "threema"
    label = "Threema"
    capabilities = Capabilities(
        service_window_hours=None,
        templates=False,
        buttons=False,
        max_buttons=0,
        max_text_len=MAX_TEXT_BYTES,
        throughput_per_s=20.0,
        per_contact_interval_s=0.0,
        address_is_phone=False,
        processing_region="Threema GmbH, Switzerland (servers in Switzerland)",
        safeguard="EU adequacy decision for Switzerland (Commission Decision 2000/518/EC, confirmed 2024)",
    )
    setup_fields = (
        SetupField(
            "gateway_id",
            "Gateway ID",
            help="Your end-to-end Threema ID, 8 characters starting with *.",
            pattern=r"\*[A-Z0-9]{7}",
            pattern_hint="8 characters starting with *, e.g. *KONSENT",
        ),
        SetupField("api_secret", "API secret", secret=True, help="From the Threema Gateway admin page."),
        SetupField(
            "private_key",
            "Private key (hex)",
            secret=True,
            help="64 hex characters; its public key was registered with the gateway ID.",
        ),
        SetupField("api_base", "API base URL", required=False, help="Leave empty for msgapi.threema.ch."),
    )

    def __init__(self, timeout_s: float = 15.0) -> None:
        self._sessions = LoopSessions(timeout_s)
        self._keys = _KeyCache()
        self._timeout = timeout_s

    # --- inbound ---------------------------------------------------------------------------------

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Callback MAC in constant time, then `to` must be our gateway ID (CH2, threema.md §3)."""
        secret = account.secrets.get("api_secret", "")
        try:
            fields = _form(request.body)
        except ValueError:
            raise WebhookRejected(401, "threema callback unreadable") from None
        given = fields.get("mac")
        if not secret or given is None or any(k not in fields for k in MAC_FIELDS):
            raise WebhookRejected(401, "threema callback without MAC")
        try:
            expected = callback_mac(secret, fields)
        except UnicodeEncodeError:
            raise WebhookRejected(401, "threema callback not ASCII") from None
        if not hmac.compare_digest(expected.encode(), given.encode("ascii", "replace")):
            raise WebhookRejected(403, "threema MAC mismatch")
        if not hmac.compare_digest(fields["to"].encode(), _gateway_id(account).encode()):
            raise WebhookRejected(403, "threema callback for another gateway ID")

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        """Decrypt the box: text → InboundMessage, delivery receipt → StatusUpdate per id (CH2, CH4)."""
        fields = _form(body)
        sender, message_id = fields["from"], fields["messageId"].lower()
        if not _ID_RE.match(sender):
            raise ValueError("from is not a Threema ID")
        if not _HEX_RE.match(message_id) or len(message_id) > 64:
            raise ValueError("messageId is not hex")
        nonce, box = _hex(fields["nonce"]), _hex(fields["box"])
        if len(nonce) != 24 or not 16 < len(box) <= MAX_BOX_BYTES:
            raise ValueError("bad nonce or box length")
        at = _when(fields["date"])
        private = _private_key(account.secrets.get("private_key", ""))
        try:
            plain = Box(private, self._sender_key(account, sender)).decrypt(box, nonce)
        except CryptoError as exc:
            raise ValueError("box does not decrypt") from exc
        kind, content = _unpadded(plain)
        provider_id = sender + message_id
        if kind == TYPE_TEXT:
            return [
                InboundMessage(
                    provider_id=provider_id,
                    address=sender,
                    at=at,
                    text=content.decode("utf-8")[:MAX_TEXT_BYTES],
                    kind="text",
                    profile_name=fields.get("nickname", "")[:64] or None,
                )
            ]
        if kind == TYPE_RECEIPT:
            if len(content) < 9 or (len(content) - 1) % 8:
                raise ValueError("bad delivery receipt length")
            status = RECEIPT_STATUS.get(content[0])
            if status is None:
                return [UnknownEvent(kind=f"receipt:{content[0]:#04x}", provider_id=provider_id)]
            ids = [content[i : i + 8].hex() for i in range(1, len(content), 8)][:100]
            return [StatusUpdate(provider_id=mid, status=status, at=at, address=sender) for mid in ids]
        return [UnknownEvent(kind=f"threema:{kind:#04x}", provider_id=provider_id)]

    def _sender_key(self, account: AccountConfig, threema_id: str) -> PublicKey:
        configured = account.settings.get("pubkeys")
        if isinstance(configured, dict) and isinstance(configured.get(threema_id), str):
            return _public_key(configured[threema_id])
        cache_key = (_api_base(account), threema_id)
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        try:
            with urllib.request.urlopen(_pubkey_url(account, threema_id), timeout=self._timeout) as resp:  # noqa: S310
                key = _public_key(resp.read(200).decode("ascii", "replace"))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ValueError("sender public key not available") from exc
        self._keys.put(cache_key, key)
        return key

    # --- outbound --------------------------------------------------------------------------------

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        """send_e2e: encrypt a text message for the recipient's public key (CH3)."""
        if content.media_url:  # declares no media: never send the caption alone
            return media.refuse(content, self.capabilities)
        text = content.text.encode("utf-8")
        if not text:
            return SendResult(SendOutcome.PERMANENT, error_code="invalid_content", error_text="no text")
        if len(text) > MAX_TEXT_BYTES:
            return SendResult(
                SendOutcome.PERMANENT, error_code="413", error_text=f"text over {MAX_TEXT_BYTES} bytes"
            )
        if not _ID_RE.match(address):
            return SendResult(
                SendOutcome.PERMANENT, error_code="invalid_address", error_text="not a Threema ID"
            )
        try:
            private = _private_key(account.secrets.get("private_key", ""))
        except ValueError as exc:
            return SendResult(SendOutcome.PERMANENT, error_code="not_configured", error_text=str(exc))
        session = self._sessions.get()
        try:
            recipient = await self._recipient_key(session, account, address)
            if isinstance(recipient, SendResult):
                return recipient
            nonce, box = encrypt_message(private, recipient, TYPE_TEXT, text)
            form = {
                "from": _gateway_id(account),
                "to": address,
                "nonce": nonce.hex(),
                "box": box.hex(),
                "secret": account.secrets.get("api_secret", ""),
            }
            async with session.post(f"{_api_base(account)}/send_e2e", data=form) as resp:
                answer = (await resp.read())[:200].decode("ascii", "replace").strip()
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return SendResult(SendOutcome.TRANSIENT, error_code="network", error_text=type(exc).__name__)
        except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            return SendResult(SendOutcome.UNKNOWN, error_code="no_answer", error_text=type(exc).__name__)
        except aiohttp.ClientError as exc:
            return SendResult(SendOutcome.TRANSIENT, error_code="network", error_text=type(exc).__name__)
        if status == 200 and answer:
            return SendResult(SendOutcome.SENT, provider_id=answer.lower()[:64])
        return _map_status(status, headers)

    async def _recipient_key(
        self, session: aiohttp.ClientSession, account: AccountConfig, threema_id: str
    ) -> PublicKey | SendResult:
        cache_key = (_api_base(account), threema_id)
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        async with session.get(_pubkey_url(account, threema_id)) as resp:
            raw = (await resp.read())[:200]
            if resp.status != 200:
                return _map_status(resp.status, resp.headers)
        try:
            key = _public_key(raw.decode("ascii", "replace"))
        except ValueError:
            return SendResult(
                SendOutcome.TRANSIENT, error_code="bad_answer", error_text="public key unreadable"
            )
        self._keys.put(cache_key, key)
        return key

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        """https://threema.id/<GATEWAY_ID>?text=<prefill> (C2; the text parameter is unconfirmed)."""
        gateway = _gateway_id(account)
        if not _ID_RE.match(gateway):
            raise InvalidInput(detail="the Threema channel has no gateway ID")
        return f"https://threema.id/{urllib.parse.quote(gateway, safe='*')}?" + urllib.parse.urlencode(
            {"text": prefill}, quote_via=urllib.parse.quote
        )

    async def close(self) -> None:
        await self._sessions.close()


def _hex(value: str) -> bytes:
    if not _HEX_RE.match(value.lower()):
        raise ValueError("not hex")
    return bytes.fromhex(value)


def _when(value: str) -> datetime:
    try:
        ts = int(float(value)) if re.fullmatch(r"\d{1,12}(?:\.\d{1,9})?", value) else -1
    except ValueError:
        ts = -1
    if not _MIN_TS <= ts <= _MAX_TS:
        raise ValueError("date out of range")
    return datetime.fromtimestamp(ts, UTC)
