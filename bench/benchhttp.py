"""A bench-only channel adapter: POSTs JSON to the fake provider with aiohttp (registered on import).

Status webhooks from the fake (bench/fakeprovider.StatusPoster) use the simulator channel's
format and signature, so they take the same verified, group-committed path as any channel's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

import aiohttp

from konsent.channels import register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    WebhookRequest,
)
from konsent.channels.simulator import SimulatorChannel
from konsent.domain.events import Event

_SIMULATOR_FORMAT = SimulatorChannel()


@register
class BenchHttpChannel(ChannelAdapter):
    kind = "benchhttp"
    label = "Bench HTTP"
    # The fake echoes the reference in the "sent" status webhook, as WhatsApp does (#14).
    capabilities = Capabilities(throughput_per_s=1000.0, receives_inbound=False, echoes_ref=True)

    # Requests this process handed to the provider while the provider's Retry-After for that
    # account was still running, as the client saw it (the tests assert this stays 0).
    early_requests = 0
    _retry_until: ClassVar[dict[int, float]] = {}

    def __init__(self) -> None:
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._timeouts: dict[int, aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        sess = self._sessions.get(id(loop))
        if sess is None or sess.closed:
            sess = self._sessions[id(loop)] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=100)
            )
        return sess

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        url = f"{account.settings['url']}/send/{account.id}"
        body: dict[str, Any] = {"to": address, "text": content.text, "template": content.template}
        if content.ref:
            body["ref"] = content.ref
        timeout = self._timeouts.get(account.id)
        if timeout is None:
            timeout = self._timeouts[account.id] = aiohttp.ClientTimeout(
                total=float(account.settings.get("timeout_s", 10))
            )
        if time.monotonic() < BenchHttpChannel._retry_until.get(account.id, 0.0):
            BenchHttpChannel.early_requests += 1
        try:
            async with self._session().post(url, json=body, timeout=timeout) as r:
                if r.status == 200:
                    return SendResult(SendOutcome.SENT, provider_id=(await r.json())["id"])
                if r.status == 429:
                    after = float(r.headers.get("Retry-After", "1"))
                    until = time.monotonic() + after
                    if until > BenchHttpChannel._retry_until.get(account.id, 0.0):
                        BenchHttpChannel._retry_until[account.id] = until
                    return SendResult(SendOutcome.RETRY_AFTER, retry_after_s=after, error_code="429")
                if r.status >= 500:
                    return SendResult(
                        SendOutcome.TRANSIENT, error_code=str(r.status), error_text="server error"
                    )
                return SendResult(SendOutcome.PERMANENT, error_code=str(r.status), error_text="rejected")
        except TimeoutError:
            return SendResult(SendOutcome.UNKNOWN, error_code="timeout", error_text="no answer in time")
        except aiohttp.ClientError as exc:
            return SendResult(SendOutcome.TRANSIENT, error_code="connect", error_text=type(exc).__name__)

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        _SIMULATOR_FORMAT.verify(account, request)

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        return _SIMULATOR_FORMAT.parse(account, body)

    async def close(self) -> None:
        for sess in self._sessions.values():
            if not sess.closed:
                with contextlib.suppress(RuntimeError):  # its loop is gone
                    await sess.close()
        self._sessions.clear()


@register
class BenchHttpNoEchoChannel(BenchHttpChannel):
    """The same fake provider without echo, like Telegram and Threema (#14: the per-purpose policy)."""

    kind = "benchhttp_noecho"
    label = "Bench HTTP without echo"
    capabilities = Capabilities(throughput_per_s=1000.0, receives_inbound=False)
