"""WhatsApp through Meta's Cloud API and through 360dialog: same payloads, other door (CH1-CH4).

Both kinds parse the same webhook JSON and send the same message bodies; they
differ in the base URL, the send path (360dialog has no phone-number id in it),
the auth header, and how an inbound webhook proves where it comes from (Meta:
X-Hub-Signature-256 with the app secret; 360dialog: a custom header we register).

Contacts: since 2026 a webhook may carry only the business-scoped user id (BSUID,
`US.1349…`) and no phone number. The contact's address is then the BSUID, and
`user_id` is set on every event that has one, so a contact is found by either.
Phone numbers are kept as E.164 with `+`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from konsent.channels import media as out_media
from konsent.channels import meta, register
from konsent.channels.base import (
    AccountConfig,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    SetupField,
    SetupOutcome,
    TemplateFetch,
    WebhookRejected,
    WebhookRequest,
)
from konsent.channels.transport import Provider, Transport, default_transport
from konsent.channels.whatsapp_payload import (
    CAPABILITIES,
    message_body,
    parse_cloud_payload,
)
from konsent.domain.events import Event

GRAPH_BASE = "https://graph.facebook.com/v21.0"
D360_BASE = "https://waba-v2.360dialog.io"
TEMPLATE_FIELDS = "name,language,status,category,components"
MAX_TEMPLATE_PAGES = 20
D360_DEFAULT_HEADER = "x-konsent-webhook-token"
MAX_MEDIA_BYTES = 100 * 1024 * 1024  # WhatsApp's largest media type (documents) is 100 MB
META_MEDIA_HOSTS = (".fbsbx.com", ".facebook.com", ".whatsapp.net")


def _result(body: Any) -> SendResult:
    try:
        wamid = body["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return SendResult(SendOutcome.UNKNOWN, error_code="bad_response", error_text="no message id")
    return SendResult(SendOutcome.SENT, provider_id=str(wamid)[: meta.MAX_ID_LEN])


MARKETING_MESSAGES_SETTING = "marketing_messages"


def marketing_route(account: AccountConfig, content: OutboundContent) -> bool:
    """A MARKETING template goes through the Marketing Messages API where the account is enabled
    for it (its setting); everything else, and every account without it, through /messages (T4)."""
    enabled = str(account.settings.get(MARKETING_MESSAGES_SETTING) or "").strip().lower() in (
        "yes",
        "ja",
        "true",
    )
    return enabled and bool(content.template) and (content.template_category or "").upper() == "MARKETING"


def _wa_link(account: AccountConfig, prefill: str) -> str:
    digits = re.sub(r"\D", "", str(account.settings.get("display_phone_number", "")))
    return f"https://wa.me/{digits}?text={quote(prefill, safe='')}"


class _WhatsAppBase(ChannelAdapter):
    capabilities = CAPABILITIES

    provider: ClassVar[Provider]

    def __init__(self, transport: Transport | None = None) -> None:
        self._http = meta.GraphClient(transport or default_transport(), self.provider)

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        return parse_cloud_payload(account, body)

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        return _wa_link(account, prefill or code)

    def _url_and_headers(self, account: AccountConfig) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        refused = out_media.refusal(content, self.capabilities) if content.media_url else None
        if refused:
            return refused
        url, headers = self._url_and_headers(account)
        if marketing_route(account, content):
            url = url.removesuffix("/messages") + "/marketing_messages"
        failure, body = await self._http.post_json(
            url, message_body(address, content), headers=headers, timeout_s=meta.timeout_of(account)
        )
        return failure or _result(body)

    def _api_base(self, account: AccountConfig) -> str:
        return self._http.base(account)

    def _download_url(self, account: AccountConfig, url: str) -> str | None:
        raise NotImplementedError

    async def fetch_media(self, account: AccountConfig, media_ref: str) -> tuple[bytes, str] | None:
        """Download an inbound media file when someone opens it; until then it stays a reference (CH2)."""
        _, headers = self._url_and_headers(account)
        timeout = meta.timeout_of(account, 30.0)
        base = self._api_base(account)
        info = await self._http.get(
            f"{base}/{quote(media_ref, safe='')}", headers=headers, timeout_s=timeout, max_bytes=64_000
        )
        if info is None or info[0] != 200:
            return None
        try:
            described = json.loads(info[1])
            url, mime = str(described["url"]), str(described.get("mime_type") or "")
        except (ValueError, KeyError, TypeError):
            return None
        target = self._download_url(account, url)
        if target is None:
            return None
        got = await self._http.get(target, headers=headers, timeout_s=timeout, max_bytes=MAX_MEDIA_BYTES)
        if got is None or got[0] != 200:
            return None
        return got[1], mime or got[2]


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


@register
class WhatsAppCloudChannel(_WhatsAppBase):
    """WhatsApp Business Cloud API, directly at Meta."""

    kind = "whatsapp"
    label = "WhatsApp (Cloud API)"
    provider = meta.graph_provider("whatsapp", GRAPH_BASE, meta.GRAPH_HOSTS | set(META_MEDIA_HOSTS))
    setup_fields = (
        SetupField(
            "phone_number_id",
            "Phone number ID",
            help="WhatsApp Manager → API Setup",
            pattern=r"\d{5,30}",
            pattern_hint="digits only, as shown in WhatsApp Manager",
        ),
        SetupField(
            "display_phone_number",
            "Phone number (international, digits)",
            help="e.g. 4930123456",
            pattern=r"\+?\d{6,15}",
            pattern_hint="6 to 15 digits with the country code, e.g. 4930123456",
        ),
        SetupField("access_token", "Access token (system user)", secret=True),
        SetupField("app_secret", "App secret", secret=True, help="App Dashboard → Settings → Basic"),
        SetupField("verify_token", "Verify token", secret=True, help="Any random string; enter it at Meta"),
        SetupField(
            "waba_id",
            "WhatsApp Business Account ID",
            required=False,
            help="Only for fetching message templates: WhatsApp Manager → Account tools",
        ),
        SetupField(
            MARKETING_MESSAGES_SETTING,
            "Marketing Messages API enabled (yes/no)",
            required=False,
            help="yes: MARKETING templates are sent through /marketing_messages (WhatsApp Manager → "
            "Marketing Messages API onboarding); everything else through /messages",
            pattern=r"yes|no|ja|nein",
            pattern_hint="yes or no",
        ),
    )

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        meta.verify_signature(account.secrets.get("app_secret", ""), request)
        meta.require_json(request)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> str | None:
        return meta.hub_challenge(account, request)

    def _url_and_headers(self, account: AccountConfig) -> tuple[str, dict[str, str]]:
        base = self._api_base(account)
        phone_id = str(account.settings.get("phone_number_id", ""))
        token = account.secrets.get("access_token", "")
        return f"{base}/{quote(phone_id, safe='')}/messages", {"Authorization": f"Bearer {token}"}

    def _download_url(self, account: AccountConfig, url: str) -> str | None:
        # The bearer token goes along: only ever to Meta's media hosts (or the configured API origin).
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme == "https" and host.endswith(META_MEDIA_HOSTS):
            return url
        return url if _same_origin(url, self._url_and_headers(account)[0]) else None

    async def fetch_templates(self, account: AccountConfig) -> TemplateFetch:
        """`GET /<WABA_ID>/message_templates` of the Business Management API, page by page (M1)."""
        waba = str(account.settings.get("waba_id") or "").strip()
        if not waba.isdigit():
            return TemplateFetch([], "no_account_id")
        base = self._api_base(account)
        headers = {"Authorization": f"Bearer {account.secrets.get('access_token', '')}"}
        url = f"{base}/{waba}/message_templates?fields={TEMPLATE_FIELDS}&limit=100"
        items: list[dict[str, Any]] = []
        for _ in range(MAX_TEMPLATE_PAGES):
            got = await self._http.get(
                url, headers=headers, timeout_s=meta.timeout_of(account, 30.0), max_bytes=5_000_000
            )
            if got is None:
                return TemplateFetch([], "unreachable")
            if got[0] != 200:
                return TemplateFetch([], "refused")
            try:
                page = json.loads(got[1])
                data = page["data"]
                assert isinstance(data, list)
            except (ValueError, KeyError, TypeError, AssertionError):
                return TemplateFetch([], "bad_answer")
            items += data
            following = (page.get("paging") or {}).get("next")
            # The token goes along only to the same API origin.
            if not isinstance(following, str) or not _same_origin(following, url):
                break
            url = following
        return TemplateFetch(items)


@register
class Dialog360Channel(_WhatsAppBase):
    """WhatsApp through the BSP 360dialog: Meta's payloads, 360dialog's URL, key and webhook header."""

    kind = "dialog360"
    label = "WhatsApp (360dialog)"
    provider = meta.graph_provider("dialog360", D360_BASE, frozenset({"waba-v2.360dialog.io"}))
    registers_webhook = True
    capabilities = dataclasses.replace(
        CAPABILITIES,
        processing_region=(
            "360dialog GmbH, Germany; Meta Platforms Ireland Ltd.; transfers to Meta Platforms Inc., USA"
        ),
    )
    setup_fields = (
        SetupField("display_phone_number", "Phone number (international, digits)", help="e.g. 4930123456"),
        SetupField("phone_number_id", "Phone number ID", required=False),
        SetupField("api_key", "360dialog API key", secret=True, help="360dialog Hub → API key"),
        SetupField("webhook_header_name", "Webhook header name", required=False, help=D360_DEFAULT_HEADER),
        SetupField("webhook_header_value", "Webhook header value", secret=True, help="A long random string"),
        SetupField("verify_token", "Verify token", secret=True, required=False),
    )

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        name = str(account.settings.get("webhook_header_name") or D360_DEFAULT_HEADER).lower()
        expected = account.secrets.get("webhook_header_value", "")
        given = request.headers.get(name, "")
        if not given:
            raise WebhookRejected(401, "missing webhook header")
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            raise WebhookRejected(403, "webhook header mismatch")
        meta.require_json(request)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> str | None:
        # 360dialog documents no handshake; answer Meta's only when a verify token is configured.
        return meta.hub_challenge(account, request)

    def _url_and_headers(self, account: AccountConfig) -> tuple[str, dict[str, str]]:
        base = self._api_base(account)
        return f"{base}/messages", {"D360-API-KEY": account.secrets.get("api_key", "")}

    def _download_url(self, account: AccountConfig, url: str) -> str | None:
        # 360dialog proxies Meta's media host: same path and query, on 360dialog's base URL.
        base = urlsplit(self._api_base(account))
        parts = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))

    async def register_webhook(self, account: AccountConfig, url: str) -> SetupOutcome:
        """Point 360dialog's webhook for this number at `url`, with our secret header (dialog360.md §2)."""
        base = self._api_base(account)
        name = str(account.settings.get("webhook_header_name") or D360_DEFAULT_HEADER)
        failure, _ = await self._http.post_json(
            f"{base}/v1/configs/webhook",
            {"url": url, "headers": {name: account.secrets.get("webhook_header_value", "")}},
            headers={"D360-API-KEY": account.secrets.get("api_key", "")},
            timeout_s=meta.timeout_of(account),
        )
        if failure is None:
            return SetupOutcome(True)
        reached = failure.outcome not in (SendOutcome.TRANSIENT, SendOutcome.UNKNOWN)
        return SetupOutcome(False, "refused" if reached else "unreachable", failure.error_text[:200])
