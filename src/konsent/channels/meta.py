"""What the Meta channels share: signature check, hub.challenge, Graph errors, HTTP (CH2, CH3).

WhatsApp Cloud API, 360dialog, Messenger and Instagram all speak Graph-shaped
JSON. This module holds the pieces that are the same for all of them, so each
adapter module only says what differs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from konsent.channels.base import AccountConfig, SendOutcome, SendResult, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "x-hub-signature-256"
MAX_ID_LEN = 200  # messages.provider_id is String(200)
_ID_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces, no NUL
_KIND_RE = re.compile(r"[^A-Za-z0-9_.:-]")

# Graph error codes by their documented meaning (whatsapp-cloud.md §6, messenger-instagram.md §4).
RATE_LIMIT_CODES = {130429: 1.0, 131056: 6.0, 4: 60.0, 80007: 60.0, 613: 60.0}
WINDOW_CODES = {131047}
WINDOW_SUBCODES = {2018278, 2534022, 2018065, 1545041}
UNREACHABLE_CODES = {131026, 551}
OPT_OUT_CODES = {131050}
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
    data = json.loads(body)
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


def map_graph_error(status: int, body: Any, headers: Mapping[str, str]) -> SendResult:
    """Turn a non-2xx Graph (or 360dialog `meta`) answer into an outcome by documented meaning (CH3)."""
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
        if code in RATE_LIMIT_CODES:
            return SendResult(
                SendOutcome.RETRY_AFTER,
                retry_after_s=retry_after(headers, RATE_LIMIT_CODES[code]),
                error_code=code_s,
                error_text=text,
            )
        if status == 429:
            return SendResult(
                SendOutcome.RETRY_AFTER,
                retry_after_s=retry_after(headers, 1.0),
                error_code=code_s,
                error_text=text,
            )
        if code in WINDOW_CODES or (sub in WINDOW_SUBCODES and code in (10, 200, 551, None)):
            return SendResult(SendOutcome.WINDOW_CLOSED, error_code=code_s, error_text=text)
        if code in UNREACHABLE_CODES:
            return SendResult(SendOutcome.UNREACHABLE, error_code=code_s, error_text=text)
        if code in OPT_OUT_CODES:
            return SendResult(SendOutcome.MARKETING_OPT_OUT, error_code=code_s, error_text=text)
        if code in TRANSIENT_CODES or status >= 500 or err.get("is_transient") is True:
            return SendResult(SendOutcome.TRANSIENT, error_code=code_s, error_text=text)
        return SendResult(SendOutcome.PERMANENT, error_code=code_s, error_text=text)
    meta = body.get("meta") if isinstance(body, dict) else None
    if isinstance(meta, dict):  # 360dialog gateway envelope, camelCase or snake_case
        text = str(meta.get("developerMessage") or meta.get("developer_message") or "")[:200]
        code_s = f"d360_{_int(meta.get('httpCode', meta.get('http_code'))) or status}"
        if status == 429 or "exceeded the limit" in text:
            return SendResult(
                SendOutcome.RETRY_AFTER,
                retry_after_s=retry_after(headers, 1.0),
                error_code=code_s,
                error_text=text,
            )
        if status >= 500:
            return SendResult(SendOutcome.TRANSIENT, error_code=code_s, error_text=text)
        return SendResult(SendOutcome.PERMANENT, error_code=code_s, error_text=text)
    if status == 429:
        return SendResult(
            SendOutcome.RETRY_AFTER, retry_after_s=retry_after(headers, 1.0), error_code="http_429"
        )
    if status >= 500:
        return SendResult(SendOutcome.TRANSIENT, error_code=f"http_{status}")
    return SendResult(SendOutcome.PERMANENT, error_code=f"http_{status}")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class GraphClient:
    """One aiohttp session per event loop, created lazily, closed by `close()` (CH3).

    The worker runs in one loop for its lifetime; tests call `asyncio.run` repeatedly,
    so a session made on a loop that has gone away is dropped and a new one made.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession()
            self._loop = loop
        return self._session

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
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        try:
            async with self.session().post(
                url, json=payload, headers=dict(headers or {}), params=dict(params or {}), timeout=timeout
            ) as resp:
                raw = await resp.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                if resp.status >= 300:
                    return map_graph_error(resp.status, body, resp.headers), None
                return None, body
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing went out: safe to retry.
            return SendResult(
                SendOutcome.TRANSIENT, error_code="connect", error_text=type(exc).__name__
            ), None
        except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # The request may have reached the provider: the outcome is unknown.
            return SendResult(
                SendOutcome.UNKNOWN, error_code="no_answer", error_text=type(exc).__name__
            ), None
        except aiohttp.ClientError as exc:
            return _failed(SendOutcome.TRANSIENT, "http", exc), None

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float, max_bytes: int
    ) -> tuple[int, bytes, str] | None:
        """GET a resource: (status, body, content type), or None when it failed or was too large."""
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        try:
            async with self.session().get(url, headers=dict(headers), timeout=timeout) as resp:
                if (resp.content_length or 0) > max_bytes:
                    return None
                raw = await resp.content.read(max_bytes + 1)
                if len(raw) > max_bytes:
                    return None
                return resp.status, raw, resp.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        try:
            if self._loop is asyncio.get_running_loop():
                await session.close()
        except RuntimeError:  # its loop is gone; nothing left to release
            pass


def _failed(outcome: SendOutcome, code: str, exc: BaseException) -> SendResult:
    return SendResult(outcome, error_code=code, error_text=type(exc).__name__)


def timeout_of(account: AccountConfig, default: float = 15.0) -> float:
    try:
        return max(0.05, float(account.settings.get("timeout_s", default)))
    except (TypeError, ValueError):
        return default
