"""Telegram Bot API: secret-token webhooks, /start deep links, sendMessage with inline buttons (CH1-CH4).

Wire facts: shared/protocols/telegram.md. Telegram has no customer-service
window and no delivery statuses; a contact must have started the bot, and
blocking it arrives as `my_chat_member` with status `kicked`.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp

from konsent.channels import interactive as out_interactive
from konsent.channels import media as out_media
from konsent.channels import register, telegram_kinds
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    SetupField,
    SetupOutcome,
    WebhookRejected,
    WebhookRequest,
)
from konsent.channels.outcomes import Answer, Row, Table, classify, codes
from konsent.channels.transport import Provider, Transport, default_transport, unreached
from konsent.channels.urlguard import BlockedUrl
from konsent.domain.errors import InvalidInput
from konsent.domain.events import Event, InboundMessage, ReachabilityChange, UnknownEvent
from konsent.domain.inputs import loads_json

SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
DEFAULT_API_BASE = "https://api.telegram.org"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64  # bytes
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_PAYLOAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# `/start`, optionally `@bot_username`, optionally one space and a deep-link payload (telegram.md §2.2).
_START_RE = re.compile(r"^/start(?:@[A-Za-z0-9_]{1,64})?(?: ([A-Za-z0-9_-]{1,64}))?$")
_RETRY_IN_TEXT = re.compile(r"retry after (\d{1,6})", re.I)
_MEDIA_KINDS = ("photo", "document", "voice", "audio", "video", "video_note", "sticker", "animation")
# Unix seconds between 2000 and 2100: anything else is not a Telegram date.
_MIN_TS, _MAX_TS = 946_684_800, 4_102_444_800


class TelegramApiError(Exception):
    """A Bot API call answered `ok: false` (used by `set_webhook`)."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(f"{status}: {description}")
        self.status = status
        self.description = description


# --- parsing helpers: every shape error is a ValueError (→ 400), never a 500 -----------------------


def _obj(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise ValueError(f"{key} must be an integer")
    return value


def _opt_str(data: dict[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value[:limit]


def _when(data: dict[str, Any], key: str = "date") -> datetime:
    if key not in data:
        return datetime.now(UTC)
    ts = _int(data, key)
    if not _MIN_TS <= ts <= _MAX_TS:
        raise ValueError(f"{key} out of range")
    return datetime.fromtimestamp(ts, UTC)


def _profile_name(user: dict[str, Any]) -> str | None:
    parts = [_opt_str(user, "first_name", 64), _opt_str(user, "last_name", 64)]
    name = " ".join(p for p in parts if p)
    return name or None


def parse_start(text: str) -> tuple[bool, str | None]:
    """(is a /start command, its deep-link payload or None) (C2)."""
    m = _START_RE.match(text.strip())
    if m is None:
        return False, None
    return True, m.group(1)


# --- sending helpers --------------------------------------------------------------------------------


def _method_url(transport: Transport, account: AccountConfig, method: str) -> str:
    token = account.secrets.get("bot_token", "")
    if not token:
        raise InvalidInput(detail="the Telegram channel has no bot token")
    return f"{transport.base_url(PROVIDER, account)}/bot{token}/{method}"


async def _post(
    transport: Transport, url: str, payload: dict[str, Any], timeout_s: float
) -> tuple[int, dict[str, Any], Any]:
    reply = await transport.call(PROVIDER, "POST", url, json_body=payload, timeout_s=timeout_s)
    body = reply.json()
    return reply.status, body if isinstance(body, dict) else {}, reply.headers


def _retry_after(body: dict[str, Any], headers: Any) -> float:
    params = body.get("parameters")
    if isinstance(params, dict):
        value = params.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 86_400:
            return float(value)
    m = _RETRY_IN_TEXT.search(str(body.get("description", "")))
    if m:
        return float(m.group(1))
    header = headers.get("Retry-After", "") if headers is not None else ""
    return float(header) if str(header).isdigit() else 1.0


# Bot API answers, first matching row decides (telegram.md §4). `status` is the answer's
# `error_code` where it has one, `code` the HTTP status.
_HTTP_5XX = frozenset(range(500, 600))
TELEGRAM_ERRORS: Table = (
    Row(SendOutcome.RETRY_AFTER, statuses=frozenset({429}), error_code="429", retry_s=1.0),
    Row(SendOutcome.RETRY_AFTER, codes=codes(429), error_code="429", retry_s=1.0),
    # Blocked by the user, user deactivated, or the user never started the bot: do not retry.
    Row(SendOutcome.UNREACHABLE, statuses=frozenset({403}), error_code="403"),
    # Only groups migrate; konsent talks to private chats, so retrying as is may still fail.
    Row(
        SendOutcome.TRANSIENT,
        statuses=frozenset({400}),
        flag="migrate_to_chat_id",
        error_code="migrate_to_chat_id",
        error_text="chat migrated",
    ),
    Row(SendOutcome.TRANSIENT, min_status=500),
    Row(SendOutcome.TRANSIENT, codes=codes(*_HTTP_5XX)),
    Row(SendOutcome.PERMANENT),
)
PROVIDER = Provider("telegram", DEFAULT_API_BASE, frozenset({"api.telegram.org"}))


def map_error(http_status: int, body: dict[str, Any], headers: Any = None) -> SendResult:
    """Map a failed Bot API answer by its documented meaning (CH3, telegram.md §4)."""
    code = body.get("error_code")
    status = code if isinstance(code, int) and not isinstance(code, bool) else http_status
    raw_params = body.get("parameters")
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    answer = Answer(
        status,
        code=http_status,
        flags=frozenset(k for k in ("migrate_to_chat_id",) if k in params),
        error_code=str(status),
        text=str(body.get("description", ""))[:200],
    )
    return classify(TELEGRAM_ERRORS, answer, lambda _default: _retry_after(body, headers))


@register
class TelegramChannel(ChannelAdapter):
    kind = "telegram"
    label = "Telegram"
    registers_webhook = True
    capabilities = Capabilities(
        service_window_hours=None,
        templates=False,
        buttons=True,
        max_buttons=8,
        max_list_rows=10,  # a list goes out as one inline-keyboard row per choice, without descriptions
        max_list_title=64,
        link_buttons=True,  # an inline-keyboard URL button
        max_link_text=MAX_TEXT,
        max_text_len=MAX_TEXT,
        throughput_per_s=30.0,
        per_contact_interval_s=1.0,
        address_is_phone=False,
        media_kinds=frozenset(out_media.TELEGRAM_METHODS),
        max_caption_len=1024,  # "0-1024 characters after entities parsing"
        captioned_kinds=frozenset(out_media.TELEGRAM_METHODS),
        processing_region=(
            "Telegram (Telegram Messenger Inc. / Telegram FZ-LLC, Dubai; group companies in the British "
            "Virgin Islands); data of EEA/UK users stored in data centres in the Netherlands"
        ),
        safeguard=(
            "No adequacy decision for the UAE or the BVI and no data processing agreement or SCCs with "
            "bot operators are known; the contact chose Telegram and started the bot themselves"
        ),
    )
    setup_fields = (
        SetupField(
            "bot_username",
            "Bot username",
            help="The @name BotFather gave your bot, without the @.",
            pattern=r"[A-Za-z][A-Za-z0-9_]{3,30}bot",
            pattern_hint=(
                "5 to 32 letters, digits or _, starting with a letter and ending in bot, e.g. kaffee_bot"
            ),
        ),
        SetupField("bot_token", "Bot token", secret=True, help="From BotFather: /newbot or /token."),
        SetupField(
            "secret_token",
            "Webhook secret token",
            secret=True,
            help="1-256 characters A-Z, a-z, 0-9, _ and -; registered with setWebhook.",
        ),
    )

    def __init__(self, timeout_s: float = 15.0, transport: Transport | None = None) -> None:
        self._timeout = timeout_s
        self._transport = transport or default_transport()

    # --- inbound ---------------------------------------------------------------------------------

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Constant-time check of X-Telegram-Bot-Api-Secret-Token (CH2, telegram.md §1)."""
        expected = account.secrets.get("secret_token", "")
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            raise WebhookRejected(401, "telegram secret token missing")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected(403, "telegram secret token mismatch")

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        """One Update → one event; unknown update kinds are acknowledged and ignored (CH2)."""
        data = loads_json(body)
        if not isinstance(data, dict):
            raise ValueError("an update must be a JSON object")
        update_id = str(_int(data, "update_id"))
        if "message" in data:
            return [self._message(update_id, _obj(data, "message"))]
        if "edited_message" in data:
            return [self._message(update_id, _obj(data, "edited_message"), edited=True)]
        if "callback_query" in data:
            return [self._callback(update_id, _obj(data, "callback_query"))]
        if "my_chat_member" in data:
            return [self._member(update_id, _obj(data, "my_chat_member"))]
        kinds = sorted(k for k in data if k != "update_id")
        return [UnknownEvent(kind=(kinds[0] if kinds else "empty")[:64], provider_id=update_id)]

    def _message(self, update_id: str, msg: dict[str, Any], edited: bool = False) -> Event:
        chat = _obj(msg, "chat")
        chat_id = _int(chat, "id")
        raw_user = msg.get("from")
        user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        if chat.get("type") != "private":
            # A contact is one person who started the bot; group chats are not contacts.
            return UnknownEvent(kind="message:group", provider_id=update_id)
        at = _when(msg)
        text = _opt_str(msg, "text", MAX_TEXT)
        common: dict[str, Any] = {
            "provider_id": update_id,
            "address": str(chat_id),
            "at": at,
            "profile_name": _profile_name(user),
            "locale": _opt_str(user, "language_code", 16),
        }
        if edited:  # the customer changed a message: kept beside the original, shown as an edit (CH5)
            new_text = text if text is not None else _opt_str(msg, "caption", MAX_TEXT) or ""
            ref = msg.get("message_id")
            return InboundMessage(
                text=new_text, kind="edit", ref_id=str(ref) if isinstance(ref, int) else None, **common
            )
        if text is not None:
            is_start, payload = parse_start(text)
            if is_start:
                return InboundMessage(text=text, kind="start", optin_code=payload, **common)
            return InboundMessage(text=text, kind="text", **common)
        for media in _MEDIA_KINDS:
            if media in msg:
                item = msg[media][-1] if isinstance(msg[media], list) and msg[media] else msg[media]
                file_id = item.get("file_id") if isinstance(item, dict) else None
                if not isinstance(file_id, str):
                    raise ValueError("media without file_id")
                return InboundMessage(
                    text=_opt_str(msg, "caption", MAX_TEXT) or "",
                    kind="media",
                    media_ref=f"{media}:{file_id[:150]}",
                    **common,
                )
        parsed = telegram_kinds.parse_other(msg)
        return InboundMessage(
            text=parsed.text, kind=parsed.kind, details=parsed.details, ref_id=parsed.ref_id, **common
        )

    def _callback(self, update_id: str, cq: dict[str, Any]) -> Event:
        user = _obj(cq, "from")
        address = _int(user, "id")
        message = cq.get("message")
        title = ""
        data = _opt_str(cq, "data", 256)
        if isinstance(message, dict):
            chat = _obj(message, "chat")
            if chat.get("type", "private") != "private":
                return UnknownEvent(kind="callback_query:group", provider_id=update_id)
            address = _int(chat, "id")
            title = _button_title(message, data)
        if data is None:
            return UnknownEvent(kind="callback_query:game", provider_id=update_id)
        return InboundMessage(
            provider_id=update_id,
            address=str(address),
            at=datetime.now(UTC),  # a CallbackQuery carries no date
            text=title,
            kind="button",
            payload=data,
            profile_name=_profile_name(user),
            locale=_opt_str(user, "language_code", 16),
            ack_ref=_opt_str(cq, "id", 64) or None,  # answered once stored: the client stops its spinner
        )

    def _member(self, update_id: str, upd: dict[str, Any]) -> Event:
        chat = _obj(upd, "chat")
        chat_id = _int(chat, "id")
        status = _obj(upd, "new_chat_member").get("status")
        if chat.get("type") != "private" or status not in ("kicked", "member"):
            return UnknownEvent(kind="my_chat_member", provider_id=update_id)
        return ReachabilityChange(
            address=str(chat_id),
            reachable=status == "member",
            at=_when(upd),
            provider_id=update_id,
            blocked=status == "kicked",
        )

    # --- outbound --------------------------------------------------------------------------------

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        """sendMessage with inline buttons, or sendPhoto/Document/Video/Audio by URL (CH3).

        The provider id is `chat_id:message_id`.
        """
        refused = out_media.refusal(content, self.capabilities) if content.media_url else None
        if refused:
            return refused
        problem = "" if content.media_url else _content_problem(content)
        if problem:
            return SendResult(SendOutcome.PERMANENT, error_code="invalid_content", error_text=problem)
        if not re.fullmatch(r"-?\d{1,20}", address):
            return SendResult(SendOutcome.PERMANENT, error_code="invalid_address", error_text="not a chat id")
        method, payload = "sendMessage", {"chat_id": int(address), "text": content.text}
        if content.media_url:
            method, payload = out_media.telegram(int(address), content)
        markup = out_interactive.telegram_markup(content)
        if markup:
            payload["reply_markup"] = markup
        try:
            url = _method_url(self._transport, account, method)
        except InvalidInput as exc:
            return SendResult(SendOutcome.PERMANENT, error_code="not_configured", error_text=str(exc))
        try:
            status, body, headers = await _post(self._transport, url, payload, self._timeout)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return unreached(PROVIDER, exc)
        if status == 200 and body.get("ok") is True and isinstance(body.get("result"), dict):
            result = body["result"]
            chat = result.get("chat") if isinstance(result.get("chat"), dict) else {}
            return SendResult(
                SendOutcome.SENT, provider_id=f"{chat.get('id', address)}:{result.get('message_id')}"
            )
        if status == 200:
            return SendResult(SendOutcome.UNKNOWN, error_code="bad_answer", error_text="ok without result")
        return map_error(status, body, headers)

    async def acknowledge(self, account: AccountConfig, event: InboundMessage) -> None:
        """answerCallbackQuery for a stored button press (telegram.md §2.3); raises TelegramApiError."""
        if not event.ack_ref:
            return
        url = _method_url(self._transport, account, "answerCallbackQuery")
        status, body, _ = await _post(
            self._transport, url, {"callback_query_id": event.ack_ref}, self._timeout
        )
        if status != 200 or body.get("ok") is not True:
            raise TelegramApiError(status, str(body.get("description", ""))[:200])

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        """https://t.me/<bot>?start=<code>; the code is the start payload (C2, telegram.md §6)."""
        if not _PAYLOAD_RE.match(code):
            raise ValueError("a Telegram start payload is 1-64 characters of A-Z a-z 0-9 _ -")
        bot = str(account.settings.get("bot_username") or account.secrets.get("bot_username") or "")
        bot = bot.removeprefix("@")
        if not re.fullmatch(r"[A-Za-z0-9_]{3,64}", bot):
            raise InvalidInput(detail="the Telegram channel has no bot username")
        return f"https://t.me/{bot}?start={code}"

    # --- setup -----------------------------------------------------------------------------------

    async def register_webhook(self, account: AccountConfig, url: str) -> SetupOutcome:
        """setWebhook with the account's secret token; Telegram's description when it refuses (CH2)."""
        try:
            await set_webhook(account, url, self._transport)
        except InvalidInput as exc:
            return SetupOutcome(False, "invalid_settings", str(exc))
        except TelegramApiError as exc:
            return SetupOutcome(False, "refused", exc.description or str(exc.status))
        except BlockedUrl:
            return SetupOutcome(False, "invalid_settings", "address not allowed")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SetupOutcome(False, "unreachable", type(exc).__name__)
        return SetupOutcome(True)


def _button_title(message: dict[str, Any], data: str | None) -> str:
    """The title of the pressed button, found in the bot message's keyboard (for keyword matching)."""
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or data is None:
        return ""
    for row in rows:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                title = button.get("text")
                return title[:256] if isinstance(title, str) else ""
    return ""


def _content_problem(content: OutboundContent) -> str:
    if not content.text:
        return "Telegram has no templates: a text is needed"
    if len(content.text) > MAX_TEXT:
        return f"text longer than {MAX_TEXT} characters"
    if len(content.buttons) > TelegramChannel.capabilities.max_buttons:
        return "too many buttons"
    for ident, title in [(b.id, b.title) for b in content.buttons] + [(r.id, r.title) for r in content.rows]:
        if not title or not ident or len(ident.encode()) > MAX_CALLBACK_DATA:
            return "a button needs a title and an id of 1-64 bytes"
    return ""


async def set_webhook(account: AccountConfig, url: str, transport: Transport | None = None) -> None:
    """Call setWebhook with secret_token and allowed_updates incl. my_chat_member (telegram.md §1)."""
    secret = account.secrets.get("secret_token", "")
    if not _SECRET_RE.match(secret):
        raise InvalidInput(detail="the secret token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    payload = {"url": url, "secret_token": secret, "allowed_updates": list(ALLOWED_UPDATES)}
    transport = transport or default_transport()
    status, body, _ = await _post(transport, _method_url(transport, account, "setWebhook"), payload, 15.0)
    if status != 200 or body.get("ok") is not True:
        raise TelegramApiError(status, str(body.get("description", ""))[:200])
