"""A bench-only channel adapter: POSTs JSON to the fake provider with aiohttp (registered on import).

Status webhooks from the fake (bench/fakeprovider.StatusPoster) use the simulator channel's
format and signature, so they take the same verified, group-committed path as any channel's.
"""

from __future__ import annotations

import contextlib
import json
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
from konsent.channels.transport import Policy, Provider, Transport
from konsent.domain.events import Event

_SIMULATOR_FORMAT = SimulatorChannel()
PROVIDER = Provider("benchhttp", "http://127.0.0.1", frozenset({"127.0.0.1", "localhost"}))


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

    def __init__(self, transport: Transport | None = None) -> None:
        # The channels' own transport (guarded connector, per-origin check, one session per loop),
        # so the benchmark measures what real adapters pay per request. The fake provider lives on
        # 127.0.0.1: that is the operator setting for fakes, whatever the bench process was given.
        self._transport = Transport(Policy(allow_private=True, account_base_urls=True))

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        url = f"{account.settings['url']}/send/{account.id}"
        body: dict[str, Any] = {"to": address, "text": content.text, "template": content.template}
        if content.ref:
            body["ref"] = content.ref
        # When the request left (CLOCK_MONOTONIC is one clock for every process of the host): the
        # fake judges Retry-After by it, not by when a busy machine got round to handling it.
        body["sent_at"] = time.monotonic()
        timeout_s = float(account.settings.get("timeout_s", 10))
        if time.monotonic() < BenchHttpChannel._retry_until.get(account.id, 0.0):
            BenchHttpChannel.early_requests += 1
        try:
            r = await self._transport.call(PROVIDER, "POST", url, json_body=body, timeout_s=timeout_s)
        except TimeoutError:
            return SendResult(SendOutcome.UNKNOWN, error_code="timeout", error_text="no answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return SendResult(SendOutcome.TRANSIENT, error_code="connect", error_text=type(exc).__name__)
        if r.status == 200:
            return SendResult(SendOutcome.SENT, provider_id=json.loads(r.body)["id"])
        if r.status == 429:
            after = float(r.headers.get("Retry-After", "1"))
            until = time.monotonic() + after
            if until > BenchHttpChannel._retry_until.get(account.id, 0.0):
                BenchHttpChannel._retry_until[account.id] = until
            return SendResult(SendOutcome.RETRY_AFTER, retry_after_s=after, error_code="429")
        if r.status >= 500:
            return SendResult(SendOutcome.TRANSIENT, error_code=str(r.status), error_text="server error")
        return SendResult(SendOutcome.PERMANENT, error_code=str(r.status), error_text="rejected")

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        _SIMULATOR_FORMAT.verify(account, request)

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        return _SIMULATOR_FORMAT.parse(account, body)

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop is gone
            await self._transport.close()


@register
class BenchHttpNoEchoChannel(BenchHttpChannel):
    """The same fake provider without echo, like Telegram and Threema (#14: the per-purpose policy)."""

    kind = "benchhttp_noecho"
    label = "Bench HTTP without echo"
    capabilities = Capabilities(throughput_per_s=1000.0, receives_inbound=False)
