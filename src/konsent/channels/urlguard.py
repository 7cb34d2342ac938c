"""Where konsent may connect to on a provider's behalf: the one outbound-address rule (S3, #13).

Every HTTP call of a channel adapter goes through `channels.transport`, which asks this
module twice: once for the URL (scheme, and the host when it is an IP literal) and once,
inside the connector, for every address the host name resolves to. The second check runs
for every new connection, so a redirect (refused anyway) or a DNS answer that changes
between check and use (rebinding) cannot reach an internal address either.

Allowed: `https` to a public (globally routable) unicast address. With the operator
setting `KONSENT_ALLOW_PRIVATE_URLS=true` (tests, fakes, a provider proxy on the LAN)
also `http` and private, loopback and link-local addresses. Never anything else
(`file:`, `ftp:`, …), and never an address without a host.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedUrl(OSError):
    """A URL or resolved address outside what the operator allows (never connected to)."""


def address_allowed(address: str | IPAddress, allow_private: bool) -> bool:
    """A connectable address: public unicast, or with `allow_private` any unicast address."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0]) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return allow_private or ip.is_global


def url_problem(url: str | URL, allow_private: bool) -> str:
    """Why konsent must not call `url` ("" when it may): scheme, host, literal address.

    Parsed with yarl, the parser aiohttp itself uses, so the host checked is the host called.
    """
    try:
        parts = url if isinstance(url, URL) else URL(url)
        host = (parts.host or "").lower()
        scheme = parts.scheme.lower()
    except (ValueError, TypeError):
        return "malformed URL"
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        return f"scheme {scheme or '(none)'} not allowed"
    if not host:
        return "no host"
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if not allow_private and (host == "localhost" or host.endswith((".localhost", ".local"))):
            return "local host name"
        return ""
    return "" if address_allowed(literal, allow_private) else "address not allowed"


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing a host when any of its addresses is not allowed."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not self._allow_private and any(not address_allowed(r["host"], False) for r in found):
            raise BlockedUrl(f"{host} resolves to an address that is not allowed")
        return found

    async def close(self) -> None:
        await self._inner.close()


__all__ = ["BlockedUrl", "GuardedResolver", "address_allowed", "url_problem"]
