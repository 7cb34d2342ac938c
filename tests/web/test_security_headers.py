"""Security headers (#13 finding 9): CSP on every HTML page, one Referrer-Policy, Secure cookies
behind https, HSTS, and a quiet 413 for an oversized chunked body."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from konsent.web.app import create_app
from konsent.web.headers import CSP, FRAMEWORK_PAGES, framework_csp
from tests.web.test_admin_auth import as_role

TEMPLATES = Path(__file__).parents[2] / "src" / "konsent" / "web" / "templates"


def get_paths(app: Any) -> set[str]:
    """Every GET path of the app's route table (any FastAPI routing shape)."""
    found: set[str] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            if hasattr(r, "effective_route_contexts"):
                found.update(c.path for c in r.effective_route_contexts() if "GET" in (c.methods or ()))
            elif getattr(r, "methods", None):
                if "GET" in r.methods:
                    found.add(r.path)
            else:
                walk(getattr(r, "routes", []) or [])

    walk(app.routes)
    return found


def _directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_the_policy_allows_scripts_only_from_this_origins_files() -> None:
    d = _directives(CSP)
    assert d["script-src"] == ["'self'"]
    assert d["object-src"] == ["'none'"] and d["base-uri"] == ["'none'"]
    assert d["frame-ancestors"] == ["'none'"]


def test_every_html_page_without_parameters_carries_the_policy(ctx, demo, client, app) -> None:  # type: ignore[no-untyped-def]
    """Every GET route of the app's route table (as an owner): each HTML answer has the CSP."""
    as_role(ctx, client, "owner")
    html = 0
    for path in get_paths(app):
        if "{" in path or path.endswith(("/stream", "/events")):  # parameters; SSE never ends
            continue
        r = client.get(path, follow_redirects=False)
        if r.headers.get("content-type", "").startswith("text/html"):
            html += 1
            expected = framework_csp(r.content) if path in FRAMEWORK_PAGES else CSP
            assert r.headers.get_list("content-security-policy") == [expected], path
    assert html >= 15


def test_the_api_docs_allow_only_the_frameworks_own_inline_script_by_hash(client) -> None:  # type: ignore[no-untyped-def]
    """Swagger UI starts with an inline script: allowed by its hash, never by 'unsafe-inline'."""
    r = client.get("/api/docs")
    script_src = _directives(r.headers["content-security-policy"])["script-src"]
    assert "'unsafe-inline'" not in script_src
    inline = re.findall(rb"<script>(.*?)</script>", r.content, re.S)
    assert inline and len([s for s in script_src if s.startswith("'sha256-")]) == len(inline)
    assert int(r.headers["content-length"]) == len(r.content)


def test_error_and_public_pages_carry_the_policy_too(client, demo) -> None:  # type: ignore[no-untyped-def]
    for path in ("/admin/login", "/demo", "/privacy/not-a-token", "/privacy/export/not-a-token"):
        r = client.get(path)
        assert r.headers.get("content-type", "").startswith("text/html"), path
        assert r.headers["content-security-policy"] == CSP, path


def test_no_template_holds_inline_script_or_event_handler_attributes() -> None:
    """script-src 'self' would block them: each script is a file (JSON data blocks aside)."""
    bad = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text, re.I):
            if "src=" not in tag and 'type="application/json"' not in tag:
                bad.append(f"{path.name}: {tag}")
        bad += [f"{path.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text, re.I)]
        bad += [f"{path.name}: javascript: URL" for _ in re.findall(r"javascript:", text, re.I)]
    assert bad == []


@pytest.mark.parametrize("path", ["/privacy/export/not-a-token", "/privacy/not-a-token", "/admin/login"])
def test_private_pages_send_exactly_one_referrer_policy_no_referrer(client, demo, path: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get(path)
    assert r.headers.get_list("referrer-policy") == ["no-referrer"]


def test_a_page_that_sets_its_own_policy_sends_it_once(ctx, demo, client) -> None:  # type: ignore[no-untyped-def]
    """The export page sets no-referrer itself; the middleware used to add a second, voiding it."""
    from starlette.responses import HTMLResponse

    app = client.app

    @app.get("/privacy/_probe")  # type: ignore[misc,untyped-decorator]
    def probe() -> HTMLResponse:
        return HTMLResponse("<p>x</p>", headers={"referrer-policy": "no-referrer"})

    r = client.get("/privacy/_probe")
    assert r.headers.get_list("referrer-policy") == ["no-referrer"]


def test_public_pages_keep_a_cross_origin_referrer_policy(client, demo) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/demo").headers.get_list("referrer-policy") == ["strict-origin-when-cross-origin"]


def test_cookies_are_secure_whenever_the_base_url_is_https(ctx, demo) -> None:  # type: ignore[no-untyped-def]
    ctx.settings.base_url = "https://konsent.example"
    ctx.settings.secure_cookies = False
    with TestClient(create_app(ctx), base_url="https://testserver") as c:
        r = c.get("/admin/login")
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("secure" in v.lower() for v in cookies)
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_no_hsts_and_no_secure_flag_on_a_plain_http_installation(client, demo) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/admin/login")
    assert "strict-transport-security" not in r.headers
    assert all("secure" not in v.lower() for v in r.headers.get_list("set-cookie"))


def test_an_oversized_chunked_body_gets_413_without_a_traceback(client, demo, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b"x" * 100_000

    for path in ("/webhooks/abc", "/api/public/v1/widget/demo/optin"):
        r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, path
    assert [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR] == []
