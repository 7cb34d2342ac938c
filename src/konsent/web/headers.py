"""Security headers of every answer (#13 finding 9).

- Every HTML page: a strict Content-Security-Policy. Scripts only from this origin's files
  (`script-src 'self'`: no inline script, no event-handler attributes, no eval); no plugins,
  no `<base>`, no framing. Inline *style* stays allowed: the consent proof is a self-contained
  document with its own stylesheet and the opt-in widget injects its stylesheet.
- Exactly one Referrer-Policy: what a route set itself (privacy pages: `no-referrer`), else
  `no-referrer` on private areas (admin, REST API, privacy and simulator pages), else
  `strict-origin-when-cross-origin`.
- HSTS whenever the installation's public URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PRIVATE_PREFIXES = ("/admin", "/api/v1", "/privacy", "/simulator")
# The API docs (Swagger UI, ReDoc; assets served offline), started by an inline script of the
# framework's: those pages get a policy allowing exactly that script, by its hash, nothing else.
FRAMEWORK_PAGES = ("/api/docs", "/api/redoc", "/docs/oauth2-redirect")
_INLINE_SCRIPT_RE = re.compile(rb"<script>(.*?)</script>", re.S)


def framework_csp(html: bytes) -> str:
    """The policy of a framework page: its own inline scripts by hash; ReDoc's worker from a blob."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT_RE.finditer(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


HSTS = b"max-age=31536000; includeSubDomains"


def referrer_policy(path: str) -> bytes:
    return b"no-referrer" if path.startswith(PRIVATE_PREFIXES) else b"strict-origin-when-cross-origin"


class SecurityHeaders:
    """Headers every response carries; HTML pages get the content-security policy."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path in FRAMEWORK_PAGES:
            await self._framework_page(scope, receive, send, path)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {bytes(name).lower(): value for name, value in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    headers.append((b"referrer-policy", referrer_policy(path)))
                if not path.startswith(("/widget.js", "/api/public/")):
                    headers.append((b"x-frame-options", b"DENY"))
                if bytes(names.get(b"content-type", b"")).startswith(b"text/html"):
                    headers.append((b"content-security-policy", CSP.encode()))
                if self.https:
                    headers.append((b"strict-transport-security", HSTS))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, headers: list[tuple[bytes, bytes]], path: str, csp: str) -> None:
        names = {bytes(name).lower(): value for name, value in headers}
        headers.append((b"x-content-type-options", b"nosniff"))
        if b"referrer-policy" not in names:
            headers.append((b"referrer-policy", referrer_policy(path)))
        headers.append((b"x-frame-options", b"DENY"))
        if bytes(names.get(b"content-type", b"")).startswith(b"text/html"):
            headers.append((b"content-security-policy", csp.encode()))
        if self.https:
            headers.append((b"strict-transport-security", HSTS))

    async def _framework_page(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Hold the (small) page until it is complete, then send it with its hashed policy."""
        start: Message | None = None
        body = bytearray()

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False) or start is None:
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            self._headers(headers, path, framework_csp(bytes(body)))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, collect)


__all__ = ["CSP", "SecurityHeaders", "framework_csp", "referrer_policy"]
