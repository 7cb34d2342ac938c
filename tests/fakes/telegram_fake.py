"""A local fake of the Telegram Bot API on 127.0.0.1, faithful to shared/protocols/telegram.md.

It enforces the bot token, validates sendMessage / setWebhook bodies the way
Telegram answers them, accepts answerCallbackQuery only once for a query one
of its users raised, keeps per-chat (1/s, small bursts) and per-bot (30/s)
flood limits with `retry_after`, knows which users started or blocked the
bot, injects faults at configured rates, and plays users: it POSTs Updates
to the registered webhook with the secret-token header, retrying on non-2xx.

`BackgroundServer` (an aiohttp app on its own loop in a daemon thread, which
stops itself after `max_lifetime_s`) and `FaultPlan` are shared with the
Threema fake.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

T = TypeVar("T")


@dataclass
class FaultPlan:
    """Probabilities (0..1) of each injected fault per request; seeded, so runs repeat."""

    rate_limit: float = 0.0  # 429 with retry_after
    server_error: float = 0.0  # 500/502
    timeout: float = 0.0  # accept the request, then answer only after `hang_s`
    reset: float = 0.0  # close the connection without an answer
    slow: float = 0.0  # answer after `slow_s`
    hang_s: float = 5.0
    slow_s: float = 0.2
    retry_after: int = 1
    seed: int = 7
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        roll = self._rng.random()
        for name in ("rate_limit", "server_error", "timeout", "reset", "slow"):
            p = getattr(self, name)
            if roll < p:
                return name
            roll -= p
        return None


class BackgroundServer:
    """An aiohttp application served on 127.0.0.1:<free port> from its own event loop."""

    def __init__(self, max_lifetime_s: float = 120.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._max_lifetime_s = max_lifetime_s
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=type(self).__name__)
        self._client: aiohttp.ClientSession | None = None
        self._expiry: asyncio.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build_app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> BackgroundServer:
        self._thread.start()
        self.call(self._start())
        self.loop.call_soon_threadsafe(self.loop.call_later, self._max_lifetime_s, self._expire)
        return self

    async def _start(self) -> None:
        app = self.build_app()
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def _expire(self) -> None:
        self._expiry = asyncio.ensure_future(self._shutdown())

    async def _shutdown(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the fake's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._client

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.loop.is_running():
            self.call(self._shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        self.loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def post_with_retries(
        self, url: str, data: bytes, headers: dict[str, str], attempts: int = 3
    ) -> list[int]:
        """POST like a provider does: retried on non-2xx a few times; every status returned."""
        statuses: list[int] = []
        for i in range(attempts):
            try:
                async with self.client().post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)
                    if 200 <= resp.status < 300:
                        break
            except aiohttp.ClientError:
                statuses.append(0)
            await asyncio.sleep(0.05 * (i + 1))
        return statuses


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds until a token is free."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Bot:
    token: str
    id: int
    username: str
    webhook_url: str = ""
    secret_token: str = ""
    allowed_updates: list[str] = field(default_factory=list)


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str
    buttons: list[dict[str, str]]
    media: dict[str, str] | None = None  # {"method", "kind", "url", "caption"} for sendPhoto & co.
    at: float = field(default_factory=time.monotonic)  # when the fake accepted it


# sendPhoto / sendDocument / sendVideo / sendAudio: the file parameter and what Telegram calls it.
MEDIA_METHODS = {"sendphoto": "photo", "senddocument": "document", "sendvideo": "video", "sendaudio": "audio"}
MEDIA_PARAMS = {"chat_id", "caption", "parse_mode", "reply_markup", "disable_notification"}
MAX_CAPTION = 1024


_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{10,100}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _err(status: int, description: str, **params: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if params:
        body["parameters"] = params
    return web.json_response(body, status=status)


class TelegramFake(BackgroundServer):
    """The Bot API at /bot<token>/<method>, plus the users who talk to the bots."""

    def __init__(
        self,
        bots: list[tuple[str, str]] | None = None,
        faults: FaultPlan | None = None,
        chat_rate: float = 1.0,
        chat_burst: float = 3.0,
        bot_rate: float = 30.0,
        max_lifetime_s: float = 120.0,
    ) -> None:
        super().__init__(max_lifetime_s)
        self.bots: dict[str, Bot] = {}
        for i, (token, username) in enumerate(bots or [], start=1):
            self.bots[token] = Bot(token, int(token.split(":")[0]) if ":" in token else i, username)
        self.faults = faults or FaultPlan()
        self.chat_rate, self.chat_burst, self.bot_rate = chat_rate, chat_burst, bot_rate
        self.sent: deque[SentMessage] = deque(maxlen=10_000)
        self.requests: deque[tuple[str, dict[str, Any]]] = deque(maxlen=10_000)
        self.started: set[int] = set()  # chats whose user pressed Start
        self.blocked: set[int] = set()
        self.webhook_target: str | None = None  # where deliveries really go (the registered URL is public)
        self.deliveries: deque[tuple[dict[str, Any], list[int]]] = deque(maxlen=10_000)
        self._chat_buckets: dict[tuple[str, int], _Bucket] = {}
        self._bot_buckets: dict[str, _Bucket] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._update_ids = itertools.count(700_000_001)
        self.open_queries: dict[
            str, tuple[str, int]
        ] = {}  # callback query id → (bot token, chat): unanswered
        self.answered: list[dict[str, Any]] = []  # answerCallbackQuery calls Telegram accepted
        self.webhook_calls: list[dict[str, Any]] = []  # accepted setWebhook calls (secret left out)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1_000_000)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        return app

    # --- the Bot API -------------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            raw = await request.read()
            ctype = request.content_type
            if ctype == "application/json":
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", ""):
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
        return params

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"].lower()
        if not _TOKEN_RE.match(token):
            return _err(404, "Not Found")
        bot = self.bots.get(token)
        if bot is None:
            return _err(401, "Unauthorized")
        try:
            params = await self._params(request)
        except (ValueError, UnicodeDecodeError):
            return _err(400, "Bad Request: can't parse JSON object")
        self.requests.append((method, params))
        fault = self.faults.draw()
        if fault == "rate_limit":
            ra = self.faults.retry_after
            return _err(429, f"Too Many Requests: retry after {ra}", retry_after=ra)
        if fault == "server_error":
            return _err(502, "Bad Gateway")
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_s)
        handler = {
            "sendmessage": self._send_message,
            **{m: self._send_media for m in MEDIA_METHODS},
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._webhook_info,
            "getme": self._get_me,
            "answercallbackquery": self._answer_callback,
        }.get(method)
        if handler is None:
            return _err(404, "Not Found: method not found")
        if method in MEDIA_METHODS:
            params = {**params, "_method": method}
        response = handler(bot, params)
        if fault == "timeout":
            await asyncio.sleep(self.faults.hang_s)  # processed, but the answer comes too late
        return response

    def _get_me(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        result = {"id": bot.id, "is_bot": True, "first_name": bot.username, "username": bot.username}
        return web.json_response({"ok": True, "result": result})

    def _answer_callback(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        """Only a query this bot's user raised, once; unknown parameters are refused like Telegram does."""
        query_id = str(params.get("callback_query_id") or "")
        issued = self.open_queries.pop(query_id, None)
        if issued is None or issued[0] != bot.token:
            return _err(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > 200):
            return _err(400, "Bad Request: MESSAGE_TOO_LONG")
        self.answered.append({"callback_query_id": query_id, "chat_id": issued[1], **params})
        return web.json_response({"ok": True, "result": True})

    def _set_webhook(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        """url required (HTTPS, ports 443/80/88/8443; "" removes it), secret_token 1-256 of A-Za-z0-9_-."""
        if "url" not in params:
            return _err(400, 'Bad Request: parameter "url" is required')
        url = str(params["url"])
        if url:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                return _err(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
            if (parts.port or 443) not in (443, 80, 88, 8443):
                return _err(
                    400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
                )
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.match(str(secret)):
            return _err(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            try:
                allowed = json.loads(allowed)
            except ValueError:
                allowed = None if allowed == "" else allowed
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(x, str) for x in allowed)
        ):
            return _err(400, "Bad Request: can't parse allowed updates")
        bot.webhook_url, bot.secret_token = url, str(secret or "")
        if allowed is not None:
            bot.allowed_updates = list(allowed)
        self.webhook_calls.append({k: v for k, v in params.items() if k != "secret_token"})
        return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})

    def _delete_webhook(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        bot.webhook_url = ""
        return web.json_response({"ok": True, "result": True, "description": "Webhook was deleted"})

    def _webhook_info(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        info = {"url": bot.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}
        if bot.allowed_updates:
            info["allowed_updates"] = bot.allowed_updates
        return web.json_response({"ok": True, "result": info})

    def _target(self, bot: Bot, raw_chat: Any, markup: Any) -> tuple[int, int, Any] | web.Response:
        """The chat, the message id the gate grants, and the buttons; or the API's error answer."""
        try:
            chat_id = int(raw_chat)
        except (TypeError, ValueError):
            return _err(400, "Bad Request: chat not found")
        buttons, problem = _keyboard(markup)
        if problem:
            return _err(400, f"Bad Request: {problem}")
        gate = self._gate(bot, chat_id)
        if isinstance(gate, web.Response):
            return gate
        return chat_id, gate, buttons

    def _send_message(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        raw_chat = params.get("chat_id")
        if raw_chat in (None, ""):
            return _err(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return _err(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _err(400, "Bad Request: message is too long")
        target = self._target(bot, raw_chat, params.get("reply_markup"))
        if isinstance(target, web.Response):
            return target
        chat_id, gate, buttons = target
        self.sent.append(SentMessage(chat_id, gate, text, buttons))
        return self._answer(bot, chat_id, gate, {"text": text})

    def _send_media(self, bot: Bot, params: dict[str, Any]) -> web.Response:
        """sendPhoto & co. with a file by HTTP URL (or file_id) and an optional caption ≤ 1024."""
        method = params.pop("_method")
        kind = MEDIA_METHODS[method]
        unknown = set(params) - MEDIA_PARAMS - {kind}
        if unknown:
            return _err(400, f"Bad Request: unexpected parameter {sorted(unknown)[0][:40]}")
        raw_chat = params.get("chat_id")
        if raw_chat in (None, ""):
            return _err(400, "Bad Request: chat_id is empty")
        ref = params.get(kind)
        if not isinstance(ref, str) or not ref:
            return _err(400, f"Bad Request: there is no {kind} in the request")
        if "://" in ref and not re.match(r"^https?://[^\s/]+/\S*$", ref):
            return _err(400, "Bad Request: wrong HTTP URL specified")
        caption = params.get("caption", "")
        if not isinstance(caption, str):
            return _err(400, "Bad Request: can't parse caption")
        if len(caption) > MAX_CAPTION:
            return _err(400, "Bad Request: message caption is too long")
        target = self._target(bot, raw_chat, params.get("reply_markup"))
        if isinstance(target, web.Response):
            return target
        chat_id, gate, buttons = target
        media = {"method": method, "kind": kind, "url": ref, "caption": caption}
        self.sent.append(SentMessage(chat_id, gate, caption, buttons, media))
        extra: dict[str, Any] = {kind: [{"file_id": "F" + str(gate), "file_unique_id": "U" + str(gate)}]}
        if kind != "photo":
            extra[kind] = extra[kind][0]
        if caption:
            extra["caption"] = caption
        return self._answer(bot, chat_id, gate, extra)

    def _gate(self, bot: Bot, chat_id: int) -> int | web.Response:
        """Blocked, never started, flood control: an error; else the new message id in this chat."""
        if chat_id in self.blocked:
            return _err(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.started:
            return _err(403, "Forbidden: bot can't initiate conversation with a user")
        wait = max(self._bucket(self._bot_buckets, bot.token, self.bot_rate, self.bot_rate).take(), 0)
        chat_bucket = self._bucket(self._chat_buckets, (bot.token, chat_id), self.chat_rate, self.chat_burst)
        wait = wait or chat_bucket.take()
        if wait:
            ra = max(1, int(wait + 0.999))
            return _err(429, f"Too Many Requests: retry after {ra}", retry_after=ra)
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _answer(self, bot: Bot, chat_id: int, message_id: int, extra: dict[str, Any]) -> web.Response:
        result = {
            "message_id": message_id,
            "from": {"id": bot.id, "is_bot": True, "first_name": bot.username, "username": bot.username},
            "chat": {"id": chat_id, "type": "private", "first_name": "User"},
            "date": int(time.time()),
            **extra,
        }
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _bucket(store: dict[Any, _Bucket], key: Any, rate: float, burst: float) -> _Bucket:
        if key not in store:
            store[key] = _Bucket(rate, burst)
        return store[key]

    # --- users ---------------------------------------------------------------------------------

    def texts_to(self, chat_id: int) -> list[str]:
        return [m.text for m in self.sent if m.chat_id == chat_id]

    def _user(self, chat_id: int, first_name: str, language_code: str) -> dict[str, Any]:
        return {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": language_code}

    def message_update(
        self, chat_id: int, text: str, first_name: str = "Test", language_code: str = "de"
    ) -> dict[str, Any]:
        user = self._user(chat_id, first_name, language_code)
        message: dict[str, Any] = {
            "message_id": int(time.time() * 1000) % 1_000_000,
            "from": user,
            "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"offset": 0, "length": len(text.split(" ")[0]), "type": "bot_command"}]
        return {"update_id": next(self._update_ids), "message": message}

    def member_update(self, chat_id: int, status: str) -> dict[str, Any]:
        bot_user = {"id": 1, "is_bot": True, "first_name": "Bot", "username": "bot"}
        old = "member" if status == "kicked" else "kicked"
        return {
            "update_id": next(self._update_ids),
            "my_chat_member": {
                "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
                "from": self._user(chat_id, "Test", "de"),
                "date": int(time.time()),
                "old_chat_member": {"user": bot_user, "status": old},
                "new_chat_member": {"user": bot_user, "status": status, "until_date": 0},
            },
        }

    def callback_update(
        self, chat_id: int, data: str, title: str = "", token: str | None = None
    ) -> dict[str, Any]:
        query_id = str(random.getrandbits(60))
        self.open_queries[query_id] = (token or next(iter(self.bots)), chat_id)
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": self._user(chat_id, "Test", "de"),
                "message": {
                    "message_id": 1,
                    "chat": {"id": chat_id, "type": "private"},
                    "date": int(time.time()),
                    "text": "Pick one",
                    "reply_markup": {"inline_keyboard": [[{"text": title or data, "callback_data": data}]]},
                },
                "chat_instance": "-1234567890",
                "data": data,
            },
        }

    def deliver(self, update: dict[str, Any], token: str | None = None) -> list[int]:
        """POST one Update to the bot's webhook with its secret header; retried on non-2xx."""
        bot = self.bots[token] if token else next(iter(self.bots.values()))
        target = self.webhook_target or bot.webhook_url
        if not target:
            raise RuntimeError("no webhook registered")
        headers = {"Content-Type": "application/json"}
        if bot.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = bot.secret_token
        statuses = self.call(self.post_with_retries(target, json.dumps(update).encode(), headers))
        self.deliveries.append((update, statuses))
        return statuses

    def user_sends(self, chat_id: int, text: str, **kw: Any) -> list[int]:
        """A user writes to the bot (pressing Start counts as having started it)."""
        if text.startswith("/start"):
            self.started.add(chat_id)
            self.blocked.discard(chat_id)
        return self.deliver(self.message_update(chat_id, text, **kw))

    def user_blocks(self, chat_id: int) -> list[int]:
        self.blocked.add(chat_id)
        return self.deliver(self.member_update(chat_id, "kicked"))

    def user_presses(self, chat_id: int, data: str, title: str = "") -> list[int]:
        return self.deliver(self.callback_update(chat_id, data, title))

    def wait_answered(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The answerCallbackQuery calls so far, once at least `count` arrived (or the time is up)."""
        deadline = time.monotonic() + timeout
        while len(self.answered) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.answered)


def _keyboard(markup: Any) -> tuple[list[dict[str, str]], str]:
    """Validate reply_markup.inline_keyboard as Telegram does; return the buttons or the problem."""
    if markup in (None, ""):
        return [], ""
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return [], "can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return [], "can't parse inline keyboard button: InlineKeyboardMarkup must be an object"
    buttons: list[dict[str, str]] = []
    for row in rows:
        if not isinstance(row, list):
            return (
                [],
                'can\'t parse inline keyboard button: field "inline_keyboard" must be an Array of Arrays',
            )
        for b in row:
            if not isinstance(b, dict) or not isinstance(b.get("text"), str) or not b["text"]:
                return (
                    [],
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                )
            if "url" in b:  # a URL button (InlineKeyboardButton.url): exactly one optional field is used
                url = b["url"]
                if (
                    "callback_data" in b
                    or not isinstance(url, str)
                    or not re.match(r"^(https?|tg)://\S+$", url)
                ):
                    return [], "BUTTON_URL_INVALID"
                buttons.append({"text": b["text"], "url": url})
                continue
            data = b.get("callback_data")
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                return [], "BUTTON_DATA_INVALID"
            buttons.append({"text": b["text"], "callback_data": data})
    return buttons, ""
