"""What the Meta channels share: signature check, hub.challenge, Graph errors, HTTP (CH2, CH3).

WhatsApp Cloud API, 360dialog, Messenger and Instagram all speak Graph-shaped
JSON. This module holds the pieces that are the same for all of them, so each
adapter module only says what differs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from konsent.channels.base import AccountConfig, SendOutcome, SendResult, WebhookRejected, WebhookRequest
from konsent.channels.outcomes import Answer, Row, Table, classify, codes
from konsent.channels.transport import Provider, Transport
from konsent.domain.inputs import loads_json

SIGNATURE_HEADER = "x-hub-signature-256"
MAX_ID_LEN = 200  # messages.provider_id is String(200)
_ID_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces, no NUL
_KIND_RE = re.compile(r"[^A-Za-z0-9_.:-]")

# WhatsApp's Graph error codes by their documented meaning (whatsapp-cloud.md §6).
RATE_LIMIT_CODES = {130429: 1.0, 131056: 6.0, 4: 60.0, 80007: 60.0, 613: 60.0}
WINDOW_CODES = {131047}
UNREACHABLE_CODES = {131026}
OPT_OUT_CODES = {131050}
# 131049: Meta held a marketing message back to protect the user's experience (per-user marketing
# limit). Retrying does not help and the contact did nothing wrong: failed, never retried, the
# contact stays reachable and subscribed.
NOT_RETRIED_CODES = {131049}
TRANSIENT_CODES = {1, 2, 1200, 131000, 131016, 131057, 135000}


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends: lowercase hex HMAC-SHA256 of the raw bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, request: WebhookRequest) -> None:
    """Reject unless the raw body carries a valid signature; reject too when no secret is set (CH2)."""
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not given:
        raise WebhookRejected(401, "missing signature")
    if not secret or not given.startswith("sha256="):
        raise WebhookRejected(403, "signature mismatch")
    if not hmac.compare_digest(sign(secret, request.body).encode(), given.strip().encode()):
        raise WebhookRejected(403, "signature mismatch")


def require_json(request: WebhookRequest) -> None:
    """Meta posts application/json; anything else is not a delivery of theirs."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise WebhookRejected(415, "unsupported content type")


def hub_challenge(account: AccountConfig, request: WebhookRequest) -> str | None:
    """Answer GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=… with the challenge."""
    expected = account.secrets.get("verify_token", "")
    q = request.query
    given = q.get("hub.verify_token", q.get("hub_verify_token", ""))
    challenge = q.get("hub.challenge", q.get("hub_challenge", ""))
    mode = q.get("hub.mode", q.get("hub_mode", ""))
    if not expected or mode != "subscribe" or not challenge or len(challenge) > 200:
        return None
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    return challenge


def load_json(body: bytes) -> dict[str, Any]:
    """The delivery as a dict; malformed JSON or another shape raises ValueError (→ 400)."""
    data = loads_json(body)
    if not isinstance(data, dict):
        raise ValueError("a delivery must be a JSON object")
    return data


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def ident(value: Any, what: str) -> str:
    """A provider id (wamid, mid, PSID, phone number id): short printable ASCII or ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{what} must be a string")
    text = str(value)
    if not _ID_RE.match(text):
        raise ValueError(f"{what} is not a valid id")
    return text


def opt_ident(value: Any, what: str) -> str | None:
    return None if value is None or value == "" else ident(value, what)


def text_of(value: Any, limit: int = 4096) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("text must be a string")
    return value.replace("\x00", "")[:limit]


def kind_label(*parts: object) -> str:
    """A short, safe label for an event we do not handle (stored in webhook_events.kind)."""
    return _KIND_RE.sub("_", ":".join(str(p) for p in parts))[:60] or "unknown"


def digest(account: AccountConfig, *parts: object) -> str:
    """A stable idempotency key for events without a provider id, with no personal data in it.

    Keyed with the account's secrets, so a stored key cannot be brute-forced back to a number.
    """
    key = "\x1f".join(account.secrets[k] for k in sorted(account.secrets)).encode() or b"konsent"
    msg = "\x1f".join(str(p) for p in parts).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:40]


def timestamp(value: Any, millis: bool = False) -> datetime:
    """A provider timestamp as aware UTC, never in the future (a forged clock must not hold a window)."""
    now = datetime.now(UTC)
    try:
        seconds = float(str(value))
        if millis:
            seconds /= 1000
        at = datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    if at > now + timedelta(minutes=5) or at.year < 2000:
        return now
    return at


# --- sending -------------------------------------------------------------------------------


def retry_after(headers: Mapping[str, str], default: float) -> float:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return max(0.1, min(value, 3600.0))


# WhatsApp's Graph answers, first matching row decides (whatsapp-cloud.md §6); Messenger and
# Instagram have their own table (messenger.MESSENGER_ERRORS). docs/channels/whatsapp.md lists
# every code of it (tests/channels/test_error_tables_documented.py).
_RETRY = SendOutcome.RETRY_AFTER
GRAPH_ERRORS: Table = (
    *(Row(_RETRY, codes=codes(c), retry_s=s) for c, s in RATE_LIMIT_CODES.items()),
    Row(_RETRY, statuses=frozenset({429}), retry_s=1.0),
    Row(SendOutcome.WINDOW_CLOSED, codes=codes(*WINDOW_CODES)),
    Row(SendOutcome.UNREACHABLE, codes=codes(*UNREACHABLE_CODES)),
    Row(SendOutcome.MARKETING_OPT_OUT, codes=codes(*OPT_OUT_CODES)),
    Row(SendOutcome.PERMANENT, codes=codes(*NOT_RETRIED_CODES)),  # before the transient rows
    Row(SendOutcome.TRANSIENT, codes=codes(*TRANSIENT_CODES)),
    Row(SendOutcome.TRANSIENT, min_status=500),
    Row(SendOutcome.TRANSIENT, flag="is_transient"),
    Row(SendOutcome.PERMANENT),
)
# 360dialog's gateway envelope (`meta`), and answers with no envelope at all.
HTTP_ERRORS: Table = (
    Row(_RETRY, statuses=frozenset({429}), retry_s=1.0),
    Row(_RETRY, flag="limit_exceeded", retry_s=1.0),
    Row(SendOutcome.TRANSIENT, min_status=500),
    Row(SendOutcome.PERMANENT),
)


def map_graph_error(
    status: int, body: Any, headers: Mapping[str, str], table: Table | None = None
) -> SendResult:
    """Turn a non-2xx Graph (or 360dialog `meta`) answer into an outcome by documented meaning (CH3);
    `table` is the channel's own (GRAPH_ERRORS, WhatsApp's, when none is given)."""

    def wait(default: float) -> float:
        return retry_after(headers, default)

    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = _int(err.get("code"))
        sub = _int(err.get("error_subcode"))
        details = err.get("error_data") if isinstance(err.get("error_data"), dict) else {}
        text = str(err.get("message") or "")[:200]
        if details and details.get("details"):
            text = f"{text} ({str(details['details'])[:150]})"
        code_s = str(code) if code is not None else f"http_{status}"
        if sub is not None:
            code_s = f"{code_s}/{sub}"
        flags = frozenset({"is_transient"}) if err.get("is_transient") is True else frozenset()
        return classify(table or GRAPH_ERRORS, Answer(status, code, sub, flags, code_s, text), wait)
    meta = body.get("meta") if isinstance(body, dict) else None
    if isinstance(meta, dict):  # 360dialog gateway envelope, camelCase or snake_case
        text = str(meta.get("developerMessage") or meta.get("developer_message") or "")[:200]
        code_s = f"d360_{_int(meta.get('httpCode', meta.get('http_code'))) or status}"
        flags = frozenset({"limit_exceeded"}) if "exceeded the limit" in text else frozenset()
        return classify(HTTP_ERRORS, Answer(status, flags=flags, error_code=code_s, text=text), wait)
    return classify(HTTP_ERRORS, Answer(status, error_code=f"http_{status}"), wait)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


GRAPH_HOSTS = frozenset({"graph.facebook.com"})


def graph_provider(
    kind: str, default_base: str = "https://graph.facebook.com/v21.0", hosts: frozenset[str] = GRAPH_HOSTS
) -> Provider:
    return Provider(kind, default_base, hosts, connect_code="connect", other_code="http")


class GraphClient:
    """The shared transport, bound to one Meta-shaped provider (CH3)."""

    def __init__(self, transport: Transport, provider: Provider, errors: Table | None = None) -> None:
        self.transport = transport
        self.provider = provider
        self.errors = errors  # the channel's table of Graph error codes (None: WhatsApp's)

    def base(self, account: AccountConfig) -> str:
        return self.transport.base_url(self.provider, account)

    async def post_json(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
    ) -> tuple[SendResult | None, Any]:
        """POST JSON; return (failure, None) or (None, parsed 2xx body)."""
        reply = await self.transport.send(
            self.provider, "POST", url, json_body=payload, headers=headers, params=params, timeout_s=timeout_s
        )
        if isinstance(reply, SendResult):
            return reply, None
        body = reply.json()
        if reply.status >= 300:
            return map_graph_error(reply.status, body, reply.headers, self.errors), None
        return None, body

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float, max_bytes: int
    ) -> tuple[int, bytes, str] | None:
        """GET a resource: (status, body, content type), or None when it failed or was too large."""
        try:
            reply = await self.transport.call(
                self.provider, "GET", url, headers=headers, timeout_s=timeout_s, max_bytes=max_bytes
            )
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        return reply.status, reply.body, reply.headers.get("Content-Type", "")


def timeout_of(account: AccountConfig, default: float = 15.0) -> float:
    try:
        return max(0.05, float(account.settings.get("timeout_s", default)))
    except (TypeError, ValueError):
        return default
