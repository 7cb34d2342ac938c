"""The receiver example in docs/API.md works: it accepts konsent's signed events, deduplicates by
event id and refuses forged or stale requests (M4)."""

from __future__ import annotations

import asyncio
import http.client
import re
import threading
import time
from http.server import HTTPServer
from pathlib import Path
from typing import Any

from konsent.delivery import webhooks_out
from konsent.domain import webhooks as rules
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import subscribe

DOC = Path(__file__).parents[2] / "docs" / "API.md"


def receiver_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "class Hook" in b]
    return code


def test_the_documented_receiver_is_short():
    assert len(receiver_source().strip().splitlines()) <= 16


def _post(port: int, body: bytes, signature: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(
        "POST", "/", body=body, headers={"Konsent-Signature": signature, "Content-Length": str(len(body))}
    )
    return conn.getresponse().status


def test_the_documented_receiver_verifies_and_deduplicates(ctx, demo, client):
    ctx.settings.allow_private_urls = True
    code = receiver_source().strip().splitlines()
    assert code[-1].startswith("HTTPServer(")
    ns: dict[str, Any] = {}
    exec("\n".join(code[:-1]), ns)  # everything but serve_forever
    server = HTTPServer(("127.0.0.1", 0), ns["Hook"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        token = api_token(ctx)
        ep = client.post(
            "/api/v1/webhook-endpoints",
            json={"url": f"http://127.0.0.1:{port}/", "events": ["consent.withdrawn"]},
            headers=auth(token),
        ).json()
        ns["SECRET"] = ep["secret"].encode()
        subscribe(ctx, "+4915112340006", ["angebote"])
        cid = contact_of(ctx, "+4915112340006").id
        client.post(f"/api/v1/contacts/{cid}/withdraw", json={}, headers=auth(token))
        asyncio.run(webhooks_out.drain(ctx))
        log = client.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries", headers=auth(token)).json()
        assert [d["state"] for d in log] == ["done"]
        assert ns["seen"] == {log[0]["event_id"]}
        client.post(
            f"/api/v1/webhook-endpoints/{ep['id']}/deliveries/{log[0]['id']}/redeliver", headers=auth(token)
        )
        asyncio.run(webhooks_out.drain(ctx))
        assert ns["seen"] == {log[0]["event_id"]}  # the same event twice is handled once

        body = b'{"id": "evt_forged", "type": "contact.erased", "data": {}}'
        now = int(time.time())
        assert _post(port, body, rules.signature_header(["whsec_wrong"], now, body)) == 400
        assert _post(port, body, rules.signature_header([ep["secret"]], now - 3600, body)) == 400  # stale
        assert _post(port, body, rules.signature_header([ep["secret"]], now, body)) == 200
    finally:
        server.shutdown()
