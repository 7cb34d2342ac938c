"""SSRF: adapters call only their provider's hosts, never internal addresses (#13 finding 1, S3).

Each target kind of the finding has its own test; each fails when the rule in
`channels.urlguard` / `channels.transport` is removed. An "internal service" here is a
plain HTTP server on 127.0.0.1 that counts the requests it gets: a blocked call never
reaches it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from konsent import channels
from konsent.channels import urlguard
from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome, SetupOutcome, clean_text
from konsent.channels.telegram import TelegramChannel
from konsent.channels.threema import ThreemaChannel
from konsent.channels.transport import Policy, Provider, Transport
from konsent.channels.urlguard import BlockedUrl, GuardedResolver, address_allowed, url_problem
from konsent.channels.whatsapp import Dialog360Channel, WhatsAppCloudChannel

STRICT = Policy()  # what an installation runs with unless the operator says otherwise
TRUSTING = Policy(account_base_urls=True)  # account base URLs honoured, private addresses still not


class Internal:
    """An internal HTTP service: answers every request with a secret, counts them."""

    def __init__(self) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits += 1
                body = json.dumps(
                    {"url": "http://127.0.0.1/x", "data": [{"name": "internal-secret"}], "error": "<b>x</b>"}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def internal() -> Iterator[Internal]:
    svc = Internal()
    svc.thread.start()
    yield svc
    svc.server.shutdown()
    svc.server.server_close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _call(transport: Transport, url: str) -> Any:
    provider = Provider("whatsapp", "https://graph.facebook.com/v21.0", frozenset({"graph.facebook.com"}))
    try:
        return await transport.call(provider, "GET", url, timeout_s=3.0)
    finally:
        await transport.close()


# --- the rule, one target kind at a time ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://192.168.0.1/",
        "https://localhost/",
        "file:///etc/passwd",
        "http://graph.facebook.com/",
        "ftp://graph.facebook.com/",
    ],
)
def test_internal_and_non_https_targets_are_refused_without_the_operator_setting(url: str) -> None:
    assert url_problem(url, allow_private=False) != ""


def test_https_to_a_public_host_or_address_is_allowed() -> None:
    assert url_problem("https://graph.facebook.com/v21.0/123/messages", allow_private=False) == ""
    assert url_problem("https://8.8.8.8/", allow_private=False) == ""
    assert address_allowed("2a03:2880:f12f:83:face:b00c:0:25de", False)


def test_the_operator_setting_allows_http_and_private_addresses_but_never_other_schemes() -> None:
    assert url_problem("http://127.0.0.1:9/", allow_private=True) == ""
    assert url_problem("https://10.1.2.3/", allow_private=True) == ""
    assert url_problem("file:///etc/passwd", allow_private=True) != ""


@pytest.mark.parametrize("target", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fd00::1"])
def test_a_literal_internal_address_is_never_called(internal: Internal, target: str) -> None:
    host = f"[{target}]" if ":" in target else target
    with pytest.raises(BlockedUrl):
        run(_call(Transport(TRUSTING), f"https://{host}:{internal.port}/x"))
    assert internal.hits == 0


def test_http_is_never_called_without_the_operator_setting(internal: Internal) -> None:
    with pytest.raises(BlockedUrl):
        run(_call(Transport(TRUSTING), f"{internal.url}/x"))
    assert internal.hits == 0
    # with it, the same call goes out (tests and fakes rely on this)
    reply = run(_call(Transport(Policy(allow_private=True, account_base_urls=True)), f"{internal.url}/x"))
    assert reply.status == 200 and internal.hits == 1


class _Pinned(AbstractResolver):
    """A DNS answer the test chooses: every name resolves to 127.0.0.1 (rebinding, split DNS)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


def test_a_host_name_resolving_to_loopback_is_refused_at_connect_time(
    internal: Internal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolver checks every address it returns, for every connection (redirects, rebinding)."""
    monkeypatch.setattr(urlguard, "DefaultResolver", _Pinned)
    lenient_tls = Policy(allow_private=False, account_base_urls=True)
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        run(_call(Transport(lenient_tls), f"https://internal.example:{internal.port}/x"))
    assert isinstance(caught.value.os_error, BlockedUrl)
    assert internal.hits == 0


def test_the_guarded_resolver_passes_public_answers_through() -> None:
    class Public(_Pinned):
        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):  # type: ignore[no-untyped-def,override]
            return [dict(r, host="157.240.0.35") for r in await super().resolve(host, port, family)]

    found = run(GuardedResolver(False, Public()).resolve("graph.facebook.com", 443))
    assert [r["host"] for r in found] == ["157.240.0.35"]
    with pytest.raises(BlockedUrl):
        run(GuardedResolver(False, _Pinned()).resolve("graph.facebook.com", 443))


def test_redirects_are_not_followed(internal: Internal) -> None:
    """A provider that answers 302 to an internal URL gets its 302 back, nothing more."""
    svc = Internal()

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{internal.url}/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    svc.server.RequestHandlerClass = Redirect
    svc.thread.start()
    try:
        reply = run(_call(Transport(Policy(allow_private=True, account_base_urls=True)), f"{svc.url}/"))
    finally:
        svc.server.shutdown()
        svc.server.server_close()
    assert reply.status == 302 and internal.hits == 0


# --- the base URL is the operator's, not the tenant admin's ----------------------------------------


def test_no_channel_form_asks_a_tenant_admin_for_a_base_url() -> None:
    for kind in channels.kinds():
        names = {f.name for f in channels.adapter_class(kind).setup_fields}
        assert not {"api_base", "base_url"} & names, kind


def test_a_stored_account_base_url_is_ignored_unless_the_operator_allows_it(internal: Internal) -> None:
    acc = AccountConfig(1, "whatsapp", {"api_base": internal.url, "phone_number_id": "1"}, {})
    strict = WhatsAppCloudChannel(Transport(STRICT))
    assert strict._api_base(acc) == "https://graph.facebook.com/v21.0"
    operator = Transport(Policy(base_urls={"whatsapp": "https://wa-proxy.example.org/v21.0"}))
    assert WhatsAppCloudChannel(operator)._api_base(acc) == "https://wa-proxy.example.org/v21.0"
    assert WhatsAppCloudChannel(Transport(TRUSTING))._api_base(acc) == internal.url


def test_a_provider_may_call_only_its_documented_hosts_and_the_operators_base() -> None:
    provider = Provider("telegram", "https://api.telegram.org", frozenset({"api.telegram.org"}))
    strict = Transport(STRICT)
    assert strict.problem(provider, "https://api.telegram.org/botX/sendMessage") == ""
    assert strict.problem(provider, "https://graph.facebook.com/x") != ""
    operator = Transport(Policy(base_urls={"telegram": "https://bot-api.example.org"}))
    assert operator.problem(provider, "https://bot-api.example.org/botX/sendMessage") == ""
    assert operator.problem(provider, "https://evil.example.org/botX/sendMessage") != ""


# --- the paths of the finding, each with an internal base ----------------------------------------


def test_media_download_from_an_internal_base_fetches_nothing(internal: Internal) -> None:
    """Finding 1: GET /api/v1/messages/{id}/media returned the internal service's bytes."""
    adapter = WhatsAppCloudChannel(Transport(TRUSTING))
    acc = AccountConfig(
        1, "whatsapp", {"api_base": internal.url, "phone_number_id": "1"}, {"access_token": "t"}
    )
    assert run(adapter.fetch_media(acc, "media-1")) is None
    assert internal.hits == 0


def test_template_sync_from_an_internal_base_stores_nothing(internal: Internal) -> None:
    adapter = WhatsAppCloudChannel(Transport(TRUSTING))
    acc = AccountConfig(1, "whatsapp", {"api_base": internal.url, "waba_id": "42"}, {"access_token": "t"})
    fetched = run(adapter.fetch_templates(acc))
    assert fetched.items == [] and fetched.error == "unreachable"
    assert internal.hits == 0


def test_webhook_registration_at_an_internal_base_echoes_nothing(internal: Internal) -> None:
    adapter = Dialog360Channel(Transport(TRUSTING))
    acc = AccountConfig(
        1, "dialog360", {"api_base": internal.url}, {"api_key": "k", "webhook_header_value": "v"}
    )
    outcome = run(adapter.register_webhook(acc, "https://konsent.example/webhooks/abc"))
    assert not outcome.ok and "internal-secret" not in outcome.detail
    tg = TelegramChannel(transport=Transport(TRUSTING))
    tg_acc = AccountConfig(
        2, "telegram", {"api_base": internal.url}, {"bot_token": "1:x", "secret_token": "s"}
    )
    outcome = run(tg.register_webhook(tg_acc, "https://konsent.example/webhooks/abc"))
    assert not outcome.ok
    assert internal.hits == 0


def test_a_send_to_an_internal_base_is_a_permanent_blocked_url(internal: Internal) -> None:
    adapter = TelegramChannel(transport=Transport(TRUSTING))
    acc = AccountConfig(1, "telegram", {"api_base": internal.url}, {"bot_token": "1:x"})
    result = run(adapter.send(acc, "12345", OutboundContent(text="Hi")))
    assert (result.outcome, result.error_code) == (SendOutcome.PERMANENT, "blocked_url")
    assert internal.hits == 0


def test_a_threema_file_base_opens_no_local_file(tmp_path: Any) -> None:
    """Finding 1: a Threema account with a file:// base read local files."""
    secret_file = tmp_path / "passwd"
    secret_file.write_text("0" * 64)
    adapter = ThreemaChannel(transport=Transport(Policy(allow_private=True, account_base_urls=True)))
    acc = AccountConfig(
        1,
        "threema",
        {"gateway_id": "*KONSENT", "api_base": f"file://{tmp_path}"},
        {"api_secret": "s", "private_key": "11" * 32},
    )
    result = run(adapter.send(acc, "ECHOECHO", OutboundContent(text="Hi")))
    assert result.outcome is SendOutcome.PERMANENT and result.error_code == "blocked_url"


def test_provider_error_text_shown_to_admins_is_short_plain_text() -> None:
    raw = "<html><body><h1>Internal</h1>" + "A" * 5000 + "<script>x()</script>\x00\ud800</body></html>"
    shown = SetupOutcome(False, "refused", raw).detail
    assert "<" not in shown and ">" not in shown and "\x00" not in shown and "\ud800" not in shown
    assert len(shown) <= 400
    assert clean_text("Bad Request: chat not found") == "Bad Request: chat not found"


def test_every_adapter_of_a_process_shares_one_transport(ctx: Any) -> None:
    kinds = ("whatsapp", "dialog360", "messenger", "instagram", "telegram", "threema", "threema_basic")
    transports = set()
    for kind in kinds:
        adapter = ctx.adapter(kind)
        transports.add(id(getattr(adapter, "_transport", None) or adapter._http.transport))
    assert transports == {id(ctx.transport())}
