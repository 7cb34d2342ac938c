"""No input, however malformed, gets a server error: garbage into every route, signed in as the
owner (who may reach every handler), in path parameters, query strings, forms and JSON bodies
(S8; the API's documented shapes are also checked by schemathesis)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from konsent.web.deps import CSRF_HEADER
from tests.inbox.conftest import Crew, conversation_of, say, sign_in

GARBAGE = [
    "", "x", "-1", "0", "99999999999999999999999", "1e309", "nan", "\x00", "\ud800", "ä" * 5000,
    "[]", "{}", "%", "../../etc/passwd", "2026-13-45", "true",
]  # fmt: skip
QUERY_NAMES = (
    "q",
    "page",
    "after",
    "limit",
    "from",
    "to",
    "state",
    "channel",
    "label",
    "lang",
    "cid",
    "topic",
)
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
NOT_A_REQUEST = {"/readyz"}  # 503 is its answer while the worker is not running, by design
STREAMS = ("/events", "/stream")  # server-sent events never end; their input is tested in test_live


def _routes(app: Any) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}

    def walk(routes: Any) -> None:
        for r in routes:
            if hasattr(r, "effective_route_contexts"):
                for c in r.effective_route_contexts():
                    for m in c.methods or getattr(c.original_route, "methods", None) or ():
                        found[(m, c.path)] = c.original_route
            elif getattr(r, "methods", None):
                found.update({(m, r.path): r for m in r.methods})
            else:
                walk(getattr(r, "routes", []) or [])

    walk(app.routes)
    return found


def _fields(route: Any) -> list[str]:
    dependant = getattr(route, "dependant", None)
    return [p.alias or p.name for p in dependant.body_params] if dependant else []


def _raw(value: str) -> str:
    return quote(value[:500].encode("utf-8", "surrogatepass"), safe="")


def test_garbage_in_every_route_as_the_owner_never_gets_a_server_error(ctx, crew: Crew, app, client) -> None:  # type: ignore[no-untyped-def]
    say(ctx, crew, "+491701111111", "Hallo")
    real = str(conversation_of(ctx, crew, "+491701111111").id)  # half the requests name a real row
    csrf = sign_in(client, ctx, crew.users["owner"])
    errors, sent = [], 0
    for (method, path), route in sorted(_routes(app).items()):
        if method == "HEAD" or path == "/admin/logout" or path in NOT_A_REQUEST or path.endswith(STREAMS):
            continue
        fields = _fields(route)
        for i, junk in enumerate(GARBAGE):
            url = PARAM.sub(lambda _m, j=junk, i=i: _raw((j if i % 2 else real) or "x"), path)  # type: ignore[misc]
            headers = {CSRF_HEADER: csrf}
            body = None
            if method == "GET":
                url += "?" + "&".join(f"{name}={_raw(junk)}" for name in QUERY_NAMES)
            elif path.startswith("/api/"):
                body = json.dumps({f: junk for f in fields} if i % 3 else junk).encode()
                headers["content-type"] = "application/json"
            else:
                form = {**dict.fromkeys(fields, junk), "csrf_token": csrf}
                body = urlencode(form, encoding="utf-8", errors="surrogatepass").encode()
                headers["content-type"] = "application/x-www-form-urlencoded"
            resp = client.request(method, url, content=body, headers=headers, follow_redirects=False)
            sent += 1
            if resp.status_code >= 500:
                errors.append(f"{method} {path} with {junk[:20]!r}: {resp.status_code}")
            if resp.status_code in (302, 303) and "/admin/login" in resp.headers.get("location", ""):
                csrf = sign_in(client, ctx, crew.users["owner"])  # e.g. a password change signed us out
    assert sent > 2000  # every route was reached, not just a few
    assert errors == []
