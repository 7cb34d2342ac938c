"""The operator sets how many threads one web process gives its synchronous handlers
(`KONSENT_WEB_THREADS`, docs/OPERATIONS.md "Sizing"): fewer threads halved the p99 of customer
messages under load in docs/PERFORMANCE.md, session 7."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread

from konsent.flows.context import Konsent
from konsent.web.app import create_app


def _serve_one_request(app: Any) -> int:
    """Answer GET /healthz on a fresh event loop, as uvicorn would; the loop's thread limit after it."""

    async def main() -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
            "root_path": "", "headers": [(b"host", b"konsent.test")], "client": ("127.0.0.1", 1),
            "server": ("konsent.test", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["status"] == 200
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return asyncio.run(main())


def test_the_web_process_uses_as_many_handler_threads_as_the_operator_set(ctx: Konsent) -> None:
    ctx.settings.web_threads = 6
    assert _serve_one_request(create_app(ctx)) == 6


def test_by_default_the_web_process_keeps_anyios_forty_handler_threads(ctx: Konsent) -> None:
    assert _serve_one_request(create_app(ctx)) == 40
