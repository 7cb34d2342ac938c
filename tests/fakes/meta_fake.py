"""A local stand-in for Meta's Graph API (WhatsApp Cloud API, Messenger, Instagram) and 360dialog.

It runs an aiohttp server on 127.0.0.1 (random port) in a background thread with its
own event loop, so synchronous tests and the worker can both talk to it. It behaves
as ../shared/protocols/{whatsapp-cloud,dialog360,messenger-instagram}.md describe:

* auth: `Authorization: Bearer` per phone number id, `D360-API-KEY` for 360dialog,
  `access_token` query parameter per Page; failures answer the documented envelopes;
* request bodies validated against the documented shapes (unknown or missing fields
  → Graph error code 100, bad values → 131009, unknown template → 132001);
* answers with documented ids (`wamid.…`, `{recipient_id, message_id}`);
* limits when enabled: 80 msg/s per phone id (130429), 1 msg / 6 s per pair with a
  45-message burst (131056); outside the 24-hour window a non-template send is
  accepted and then fails asynchronously with 131047 (Messenger: 10/2018278 at once);
* status webhooks sent → delivered → read (optionally shuffled and duplicated),
  signed exactly as Meta signs them (X-Hub-Signature-256 over the ASCII-escaped body)
  or, for 360dialog, carrying the registered custom headers;
* fault injection at configured rates: 429 with Retry-After, 5xx, timeouts, slow
  answers, connection resets.

Webhooks go to a callback URL when one is set (real HTTP), else into `outgoing`
for the test to hand to konsent. The server stops itself after `max_lifetime_s`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")
BSUID_RE = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{1,140}$")
TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
WA_TOP_KEYS = {
    "messaging_product",
    "recipient_type",
    "to",
    "recipient",
    "type",
    "text",
    "interactive",
    "template",
    "image",
    "document",
    "video",
    "audio",
    "context",
    "biz_opaque_callback_data",
}
# Media message objects: which keys each kind takes (audio has no caption; only documents a filename).
WA_MEDIA_KEYS = {
    "image": {"id", "link", "caption"},
    "video": {"id", "link", "caption"},
    "document": {"id", "link", "caption", "filename"},
    "audio": {"id", "link"},
}
MS_ATTACHMENT_TYPES = {"image", "audio", "video", "file"}
TEMPLATE_PARAM_TYPES = {"text", "currency", "date_time", "image", "document", "video", "payload"}
MS_TOP_KEYS = {"recipient", "messaging_type", "message", "tag", "notification_type"}


@dataclass
class Faults:
    """Fault rates (0..1) applied to each send request, decided by a seeded random generator."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0  # accepted, but the answer comes after `hang_s`
    rate_slow: float = 0.0  # answered after `slow_s`
    rate_reset: float = 0.0  # the connection is dropped without an answer
    retry_after_s: int = 1
    hang_s: float = 2.0
    slow_s: float = 0.2
    seed: int = 1


@dataclass
class Phone:
    phone_id: str
    token: str
    app_secret: str
    display: str = "4930123456"
    d360_key: str | None = None
    callback_url: str | None = None
    d360_headers: dict[str, str] = field(default_factory=dict)
    marketing_messages: bool = False  # onboarded to the Marketing Messages API (/marketing_messages)


@dataclass
class Page:
    page_id: str
    token: str
    app_secret: str
    obj: str = "page"  # or "instagram"
    callback_url: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A webhook the fake sent (or would send): which account, the headers, the exact bytes."""

    target: str  # phone number id or page id
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


WA_DISPLAY_DEFAULT = "15550783881"  # the business number in `context.from` of a reply


def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(
    code: int,
    message: str,
    status: int = 400,
    details: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    err: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(8),
    }
    if details:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    err.update(extra)
    return web.json_response({"error": err}, status=status, headers=headers)


class MetaFake:
    """The fake provider; `with MetaFake() as fake:` starts and stops it."""

    def __init__(self, *, faults: Faults | None = None, max_lifetime_s: float = 60.0) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.phones: dict[str, Phone] = {}
        self.pages: dict[str, Page] = {}
        self.templates: set[tuple[str, str]] | None = None  # None: any template name exists
        self.enforce_rate_limits = False
        self.enforce_window = False
        self.mps = 80
        self.status_flow: tuple[str, ...] = ("sent", "delivered", "read")
        self.echo_messages = (
            False  # the Page is subscribed to `message_echoes` (Instagram: echoes in messages)
        )
        self.delivery_mids = True  # Messenger deliveries name the mids (older clients send only a watermark)
        self.shuffle_statuses = False
        self.duplicate_rate = 0.0
        self.status_delay_s = 0.0  # webhooks to a callback URL go out this long after the cause
        self.hold_webhooks = False  # keep callback webhooks until `release_webhooks()`
        self._held: list[tuple[str, Delivery]] = []
        self.media: dict[str, tuple[bytes, str]] = {}  # media id → (bytes, mime type)
        self.wabas: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # WABA id → (token, templates)
        self.accepted: list[dict[str, Any]] = []  # every valid send body, in order (with its endpoint)
        # Template name → Meta's pricing category, for the `pricing` block of status webhooks
        # (per-message pricing since July 2025, whatsapp-cloud.md §4.5); unknown templates: utility
        self.template_categories: dict[str, str] = {}
        self.pricing = True  # statuses carry `pricing` on sent and delivered/read, as Meta's do
        self.outgoing: list[Delivery] = []
        self.max_lifetime_s = max_lifetime_s
        self._lock = threading.Lock()
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._sent_times: dict[str, deque[float]] = defaultdict(deque)
        self._pair_bucket: dict[tuple[str, str], tuple[float, float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.url = ""

    # --- configuration -----------------------------------------------------------------

    def add_phone(self, phone_id: str, token: str, app_secret: str, **kw: Any) -> Phone:
        self.phones[phone_id] = p = Phone(phone_id, token, app_secret, **kw)
        return p

    def add_waba(self, waba_id: str, token: str, templates: list[dict[str, Any]]) -> None:
        """A WhatsApp Business Account whose `message_templates` edge lists `templates`."""
        self.wabas[waba_id] = (token, templates)

    def add_page(self, page_id: str, token: str, app_secret: str, **kw: Any) -> Page:
        self.pages[page_id] = p = Page(page_id, token, app_secret, **kw)
        return p

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> MetaFake:
        self._thread = threading.Thread(target=self._run, name="meta-fake", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("meta fake did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> MetaFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/d360/messages", self._d360_send)
        app.router.add_route("*", "/d360/v1/configs/webhook", self._d360_webhook_config)
        app.router.add_post(r"/{version:v\d+\.\d+}/{node}/messages", self._graph_send)
        app.router.add_post(r"/{version:v\d+\.\d+}/{node}/marketing_messages", self._marketing_send)
        app.router.add_get(r"/{version:v\d+\.\d+}/{node}/message_templates", self._message_templates)
        app.router.add_get(r"/{version:v\d+\.\d+}/{media_id:\d+}", self._media_info)
        app.router.add_get(r"/d360/{media_id:\d+}", self._media_info)
        app.router.add_get("/media-download/{media_id}", self._media_download)
        app.router.add_get("/d360/whatsapp_business/attachments/", self._media_download)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._session = ClientSession(timeout=ClientTimeout(total=5))
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.max_lifetime_s)
        await self._session.close()
        await runner.cleanup()

    # --- what the test reads -------------------------------------------------------------

    def take_outgoing(self) -> list[Delivery]:
        with self._lock:
            out, self.outgoing = self.outgoing, []
        return out

    def wait_outgoing(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until at least `count` webhooks are queued, then take them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.outgoing) >= count:
                    break
            time.sleep(0.01)
        return self.take_outgoing()

    # --- the user side: inbound webhooks -----------------------------------------------

    def user_text(
        self,
        phone_id: str,
        wa_id: str | None,
        text: str,
        *,
        name: str = "Test User",
        bsuid: str | None = None,
    ) -> Delivery:
        """The user writes to the business number (opens the 24-hour window)."""
        wamid = "wamid." + secrets.token_urlsafe(24)
        contact: dict[str, Any] = {"profile": {"name": name}}
        message: dict[str, Any] = {
            "id": wamid,
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        if wa_id:
            contact["wa_id"] = wa_id
            message["from"] = wa_id
        if bsuid:
            contact["user_id"] = bsuid
            message["from_user_id"] = bsuid
        with self._lock:
            for who in (wa_id, bsuid):
                if who:
                    self._last_inbound[(phone_id, who)] = time.time()
        return self._wa_webhook(phone_id, {"contacts": [contact], "messages": [message]})

    def user_media(
        self, phone_id: str, wa_id: str, media_id: str, data: bytes, mime: str, caption: str = ""
    ) -> Delivery:
        """The user sends a picture: the webhook carries only the media id; the bytes wait here."""
        self.media[media_id] = (data, mime)
        image: dict[str, Any] = {"id": media_id, "mime_type": mime, "sha256": "x"}
        if caption:
            image["caption"] = caption
        message = {"from": wa_id, "id": "wamid." + secrets.token_urlsafe(24),
                   "timestamp": str(int(time.time())), "type": "image", "image": image}  # fmt: skip
        contact = {"profile": {"name": "Test User"}, "wa_id": wa_id}
        return self._wa_webhook(phone_id, {"contacts": [contact], "messages": [message]})

    def user_taps(self, phone_id: str, wa_id: str, sent_id: str, choice_id: str) -> Delivery:
        """The user taps a reply button or a list row of a message we accepted (whatsapp-cloud.md §4.2):
        `interactive.button_reply` / `list_reply` with the id and title WhatsApp shows, and `context.id`."""
        [sent] = [a["body"] for a in self.accepted if a["id"] == sent_id]
        inter = sent["interactive"]
        if inter["type"] == "button":
            [reply] = [b["reply"] for b in inter["action"]["buttons"] if b["reply"]["id"] == choice_id]
            kind, picked = "button_reply", {"id": reply["id"], "title": reply["title"]}
        else:
            rows = [r for sec in inter["action"]["sections"] for r in sec["rows"] if r["id"] == choice_id]
            kind, picked = "list_reply", dict(rows[0])
        message = {
            "context": {"from": WA_DISPLAY_DEFAULT, "id": sent_id},
            "from": wa_id,
            "id": "wamid." + secrets.token_urlsafe(24),
            "timestamp": str(int(time.time())),
            "type": "interactive",
            "interactive": {"type": kind, kind: picked},
        }
        self.window_opened(phone_id, wa_id)
        contact = {"profile": {"name": "Test User"}, "wa_id": wa_id}
        return self._wa_webhook(phone_id, {"contacts": [contact], "messages": [message]})

    def user_quick_reply(self, page_id: str, psid: str, title: str, payload: str) -> Delivery:
        """The user taps a quick reply (messenger-instagram.md §2): the text is its title."""
        self.window_opened(page_id, psid)
        msg = {"mid": "m_" + secrets.token_urlsafe(20), "text": title, "quick_reply": {"payload": payload}}
        return self._page_webhook(page_id, psid, {"message": msg})

    def user_preference(self, phone_id: str, wa_id: str, value: str) -> Delivery:
        pref = {
            "wa_id": wa_id,
            "detail": f"User requested to {value} marketing messages",
            "category": "marketing_messages",
            "value": value,
            "timestamp": int(time.time()),
        }
        return self._wa_webhook(
            phone_id,
            {"contacts": [{"wa_id": wa_id}], "user_preferences": [pref]},
            field_name="user_preferences",
        )

    def template_changed(self, phone_id: str, field_name: str, value: dict[str, Any]) -> Delivery:
        """A WABA-level template webhook (no phone-number metadata), signed for `phone_id`'s app:
        `template_category_update`, `message_template_quality_update` or
        `message_template_status_update` with Meta's value object."""
        phone = self.phones[phone_id]
        change = {"field": field_name, "value": value}
        entry = {"id": "102290129340398", "time": int(time.time()), "changes": [change]}
        body = json.dumps(
            {"object": "whatsapp_business_account", "entry": [entry]}, separators=(",", ":")
        ).encode()
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": meta_signature(phone.app_secret, body),
        }
        return self._emit(Delivery(phone_id, headers, body), phone.callback_url)

    def template_recategorised(
        self, phone_id: str, name: str, language: str, previous: str, new: str
    ) -> Delivery:
        """Meta re-categorised an approved template (`template_category_update`)."""
        value = {
            "message_template_id": 1003, "message_template_name": name, "message_template_language": language,
            "previous_category": previous, "new_category": new,
        }  # fmt: skip
        return self.template_changed(phone_id, "template_category_update", value)

    def template_quality(self, phone_id: str, name: str, language: str, previous: str, new: str) -> Delivery:
        """Meta rated a template's quality anew (`message_template_quality_update`)."""
        value = {
            "previous_quality_score": previous, "new_quality_score": new, "message_template_id": 1003,
            "message_template_name": name, "message_template_language": language,
        }  # fmt: skip
        return self.template_changed(phone_id, "message_template_quality_update", value)

    def window_opened(self, phone_id: str, who: str, at: float | None = None) -> None:
        with self._lock:
            self._last_inbound[(phone_id, who)] = time.time() if at is None else at

    def user_message(self, page_id: str, psid: str, text: str) -> Delivery:
        self.window_opened(page_id, psid)
        item = {"message": {"mid": "m_" + secrets.token_urlsafe(20), "text": text}}
        return self._page_webhook(page_id, psid, item)

    def user_referral(self, page_id: str, psid: str, ref: str, *, new_thread: bool = False) -> Delivery:
        """The user opens an m.me / ig.me link with `?ref=` (new thread: via Get Started)."""
        self.window_opened(page_id, psid)
        referral = {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}
        item: dict[str, Any] = (
            {"postback": {"title": "Get Started", "payload": "GET_STARTED", "referral": referral}}
            if new_thread
            else {"referral": referral}
        )
        return self._page_webhook(page_id, psid, item)

    def page_delivered(
        self, page_id: str, psid: str, watermark_ms: int, mids: list[str] | None = None
    ) -> Delivery:
        """message_deliveries: everything up to the watermark arrived; `mids` may be absent."""
        delivery: dict[str, Any] = {"watermark": watermark_ms}
        if mids is not None:
            delivery = {"mids": mids, **delivery}
        return self._page_webhook(page_id, psid, {"delivery": delivery}, stamp=False)

    def page_echo(self, page_id: str, psid: str, mid: str, message: dict[str, Any], stamp: int) -> Delivery:
        """The `message_echoes` event of a message the Page sent: sender is the Page, metadata echoed."""
        page = self.pages[page_id]
        echo: dict[str, Any] = {"is_echo": True, "app_id": 1517776481860111, "mid": mid}
        if "metadata" in message:
            echo["metadata"] = message["metadata"]
        echo.update({k: v for k, v in message.items() if k in ("text", "attachment", "quick_replies")})
        payload = {
            "object": page.obj,
            "entry": [
                {
                    "id": page_id,
                    "time": stamp,
                    "messaging": [
                        {
                            "sender": {"id": page_id},
                            "recipient": {"id": psid},
                            "timestamp": stamp,
                            "message": echo,
                        }
                    ],
                }
            ],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": meta_signature(page.app_secret, body),
        }
        return self._emit(Delivery(page_id, headers, body), page.callback_url)

    def page_read(self, page_id: str, psid: str, watermark_ms: int) -> Delivery:
        """message_reads (Messenger): every message sent at or before the watermark was read."""
        return self._page_webhook(page_id, psid, {"read": {"watermark": watermark_ms}})

    # --- building and sending webhooks ---------------------------------------------------

    def _wa_webhook(self, phone_id: str, value: dict[str, Any], field_name: str = "messages") -> Delivery:
        phone = self.phones[phone_id]
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": phone.display,
                                    "phone_number_id": phone_id,
                                },
                                **value,
                            },
                            "field": field_name,
                        }
                    ],
                }
            ],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()  # ASCII-escaped, like Meta
        headers = {"content-type": "application/json"}
        if phone.d360_key:
            headers.update({k.lower(): v for k, v in phone.d360_headers.items()})
        else:
            headers["x-hub-signature-256"] = meta_signature(phone.app_secret, body)
        return self._emit(Delivery(phone_id, headers, body), phone.callback_url)

    def _page_webhook(self, page_id: str, psid: str, item: dict[str, Any], stamp: bool = True) -> Delivery:
        page = self.pages[page_id]
        now_ms = int(time.time() * 1000)
        event: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": page_id}}
        if stamp:  # Meta's delivery example carries no timestamp
            event["timestamp"] = now_ms
        payload = {
            "object": page.obj,
            "entry": [{"id": page_id, "time": now_ms, "messaging": [{**event, **item}]}],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": meta_signature(page.app_secret, body),
        }
        return self._emit(Delivery(page_id, headers, body), page.callback_url)

    def release_webhooks(self) -> int:
        """Post every held callback webhook now, concurrently; return how many."""
        with self._lock:
            held, self._held = self._held, []
        for url, delivery in held:
            assert self._loop is not None
            asyncio.run_coroutine_threadsafe(self._post(url, delivery), self._loop)
        return len(held)

    def _emit(self, delivery: Delivery, callback_url: str | None) -> Delivery:
        if callback_url and self.hold_webhooks:
            with self._lock:
                self._held.append((callback_url, delivery))
        elif callback_url and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._post(callback_url, delivery), self._loop)
        else:
            with self._lock:
                self.outgoing.append(delivery)
        return delivery

    async def _post(self, url: str, delivery: Delivery) -> None:
        if self.status_delay_s:
            await asyncio.sleep(self.status_delay_s)
        try:
            async with self._session.post(url, data=delivery.body, headers=delivery.headers) as resp:
                await resp.read()
        except Exception:  # a konsent that is down: Meta would retry later; the fake just drops it
            pass

    def pricing_of(self, body: dict[str, Any], endpoint: str = "messages") -> dict[str, Any]:
        """The `pricing` block Meta reports for a send: templates by their category (marketing
        through /marketing_messages), free-form messages free inside the service window."""
        if body.get("type") != "template":
            return {
                "billable": False,
                "pricing_model": "PMP",
                "type": "free_customer_service",
                "category": "service",
            }
        name = str(body.get("template", {}).get("name", ""))
        default = "marketing" if endpoint == "marketing_messages" else "utility"
        category = self.template_categories.get(name, default)
        return {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}

    def status_webhook(
        self, phone_id: str, wamid: str, status: str, recipient: str, pricing: dict[str, Any] | None = None
    ) -> Delivery:
        """One real-shaped status webhook (whatsapp-cloud.md §4.5), e.g. with a pricing block."""
        st: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time()))}
        st["recipient_id"] = recipient.lstrip("+")
        if pricing is not None:
            st["pricing"] = pricing
        return self._wa_webhook(phone_id, {"statuses": [st]})

    def _statuses(
        self,
        phone_id: str,
        wamid: str,
        to: dict[str, str],
        failed: dict[str, Any] | None,
        opaque: str | None = None,
        pricing: dict[str, Any] | None = None,
    ) -> None:
        flow: list[str] = ["failed"] if failed else list(self.status_flow)
        if self.shuffle_statuses:
            self.rng.shuffle(flow)
        for status in flow:
            st: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time()))}
            if pricing is not None and self.pricing and status != "failed":
                st["pricing"] = pricing  # Meta: with `sent` and with one of delivered/read
            if "to" in to:
                st["recipient_id"] = to["to"].lstrip("+")
            else:
                st["recipient_user_id"] = to["recipient"]
            if failed:
                st["errors"] = [failed]
            if opaque is not None:  # echoed in every status webhook when it was set on send
                st["biz_opaque_callback_data"] = opaque
            times = 2 if self.rng.random() < self.duplicate_rate else 1
            for _ in range(times):
                self._wa_webhook(phone_id, {"statuses": [st]})

    # --- request handling ----------------------------------------------------------------

    async def _faults(self, request: web.Request) -> web.StreamResponse | None:
        f = self.faults
        r = self.rng.random()
        if r < f.rate_429:
            return graph_error(
                4,
                "(#4) Application request limit reached",
                status=429,
                headers={"Retry-After": str(f.retry_after_s)},
            )
        r -= f.rate_429
        if r < f.rate_5xx:
            return graph_error(1, "An unknown error occurred", status=500)
        r -= f.rate_5xx
        if r < f.rate_reset:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        r -= f.rate_reset
        if r < f.rate_timeout:
            await asyncio.sleep(f.hang_s)
        elif r - f.rate_timeout < f.rate_slow:
            await asyncio.sleep(f.slow_s)
        return None

    async def _graph_send(self, request: web.Request) -> web.StreamResponse:
        node = request.match_info["node"]
        if node in self.phones:
            phone = self.phones[node]
            if phone.d360_key:
                return graph_error(100, "Unsupported post request.", status=400)
            auth = request.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {phone.token}".encode()):
                return graph_error(190, "Invalid OAuth access token - Cannot parse access token", status=401)
            return await self._wa_send(request, phone)
        if node in self.pages:
            page = self.pages[node]
            token = request.query.get("access_token", "")
            if not hmac.compare_digest(token.encode(), page.token.encode()):
                return graph_error(190, "Invalid OAuth access token.", status=400, error_subcode=1234567)
            return await self._page_send(request, page)
        return graph_error(
            100,
            f"Unsupported post request. Object with ID '{node[:40]}' does not exist",
            status=400,
            error_subcode=33,
        )

    async def _marketing_send(self, request: web.Request) -> web.StreamResponse:
        """`POST /<PHONE_NUMBER_ID>/marketing_messages`: the Marketing Messages API, templates only,
        for numbers onboarded to it."""
        node = request.match_info["node"]
        phone = self.phones.get(node)
        if phone is None or phone.d360_key:
            return graph_error(100, "Unsupported post request.", status=400, error_subcode=33)
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {phone.token}".encode()):
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token", status=401)
        if not phone.marketing_messages:
            return graph_error(
                131063, "(#131063) Marketing Messages API is not enabled for this WhatsApp Business Account"
            )
        return await self._wa_send(request, phone, endpoint="marketing_messages")

    async def _message_templates(self, request: web.Request) -> web.StreamResponse:
        """`GET /<WABA_ID>/message_templates`: Bearer token of that WABA, `fields`, cursor paging."""
        node = request.match_info["node"]
        if node not in self.wabas:
            return graph_error(
                100,
                f"Unsupported get request. Object with ID '{node[:40]}' does not exist",
                status=400,
                error_subcode=33,
            )
        token, templates = self.wabas[node]
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token", status=401)
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        try:
            limit = max(1, min(int(request.query.get("limit", "25")), 100))
            start = int(base64.b64decode(request.query.get("after", "") or "MA==").decode())
        except ValueError:
            return graph_error(100, "Invalid parameter", status=400)
        chunk = templates[start : start + limit]
        data = [{k: v for k, v in t.items() if not fields or k in fields or k == "id"} for t in chunk]
        cursor = base64.b64encode(str(start + len(chunk)).encode()).decode()
        paging: dict[str, Any] = {"cursors": {"before": "MA==", "after": cursor}}
        if start + len(chunk) < len(templates):
            query = {**request.query, "after": cursor}
            paging["next"] = str(request.url.with_query(query))
        return web.json_response({"data": data, "paging": paging})

    async def _d360_send(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("D360-API-KEY", "")
        phone = next((p for p in self.phones.values() if p.d360_key and p.d360_key == key), None)
        if phone is None:
            return web.json_response(
                {
                    "meta": {
                        "httpCode": 401,
                        "developerMessage": "Invalid api_key or token expired",
                        "success": False,
                    }
                },
                status=401,
            )
        return await self._wa_send(request, phone)

    async def _d360_webhook_config(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("D360-API-KEY", "")
        phone = next((p for p in self.phones.values() if p.d360_key and p.d360_key == key), None)
        if phone is None:
            return web.json_response(
                {
                    "meta": {
                        "httpCode": 401,
                        "developerMessage": "Invalid api_key or token expired",
                        "success": False,
                    }
                },
                status=401,
            )
        if request.method == "POST":
            data = await request.json()
            if not isinstance(data, dict) or not isinstance(data.get("url"), str):
                return web.json_response(
                    {
                        "meta": {
                            "success": False,
                            "http_code": 400,
                            "developer_message": "url is required",
                            "details": [],
                        }
                    },
                    status=400,
                )
            phone.callback_url = data["url"]
            phone.d360_headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        return web.json_response({"url": phone.callback_url, "headers": phone.d360_headers})

    def _media_phone(self, request: web.Request) -> Phone | None:
        """Who asks for media: a Bearer token (Cloud API) or a D360-API-KEY (360dialog)."""
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("D360-API-KEY", "")
        for p in self.phones.values():
            if (p.d360_key and key == p.d360_key) or (not p.d360_key and auth == f"Bearer {p.token}"):
                return p
        return None

    async def _media_info(self, request: web.Request) -> web.StreamResponse:
        if self._media_phone(request) is None:
            return graph_error(190, "Invalid OAuth access token.", status=401)
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return graph_error(100, "Unsupported get request.", status=400, error_subcode=33)
        raw, mime = self.media[media_id]
        if request.path.startswith("/d360/"):
            url = f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}&ext=1"
        else:
            url = f"{self.url}/media-download/{media_id}?ext=1"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": url,
                "mime_type": mime,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "file_size": len(raw),
                "id": media_id,
            }
        )

    async def _media_download(self, request: web.Request) -> web.StreamResponse:
        if self._media_phone(request) is None:
            return web.Response(status=404)
        media_id = request.match_info.get("media_id") or request.query.get("mid", "")
        if media_id not in self.media:
            return web.Response(status=404)
        raw, mime = self.media[media_id]
        return web.Response(body=raw, content_type=mime)

    async def _read_json(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            return None
        try:
            return await request.json()
        except ValueError:
            return None

    async def _wa_send(
        self, request: web.Request, phone: Phone, endpoint: str = "messages"
    ) -> web.StreamResponse:
        faulty = await self._faults(request)
        if faulty is not None:
            return faulty
        body = await self._read_json(request)
        problem = validate_whatsapp(body, self.templates)
        if problem is None and endpoint == "marketing_messages" and body.get("type") != "template":
            problem = (
                131009,
                "(#131009) Parameter value is not valid: marketing_messages sends templates only",
            )
        if problem is not None:
            return graph_error(*problem)
        to = {"to": body["to"]} if "to" in body else {"recipient": body["recipient"]}
        who = (body.get("to") or body.get("recipient")).lstrip("+")
        now = time.time()
        if self.enforce_rate_limits:
            with self._lock:
                window = self._sent_times[phone.phone_id]
                while window and now - window[0] > 1.0:
                    window.popleft()
                if len(window) >= self.mps:
                    return graph_error(
                        130429,
                        "(#130429) Rate limit hit",
                        details="Message failed to send "
                        "because there were too many messages sent from this phone number "
                        "in a short period of time",
                    )
                tokens, last = self._pair_bucket.get((phone.phone_id, who), (45.0, now))
                tokens = min(45.0, tokens + (now - last) / 6.0)
                if tokens < 1.0:
                    return graph_error(
                        131056,
                        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                        details="Message failed to send because there were too "
                        "many messages sent from this phone number to the same phone number "
                        "in a short period of time.",
                    )
                self._pair_bucket[(phone.phone_id, who)] = (tokens - 1.0, now)
                window.append(now)
        wamid = "wamid." + secrets.token_urlsafe(32)
        with self._lock:
            self.accepted.append(
                {
                    "phone_id": phone.phone_id, "id": wamid, "body": body, "at": time.monotonic(),
                    "endpoint": endpoint,
                }
            )  # fmt: skip
            last_in = self._last_inbound.get((phone.phone_id, who))
        failed = None
        if self.enforce_window and body["type"] != "template" and (last_in is None or now - last_in > 86400):
            failed = {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {
                    "details": "Message failed to send because more than 24 hours have "
                    "passed since the customer last replied to this number."
                },
            }
        self._statuses(
            phone.phone_id,
            wamid,
            to,
            failed,
            body.get("biz_opaque_callback_data"),
            self.pricing_of(body, endpoint),
        )
        answer: dict[str, Any] = {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}
        if "to" in body:
            answer["contacts"] = [{"input": body["to"], "wa_id": who}]
        if body["type"] == "template":
            answer["messages"][0]["message_status"] = "accepted"
        return web.json_response(answer)

    async def _page_send(self, request: web.Request, page: Page) -> web.StreamResponse:
        faulty = await self._faults(request)
        if faulty is not None:
            return faulty
        body = await self._read_json(request)
        problem = validate_messenger(body)
        if problem is not None:
            return graph_error(*problem)
        psid = body["recipient"]["id"]
        with self._lock:
            last_in = self._last_inbound.get((page.page_id, psid))
        if (
            self.enforce_window
            and body["messaging_type"] != "MESSAGE_TAG"
            and (last_in is None or time.time() - last_in > 86400)
        ):
            return graph_error(
                10, "(#10) This message is sent outside of allowed window.", error_subcode=2018278
            )
        mid = "m_" + secrets.token_urlsafe(40)
        stamp = int(time.time() * 1000)  # Meta's timestamp of the message: before our answer leaves
        with self._lock:
            self.accepted.append(
                {"page_id": page.page_id, "id": mid, "body": body, "stamp": stamp, "at": time.monotonic()}
            )
        if self.echo_messages:
            self.page_echo(page.page_id, psid, mid, body["message"], stamp)
        if "delivered" in self.status_flow:
            self.page_delivered(page.page_id, psid, stamp, [mid] if self.delivery_mids else None)
        if "read" in self.status_flow:
            self.page_read(page.page_id, psid, stamp)
        return web.json_response({"recipient_id": psid, "message_id": mid})


def validate_whatsapp(body: Any, templates: set[tuple[str, str]] | None) -> tuple[int, str] | None:
    """(code, message) of the documented error for a bad send body, or None when it is valid."""
    if not isinstance(body, dict):
        return 100, "(#100) The request body must be a JSON object"
    unknown = set(body) - WA_TOP_KEYS
    if unknown:
        return 100, f'(#100) Unexpected key "{sorted(unknown)[0][:40]}" on param ""'
    if body.get("messaging_product") != "whatsapp":
        return 100, "(#100) The parameter messaging_product is required."
    if body.get("recipient_type", "individual") != "individual":
        return 131009, "(#131009) Parameter value is not valid"
    to, recipient = body.get("to"), body.get("recipient")
    if to is None and recipient is None:
        return 100, "(#100) The parameter to is required."
    if to is not None and not (isinstance(to, str) and PHONE_RE.match(to)):
        return 131009, "(#131009) Parameter value is not valid"
    if to is None and not (isinstance(recipient, str) and BSUID_RE.match(recipient)):
        return 131009, "(#131009) Parameter value is not valid"
    mtype = body.get("type", "text")
    others = set(body) & (set(WA_MEDIA_KEYS) | {"text", "interactive", "template"}) - {mtype}
    if mtype in WA_MEDIA_KEYS:
        if others:
            return 100, "(#100) Invalid parameter"  # a content object of another type
        return _validate_wa_media(mtype, body.get(mtype))
    if mtype == "text" and set(body) & set(WA_MEDIA_KEYS):
        return 100, "(#100) Invalid parameter"
    if mtype == "text":
        text = body.get("text")
        if not isinstance(text, dict) or set(text) - {"body", "preview_url"}:
            return 100, "(#100) Invalid parameter"
        if not isinstance(text.get("body"), str) or not 0 < len(text["body"]) <= 4096:
            return 100, "(#100) The parameter text['body'] is required."
        return None
    if mtype == "interactive":
        return _validate_wa_interactive(body.get("interactive"))
    if mtype == "template":
        tpl = body.get("template")
        if not isinstance(tpl, dict) or set(tpl) - {"name", "language", "components"}:
            return 100, "(#100) Invalid parameter"
        name = tpl.get("name")
        lang = (tpl.get("language") or {}).get("code") if isinstance(tpl.get("language"), dict) else None
        if not isinstance(name, str) or not TEMPLATE_NAME_RE.match(name) or not isinstance(lang, str):
            return 100, "(#100) Invalid parameter"
        if templates is not None and (name, lang) not in templates:
            return 132001, "(#132001) Template name does not exist in the translation"
        for comp in tpl.get("components") or []:
            if not isinstance(comp, dict) or comp.get("type") not in ("header", "body", "button"):
                return 100, "(#100) Invalid parameter"
            for par in comp.get("parameters") or []:
                ptype = par.get("type") if isinstance(par, dict) else None
                if ptype not in TEMPLATE_PARAM_TYPES or not isinstance(par.get(ptype), str | dict):
                    return 132012, "(#132012) Parameter format does not match format in the created template"
        return None
    return 131051, "(#131051) Message type unknown"


INVALID = (131009, "(#131009) Parameter value is not valid")


def _text_ok(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _validate_wa_interactive(inter: Any) -> tuple[int, str] | None:
    """Reply buttons, list and cta_url as the Cloud API checks them (interactive-reply-buttons-messages,
    interactive-list-messages, interactive-cta-url-messages): counts, lengths, unique ids."""
    if not isinstance(inter, dict) or inter.get("type") not in ("button", "list", "cta_url"):
        return 100, "(#100) Invalid parameter"
    if set(inter) - {"type", "header", "body", "footer", "action"}:
        return 100, "(#100) Invalid parameter"
    btext = (inter.get("body") or {}).get("text") if isinstance(inter.get("body"), dict) else None
    if not _text_ok(btext, 1024):
        return 100, "(#100) The parameter interactive['body']['text'] is required."
    action = inter.get("action")
    if not isinstance(action, dict):
        return 100, "(#100) The parameter interactive['action'] is required."
    if inter["type"] == "button":
        buttons = action.get("buttons")
        if set(action) != {"buttons"} or not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return INVALID
        ids, titles = [], []
        for b in buttons:
            reply = b.get("reply") if isinstance(b, dict) and b.get("type") == "reply" else None
            if not isinstance(reply, dict) or set(reply) != {"id", "title"}:
                return 100, "(#100) Invalid parameter"
            if not _text_ok(reply["id"], 256) or not _text_ok(reply["title"], 20):
                return INVALID
            ids.append(reply["id"])
            titles.append(reply["title"])
        return None if len(set(ids)) == len(ids) and len(set(titles)) == len(titles) else INVALID
    if inter["type"] == "list":
        sections = action.get("sections")
        if set(action) != {"button", "sections"} or not _text_ok(action.get("button"), 20):
            return INVALID
        if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
            return INVALID
        rows: list[Any] = []
        for sec in sections:
            if (
                not isinstance(sec, dict)
                or not isinstance(sec.get("rows"), list)
                or set(sec) - {"title", "rows"}
            ):
                return 100, "(#100) Invalid parameter"
            if len(sections) > 1 and not _text_ok(sec.get("title"), 24):
                return INVALID  # "required if the message has more than one section"
            rows += sec["rows"]
        if not 1 <= len(rows) <= 10:
            return INVALID
        for r in rows:
            if not isinstance(r, dict) or set(r) - {"id", "title", "description"}:
                return 100, "(#100) Invalid parameter"
            if not _text_ok(r.get("id"), 200) or not _text_ok(r.get("title"), 24):
                return INVALID
            if "description" in r and not _text_ok(r["description"], 72):
                return INVALID
        return None if len({r["id"] for r in rows}) == len(rows) else INVALID
    params = action.get("parameters")
    if (
        action.get("name") != "cta_url"
        or not isinstance(params, dict)
        or set(params) != {"display_text", "url"}
    ):
        return 100, "(#100) Invalid parameter"
    if not _text_ok(params["display_text"], 20):
        return INVALID
    url = params["url"]
    if not (isinstance(url, str) and re.match(r"^https?://[^\s/]+(/\S*)?$", url)):
        return INVALID
    return None


def _validate_wa_media(mtype: str, media: Any) -> tuple[int, str] | None:
    if not isinstance(media, dict):
        return 100, f"(#100) The parameter {mtype} is required."
    unknown = set(media) - WA_MEDIA_KEYS[mtype]
    if unknown:
        return 100, f'(#100) Unexpected key "{sorted(unknown)[0][:40]}" on param "{mtype}"'
    if ("id" in media) == ("link" in media):
        return 100, f"(#100) The parameter {mtype}['link'] or {mtype}['id'] is required."
    link = media.get("link")
    if "link" in media and not (isinstance(link, str) and re.match(r"^https?://[^\s/]+/\S*$", link)):
        return 131009, "(#131009) Parameter value is not valid"
    caption = media.get("caption")
    if caption is not None and not (isinstance(caption, str) and 0 < len(caption) <= 1024):
        return 131009, "(#131009) Parameter value is not valid"
    filename = media.get("filename")
    if filename is not None and not (isinstance(filename, str) and 0 < len(filename) <= 240):
        return 131009, "(#131009) Parameter value is not valid"
    return None


def validate_messenger(body: Any) -> tuple[int, str] | None:
    if not isinstance(body, dict):
        return 100, "(#100) The request body must be a JSON object"
    if set(body) - MS_TOP_KEYS:
        return 100, "(#100) Param is not a valid parameter"
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str):
        return 100, "(#100) The parameter recipient is required"
    if body.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return 100, "(#100) The parameter messaging_type is required"
    if body.get("tag") in ("CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE"):
        return 100, "(#100) Tag is no longer supported"
    message = body.get("message")
    if not isinstance(message, dict) or set(message) - {"text", "quick_replies", "attachment", "metadata"}:
        return 100, "(#100) The parameter message is required"
    if "attachment" in message:
        if "text" in message:  # a message is a text or an attachment, never both
            return 100, "(#100) Only one of text or attachment can be specified"
        if isinstance(message["attachment"], dict) and message["attachment"].get("type") == "template":
            return _validate_button_template(message["attachment"])
        problem = _validate_attachment(message["attachment"])
        if problem is not None:
            return problem
    elif not isinstance(message.get("text"), str) or not 0 < len(message["text"]) <= 2000:
        return 100, "(#100) Param message[text] must be a non-empty UTF-8 encoded string"
    if len(message.get("quick_replies") or []) > 13:
        return 100, "(#100) param message[quick_replies] must have at most 13 elements"
    for qr in message.get("quick_replies") or []:
        if (
            not isinstance(qr, dict)
            or qr.get("content_type") != "text"
            or not isinstance(qr.get("title"), str)
        ):
            return 100, "(#100) Invalid quick reply"
        if len(qr["title"]) > 20 or not isinstance(qr.get("payload"), str):
            return 100, "(#100) Invalid quick reply"
    return None


def _validate_button_template(att: Any) -> tuple[int, str] | None:
    """Meta "Button template": text up to 640, 1-3 buttons; web_url (https url, title <= 20) or postback."""
    payload = att.get("payload")
    if set(att) != {"type", "payload"} or not isinstance(payload, dict):
        return 100, "(#100) Invalid attachment"
    if payload.get("template_type") != "button" or set(payload) - {"template_type", "text", "buttons"}:
        return 100, "(#100) Invalid template type"
    if not _text_ok(payload.get("text"), 640):
        return 100, "(#100) Param text must be at most 640 characters"
    buttons = payload.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return 100, "(#100) Param buttons must have 1 to 3 elements"
    for b in buttons:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "web_url":
            ok = set(b) <= {"type", "url", "title", "webview_height_ratio"} and _text_ok(b.get("title"), 20)
            ok = ok and isinstance(b.get("url"), str) and bool(re.match(r"^https?://[^\s/]+", b["url"]))
        elif kind == "postback":
            ok = set(b) == {"type", "title", "payload"} and _text_ok(b.get("title"), 20)
            ok = ok and _text_ok(b.get("payload"), 1000)
        else:
            ok = False
        if not ok:
            return 100, "(#100) Invalid button"
    return None


def _validate_attachment(att: Any) -> tuple[int, str] | None:
    """`{type: image|audio|video|file, payload: {url, is_reusable}}` (or a saved `attachment_id`)."""
    if not isinstance(att, dict) or set(att) != {"type", "payload"}:
        return 100, "(#100) Invalid attachment"
    if att["type"] not in MS_ATTACHMENT_TYPES:
        return 100, "(#100) Invalid attachment type"
    payload = att["payload"]
    if not isinstance(payload, dict) or set(payload) - {"url", "is_reusable", "attachment_id"}:
        return 100, "(#100) Invalid attachment payload"
    if ("url" in payload) == ("attachment_id" in payload):
        return 100, "(#100) Attachment payload needs a url or an attachment_id"
    url = payload.get("url")
    if "url" in payload and not (isinstance(url, str) and re.match(r"^https?://[^\s/]+/\S*$", url)):
        return 100, "(#100) Invalid attachment url"
    if not isinstance(payload.get("is_reusable", False), bool):
        return 100, "(#100) Invalid attachment payload"
    return None
