"""Telegram payloads from shared/protocols/telegram.md (copied as data), plus helpers the Telegram and
Threema tests share: a channel account in the demo tenant and konsent served on a real port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants

# §2.1 private-chat text message [VERBATIM capture]
TEXT_UPDATE: dict[str, Any] = {
    "update_id": 11992905,
    "message": {
        "message_id": 20,
        "from": {
            "id": 5273618487,
            "is_bot": False,
            "first_name": "Kuma",
            "last_name": "Tea",
            "username": "realKumaTea",
            "language_code": "en",
        },
        "chat": {
            "id": 5273618487,
            "first_name": "Kuma",
            "last_name": "Tea",
            "username": "realKumaTea",
            "type": "private",
        },
        "date": 1697139614,
        "text": "/start",
        "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
    },
}

# §2.2 /start with a deep-link parameter [CONSTRUCTED]
START_UPDATE: dict[str, Any] = {
    "update_id": 11992906,
    "message": {
        "message_id": 21,
        "from": {
            "id": 5273618487,
            "is_bot": False,
            "first_name": "Kuma",
            "last_name": "Tea",
            "username": "realKumaTea",
            "language_code": "en",
        },
        "chat": {
            "id": 5273618487,
            "first_name": "Kuma",
            "last_name": "Tea",
            "username": "realKumaTea",
            "type": "private",
        },
        "date": 1697139700,
        "text": "/start airplane",
        "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
    },
}

# §2.3 callback query from an inline message [VERBATIM] and under a bot message [CONSTRUCTED]
CALLBACK_INLINE_UPDATE: dict[str, Any] = {
    "update_id": 10000,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {
            "last_name": "Test Lastname",
            "type": "private",
            "id": 1111111,
            "first_name": "Test Firstname",
            "username": "Testusername",
        },
        "data": "Data from button callback",
        "inline_message_id": "1234csdbsk4839",
    },
}

CALLBACK_UPDATE: dict[str, Any] = {
    "update_id": 10001,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {
            "id": 1111111,
            "is_bot": False,
            "first_name": "Test",
            "username": "Test",
            "language_code": "en",
        },
        "message": {
            "message_id": 1366,
            "from": {"id": 123456789, "is_bot": True, "first_name": "MyBot", "username": "my_bot"},
            "chat": {"id": 1111111, "first_name": "Test", "username": "Test", "type": "private"},
            "date": 1441645533,
            "text": "Pick one",
            "reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]},
        },
        "chat_instance": "-1234567890123456789",
        "data": "yes",
    },
}

# §2.4 user blocked the bot [CONSTRUCTED]
BLOCKED_UPDATE: dict[str, Any] = {
    "update_id": 10002,
    "my_chat_member": {
        "chat": {"id": 1111111, "first_name": "Test", "username": "Test", "type": "private"},
        "from": {
            "id": 1111111,
            "is_bot": False,
            "first_name": "Test",
            "username": "Test",
            "language_code": "en",
        },
        "date": 1441645600,
        "old_chat_member": {
            "user": {"id": 123456789, "is_bot": True, "first_name": "MyBot", "username": "my_bot"},
            "status": "member",
        },
        "new_chat_member": {
            "user": {"id": 123456789, "is_bot": True, "first_name": "MyBot", "username": "my_bot"},
            "status": "kicked",
            "until_date": 0,
        },
    },
}

ALL_UPDATES = [TEXT_UPDATE, START_UPDATE, CALLBACK_INLINE_UPDATE, CALLBACK_UPDATE, BLOCKED_UPDATE]

# §4 error envelopes [VERBATIM captures]
FLOOD_429 = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 34",
    "parameters": {"retry_after": 34},
}
FLOOD_429_OLD = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3"}
BLOCKED_403 = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
CHAT_NOT_FOUND_400 = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET_TOKEN = "s3cr3t_T0ken-for-konsent"
BOT_USERNAME = "konsent_demo_bot"


def add_account(
    ctx: Konsent,
    kind: str,
    settings: dict[str, Any],
    secrets: dict[str, str],
    tenant_slug: str = "demo",
) -> tuple[int, str]:
    """A channel account in a tenant: (account id, route key)."""
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, tenant_slug)
        acc = tenants.create_channel_account(
            ctx, s, tenant, kind, kind.title(), settings=settings, secrets_=secrets
        )
        return acc.id, acc.route_key


def telegram_account(ctx: Konsent, api_base: str = "http://127.0.0.1:9") -> tuple[int, str]:
    return add_account(
        ctx,
        "telegram",
        {"bot_username": BOT_USERNAME, "api_base": api_base},
        {"bot_token": BOT_TOKEN, "secret_token": SECRET_TOKEN},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_konsent(ctx: Konsent) -> Iterator[str]:
    """konsent's web app on a free 127.0.0.1 port (no embedded worker: tests drain explicitly)."""
    import uvicorn

    from konsent.web.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "konsent did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
