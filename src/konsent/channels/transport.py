"""The one HTTP transport of the channel adapters (#11 item 5, #13 finding 1).

One aiohttp session per process (per event loop: tests run several loops one after
another), made with a connector whose resolver refuses internal addresses
(`channels.urlguard`). Every request is checked before it goes out:

- the scheme and a literal address (`urlguard.url_problem`),
- the host: one of the provider's documented hosts (`Provider.hosts`), the host of the
  base URL the operator configured for this kind (`KONSENT_PROVIDER_BASE_URLS`), or, only
  when the operator allows it (`KONSENT_ALLOW_ACCOUNT_BASE_URLS`), any host.

The decision is cached per (kind, scheme, host, port), so the send hot path pays one dict
lookup. Host names are resolved (and their addresses checked, `GuardedResolver`) only when the
connector opens a new connection: connections are kept alive and reused, and aiohttp caches a
resolved host for 10 s, so a send pays no DNS lookup and no address check of its own (measured
in session 5: 100 connections for 3,000 sends at a concurrency of 100). Redirects are never
followed: a provider answers its API calls directly.

A channel account's own `api_base` setting (set by a tenant admin in older versions) is
ignored unless the operator allows account base URLs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from konsent.channels.base import AccountConfig, SendOutcome, SendResult
from konsent.channels.urlguard import BlockedUrl, GuardedResolver, url_problem
from konsent.settings import Settings, get_settings

DEFAULT_MAX_BYTES = 5_000_000


@dataclass(frozen=True)
class Policy:
    """What the operator allows (environment settings, never a tenant's)."""

    allow_private: bool = False  # KONSENT_ALLOW_PRIVATE_URLS: http and internal addresses (tests, fakes)
    base_urls: Mapping[str, str] = field(default_factory=dict)  # KONSENT_PROVIDER_BASE_URLS: kind → base
    account_base_urls: bool = False  # KONSENT_ALLOW_ACCOUNT_BASE_URLS: honour a channel's `api_base`

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            allow_private=bool(settings.allow_private_urls),
            base_urls=dict(settings.provider_base_urls or {}),
            account_base_urls=bool(settings.allow_account_base_urls),
        )


@dataclass(frozen=True)
class Provider:
    """What the transport needs to know about one channel kind."""

    kind: str
    default_base: str
    hosts: frozenset[str]  # documented hosts; an entry starting with "." matches its subdomains
    connect_code: str = "network"  # error code when nothing went out
    other_code: str = "network"  # error code of any other client error


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON, or None when it is none (depth-safe: a nested bomb is None too)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class ResponseTooLarge(aiohttp.ClientPayloadError):
    """The answer is larger than the caller accepts; it was not read to the end."""


class Transport:
    """One guarded aiohttp session per event loop, shared by every adapter of the process."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self._verdicts: dict[tuple[str, str, str, int | None], str] = {}
        self._by_loop: dict[
            int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Task[None]]
        ] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}  # parsed once: a send URL repeats for every message of an account

    # --- where to -------------------------------------------------------------------------------

    def base_url(self, provider: Provider, account: AccountConfig | None = None) -> str:
        """The API base for this kind: the operator's, the account's (if allowed), else the default."""
        base = self.policy.base_urls.get(provider.kind)
        if not base and account is not None and self.policy.account_base_urls:
            base = str(account.settings.get("api_base") or "")
        return (base or provider.default_base).rstrip("/")

    def problem(self, provider: Provider, url: str | URL) -> str:
        """Why this URL must not be called for this provider ("" when it may); cached per origin."""
        u = url if isinstance(url, URL) else URL(url)
        key = (provider.kind, u.scheme, u.host or "", u.port)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdict(provider, u)
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def _verdict(self, provider: Provider, u: URL) -> str:
        problem = url_problem(u, self.policy.allow_private)
        if problem:
            return problem
        host = (u.host or "").lower()
        if host in provider.hosts or any(h.startswith(".") and host.endswith(h) for h in provider.hosts):
            return ""
        operator = self.policy.base_urls.get(provider.kind)
        if operator:
            o = URL(operator)
            if (o.scheme, (o.host or "").lower(), o.port) == (u.scheme, host, u.port):
                return ""
        if self.policy.account_base_urls:
            return ""
        return f"host {host} is not a {provider.kind} API host"

    # --- calls ----------------------------------------------------------------------------------

    async def call(
        self,
        provider: Provider,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Reply:
        """One request; raises BlockedUrl (never sent), ResponseTooLarge or aiohttp's errors."""
        u = self._urls.get(url)
        if u is None:
            if len(self._urls) > 1_000:
                self._urls.clear()
            u = self._urls[url] = URL(url)
        problem = self.problem(provider, u)
        if problem:
            raise BlockedUrl(problem)
        kwargs: dict[str, Any] = {"allow_redirects": False, "timeout": self._timeout(timeout_s)}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = dict(data)
        if headers:
            kwargs["headers"] = dict(headers)
        if params:
            kwargs["params"] = dict(params)
        async with self.session().request(method, u, **kwargs) as resp:
            length = resp.content_length
            if length is not None and length > max_bytes:
                raise ResponseTooLarge("answer too large")
            if length is not None:
                body = await resp.read()
            else:
                body = await _read_capped(resp, max_bytes)
            return Reply(resp.status, body, resp.headers)

    async def send(self, provider: Provider, method: str, url: str, **kwargs: Any) -> Reply | SendResult:
        """`call` for a send: a request that failed on the way becomes its SendResult (CH3)."""
        try:
            return await self.call(provider, method, url, **kwargs)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return unreached(provider, exc)

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(seconds)
        if t is None:
            t = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds, connect=min(seconds, 5.0))
        return t

    # --- sessions -------------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The session of the running loop; closed with its loop (asyncio.run cancels the guard)."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(id(loop))
        if entry is not None and entry[0] is loop and not entry[1].closed:
            return entry[1]
        for key, (lp, _s, _t) in list(self._by_loop.items()):
            if lp.is_closed():
                del self._by_loop[key]
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy.allow_private), limit=200)
        session = aiohttp.ClientSession(connector=connector)
        guard = loop.create_task(_close_with_loop(session))
        self._by_loop[id(loop)] = (loop, session, guard)
        return session

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for key, (lp, session, guard) in list(self._by_loop.items()):
            if lp is loop:
                del self._by_loop[key]
                guard.cancel()
                await session.close()


async def _close_with_loop(session: aiohttp.ClientSession) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65_536):
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge("answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _blocked(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, BlockedUrl):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False


def unreached(provider: Provider, exc: BaseException) -> SendResult:
    """A request that got no usable answer, by whether it may have reached the provider (CH3)."""
    name = type(exc).__name__
    if _blocked(exc):
        return SendResult(SendOutcome.PERMANENT, error_code="blocked_url", error_text="address not allowed")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        # Nothing went out: safe to retry.
        return SendResult(SendOutcome.TRANSIENT, error_code=provider.connect_code, error_text=name)
    if isinstance(
        exc,
        TimeoutError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError,
    ):
        # The request may have reached the provider: the outcome is unknown.
        return SendResult(SendOutcome.UNKNOWN, error_code="no_answer", error_text=name)
    return SendResult(SendOutcome.TRANSIENT, error_code=provider.other_code, error_text=name)


_DEFAULT: Transport | None = None


def default_transport() -> Transport:
    """The process's transport for adapters made without one (scripts, tests): operator settings."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Transport(Policy.from_settings(get_settings()))
    return _DEFAULT


__all__ = [
    "Policy",
    "Provider",
    "Reply",
    "ResponseTooLarge",
    "Transport",
    "default_transport",
    "unreached",
]
