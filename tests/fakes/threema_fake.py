"""A local fake of the Threema Gateway (E2E or Basic mode) on 127.0.0.1, after shared/protocols/threema.md.

Behaves like the official SDK's test server: `from`/`secret` checked (401),
credits (402), unknown recipient on send → 400 and on /pubkeys → 404, box
over 4000 bytes or text over 3500 bytes → 413, optional rate limit → 429.
A gateway ID is set up for one mode: the other mode's send answers 400.
Basic mode (`/send_simple`): exactly one of to/phone/email, phone numbers and
e-mail addresses looked up in the fake's directory (none → 404).
It holds the users' key pairs, so it decrypts what konsent sends (the
users' inboxes) and sends encrypted, MAC-signed callbacks and delivery
receipts to konsent's callback URL. Its crypto and framing are its own
(`threema_wire`, written from threema.md and checked against published
vectors), so a mistake in konsent's encoder shows instead of being mirrored.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes import threema_wire as wire
from tests.fakes.telegram_fake import BackgroundServer, FaultPlan

TYPE_TEXT = 0x01  # threema.md §3, message type codes
TYPE_RECEIPT = 0x80


@dataclass
class Received:
    """What a user's phone shows: a message konsent sent, decrypted."""

    message_id: str
    text: str


class ThreemaFake(BackgroundServer):
    def __init__(
        self,
        gateway_id: str,
        secret: str,
        gateway_public_key: str,
        credits: int = 1000,
        faults: FaultPlan | None = None,
        rate_per_s: float | None = None,
        max_lifetime_s: float = 120.0,
        mode: str = "e2e",
    ) -> None:
        super().__init__(max_lifetime_s)
        self.gateway_id, self.secret = gateway_id, secret
        self.mode = mode  # "e2e" or "basic": each gateway ID is set up for one of them
        self.phones: dict[str, str] = {}  # E.164 without "+" → Threema ID (Basic-mode lookups)
        self.emails: dict[str, str] = {}
        self.gateway_public = bytes.fromhex(gateway_public_key)
        self.credits = credits
        self.faults = faults or FaultPlan()
        self.rate_per_s = rate_per_s
        self.users: dict[str, bytes] = {}  # Threema ID → private key
        self.inbox: dict[str, list[Received]] = defaultdict(list)
        self.requests: deque[tuple[str, dict[str, str]]] = deque(maxlen=10_000)
        self.callback_url = ""
        self.callbacks: deque[tuple[dict[str, str], list[int]]] = deque(maxlen=10_000)
        self._window: deque[float] = deque(maxlen=10_000)
        self._counter = itertools.count(1)

    def add_user(self, threema_id: str) -> str:
        """A Threema user with a fresh key pair; returns the public key (hex)."""
        public, self.users[threema_id] = wire.keypair()
        return public.hex()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1_000_000)
        app.router.add_post("/send_e2e", self._send_e2e)
        app.router.add_post("/send_simple", self._send_simple)
        app.router.add_get("/pubkeys/{id}", self._pubkeys)
        app.router.add_get("/credits", self._credits)
        return app

    # --- the Gateway API ---------------------------------------------------------------------------

    def _authorised(self, params: Any) -> bool:
        return params.get("from") == self.gateway_id and params.get("secret") == self.secret

    async def _fault(self, request: web.Request) -> web.Response | None:
        fault = self.faults.draw()
        if fault == "rate_limit":
            return web.Response(status=429)
        if fault == "server_error":
            return web.Response(status=500)
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault in ("slow", "timeout"):
            import asyncio

            await asyncio.sleep(self.faults.slow_s if fault == "slow" else self.faults.hang_s)
        if self.rate_per_s is not None:
            now = time.monotonic()
            while self._window and now - self._window[0] > 1:
                self._window.popleft()
            if len(self._window) >= self.rate_per_s:
                return web.Response(status=429)
            self._window.append(now)
        return None

    async def _pubkeys(self, request: web.Request) -> web.Response:
        if not self._authorised(request.query):
            return web.Response(status=401)
        threema_id = request.match_info["id"]
        if threema_id == self.gateway_id:
            return web.Response(text=self.gateway_public.hex())
        if threema_id not in self.users:
            return web.Response(status=404)
        return web.Response(text=wire.public_of(self.users[threema_id]).hex())

    async def _credits(self, request: web.Request) -> web.Response:
        if not self._authorised(request.query):
            return web.Response(status=401)
        return web.Response(text=str(self.credits))

    async def _send_e2e(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        params = {k: str(v) for k, v in form.items()}
        self.requests.append(("send_e2e", {k: v for k, v in params.items() if k != "secret"}))
        if not self._authorised(params):
            return web.Response(status=401)
        fault = await self._fault(request)
        if fault is not None:
            return fault
        to = params.get("to", "")
        try:
            nonce, box = bytes.fromhex(params.get("nonce", "")), bytes.fromhex(params.get("box", ""))
        except ValueError:
            return web.Response(status=400)
        if self.credits <= 0:
            return web.Response(status=402)
        if self.mode != "e2e" or to not in self.users or len(nonce) != 24:
            return web.Response(status=400)
        if len(box) > 4000:
            return web.Response(status=413)
        self.credits -= 1
        message_id = secrets.token_hex(8)
        try:
            kind, body = wire.decrypt(nonce, box, self.gateway_public, self.users[to])
            text = body.decode() if kind == TYPE_TEXT else f"<type {kind:#04x}>"
        except wire.WireError as exc:  # the user's phone shows nothing readable: the test sees why
            text = f"<undecryptable: {exc}>"
        except UnicodeDecodeError:
            text = "<undecryptable: text is not UTF-8>"
        self.inbox[to].append(Received(message_id, text))
        return web.Response(text=message_id)

    async def _send_simple(self, request: web.Request) -> web.Response:
        """Basic mode: from, exactly one of to/phone/email, text, secret (threema.md §2)."""
        params = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(("send_simple", {k: v for k, v in params.items() if k != "secret"}))
        if not self._authorised(params):
            return web.Response(status=401)
        fault = await self._fault(request)
        if fault is not None:
            return fault
        given = [k for k in ("to", "phone", "email") if k in params]
        if self.mode != "basic" or len(given) != 1 or "text" not in params:
            return web.Response(status=400)  # not a Basic-mode ID, or not one recipient and a text
        if self.credits <= 0:
            return web.Response(status=402)
        if given[0] == "to":
            to: str | None = params["to"]
            if to not in self.users:
                return web.Response(status=400)  # invalid recipient identity
        else:
            directory = self.phones if given[0] == "phone" else self.emails
            to = directory.get(params[given[0]])
            if to is None:
                return web.Response(status=404)  # the phone number / e-mail resolves to no Threema ID
        if len(params["text"].encode()) > 3500:
            return web.Response(status=413)
        self.credits -= 1
        message_id = secrets.token_hex(8)
        self.inbox[str(to)].append(Received(message_id, params["text"]))
        return web.Response(text=message_id)

    # --- users calling konsent ------------------------------------------------------------------

    def callback_form(self, sender: str, kind: int, body: bytes, message_id: str | None = None) -> bytes:
        nonce, box = wire.encrypt(kind, body, self.gateway_public, self.users[sender])
        fields = wire.callback(
            self.secret,
            sender,
            self.gateway_id,
            message_id or secrets.token_hex(8),
            int(time.time()),
            nonce,
            box,
        )
        fields["nickname"] = sender.title()
        return urlencode(fields).encode()

    def post_callback(self, form: bytes) -> list[int]:
        if not self.callback_url:
            raise RuntimeError("no callback URL configured")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        statuses = self.call(self.post_with_retries(self.callback_url, form, headers))
        self.callbacks.append(({"len": str(len(form))}, statuses))
        return statuses

    def user_sends(self, sender: str, text: str, message_id: str | None = None) -> list[int]:
        return self.post_callback(self.callback_form(sender, TYPE_TEXT, text.encode(), message_id))

    def user_receipt(self, sender: str, message_ids: list[str], status: int) -> list[int]:
        """The user's phone confirms messages: 0x01 received, 0x02 read."""
        return self.post_callback(self.callback_form(sender, TYPE_RECEIPT, wire.receipt(status, message_ids)))

    def texts_to(self, threema_id: str) -> list[str]:
        return [r.text for r in self.inbox[threema_id]]
