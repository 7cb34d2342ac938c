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
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from konsent.channels import media as out_media
from konsent.channels import meta, register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
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
from konsent.domain.events import (
    Event,
    InboundMessage,
    MarketingPreference,
    ReachabilityChange,
    StatusUpdate,
    UnknownEvent,
)

GRAPH_BASE = "https://graph.facebook.com/v21.0"
D360_BASE = "https://waba-v2.360dialog.io"
TEMPLATE_FIELDS = "name,language,status,category,components"
MAX_TEMPLATE_PAGES = 20
D360_DEFAULT_HEADER = "x-konsent-webhook-token"
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}
_PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")
MAX_BUTTON_TITLE = 20
MAX_MEDIA_BYTES = 100 * 1024 * 1024  # WhatsApp's largest media type (documents) is 100 MB
META_MEDIA_HOSTS = (".fbsbx.com", ".facebook.com", ".whatsapp.net")

CAPABILITIES = Capabilities(
    service_window_hours=24,
    templates=True,
    buttons=True,
    max_buttons=3,
    max_text_len=4096,
    throughput_per_s=80.0,
    per_contact_interval_s=6.0,  # the pair rate limit (131056) ...
    per_contact_burst=45,  # ... with its documented burst
    media_kinds=frozenset({"image", "document", "video", "audio"}),
    max_caption_len=1024,
    captioned_kinds=frozenset({"image", "document", "video"}),  # audio messages have no caption
    processing_region="Meta Platforms Ireland Ltd.; transfers to Meta Platforms Inc., USA",
    safeguard="EU-US Data Privacy Framework (Meta is certified) and standard contractual clauses",
)


def phone_address(digits: str) -> str:
    """WhatsApp sends digits without `+`; konsent keeps E.164."""
    return digits if digits.startswith("+") else "+" + digits


def is_phone(address: str) -> bool:
    return bool(_PHONE_RE.match(address))


def _contact_index(value: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """wa_id or BSUID → (profile name, BSUID) from `value.contacts[]`."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for c in meta.as_list(value.get("contacts"), "contacts"):
        c = meta.as_dict(c, "contact")
        profile = meta.as_dict(c.get("profile"), "profile")
        name = meta.text_of(profile.get("name"), 200) or None
        uid = meta.opt_ident(c.get("user_id"), "user_id")
        wa_id = meta.opt_ident(c.get("wa_id"), "wa_id")
        for key in (wa_id, uid):
            if key:
                out[key] = (name, uid)
    return out


def _message(
    m: dict[str, Any], contacts: dict[str, tuple[str | None, str | None]], account_ref: str | None
) -> Event:
    wamid = meta.ident(m.get("id"), "message id")
    sender = meta.opt_ident(m.get("from"), "from")
    from_uid = meta.opt_ident(m.get("from_user_id"), "from_user_id")
    name, uid = contacts.get(sender or "", contacts.get(from_uid or "", (None, None)))
    uid = uid or from_uid
    if sender:
        address = phone_address(sender)
    elif uid:
        address = uid
    else:
        raise ValueError("a message without sender")
    at = meta.timestamp(m.get("timestamp"))
    mtype = m.get("type")
    common: dict[str, Any] = {
        "provider_id": wamid,
        "address": address,
        "at": at,
        "profile_name": name,
        "user_id": uid,
        "account_ref": account_ref,
    }
    if mtype == "text":
        body = meta.as_dict(m.get("text"), "text")
        return InboundMessage(text=meta.text_of(body.get("body")), **common)
    if mtype == "interactive":
        inter = meta.as_dict(m.get("interactive"), "interactive")
        itype = inter.get("type")
        if itype in ("button_reply", "list_reply"):
            reply = meta.as_dict(inter.get(itype), itype)
            return InboundMessage(
                text=meta.text_of(reply.get("title"), 200),
                kind="button",
                payload=meta.text_of(reply.get("id"), 256),
                **common,
            )
        return UnknownEvent(kind=meta.kind_label("interactive", itype), provider_id=wamid)
    if mtype == "button":  # quick-reply button of a template
        button = meta.as_dict(m.get("button"), "button")
        return InboundMessage(
            text=meta.text_of(button.get("text"), 200),
            kind="button",
            payload=meta.text_of(button.get("payload"), 256),
            **common,
        )
    if mtype in MEDIA_TYPES:
        media = meta.as_dict(m.get(mtype), str(mtype))
        return InboundMessage(
            text=meta.text_of(media.get("caption")),
            kind="media",
            media_ref=meta.ident(media.get("id"), "media id"),
            **common,
        )
    return UnknownEvent(kind=meta.kind_label("message", mtype), provider_id=wamid)


def _status(s: dict[str, Any], account_ref: str | None) -> list[Event]:
    wamid = meta.ident(s.get("id"), "status id")
    status = STATUSES.get(str(s.get("status")))
    if status is None:
        return [UnknownEvent(kind=meta.kind_label("status", s.get("status")), provider_id=wamid)]
    at = meta.timestamp(s.get("timestamp"))
    rid = meta.opt_ident(s.get("recipient_id"), "recipient_id")
    ruid = meta.opt_ident(s.get("recipient_user_id"), "recipient_user_id")
    address = phone_address(rid) if rid else ruid
    code = title = None
    errors = meta.as_list(s.get("errors"), "errors")
    if errors:
        first = meta.as_dict(errors[0], "error")
        code = meta.text_of(str(first.get("code", "")), 20) or None
        title = meta.text_of(first.get("title") or first.get("message"), 200) or None
    events: list[Event] = [
        StatusUpdate(
            wamid, status, at, error_code=code, error_title=title, address=address, account_ref=account_ref
        )
    ]
    # Failures that WhatsApp reports late say something about the contact, not only the message.
    if status == "failed" and address and code == "131026":
        events.append(
            ReachabilityChange(address, False, at, provider_id=f"{wamid}:131026", account_ref=account_ref)
        )
    if status == "failed" and address and code == "131050":
        events.append(
            MarketingPreference(
                address, True, at, provider_id=f"{wamid}:131050", user_id=ruid, account_ref=account_ref
            )
        )
    return events


def _preference(
    account: AccountConfig,
    p: dict[str, Any],
    contacts: dict[str, tuple[str | None, str | None]],
    account_ref: str | None,
) -> Event:
    value = p.get("value")
    wa_id = meta.opt_ident(p.get("wa_id"), "wa_id")
    uid = meta.opt_ident(p.get("user_id"), "user_id") or contacts.get(wa_id or "", (None, None))[1]
    if value not in ("stop", "resume") or p.get("category", "marketing_messages") != "marketing_messages":
        return UnknownEvent(kind=meta.kind_label("preference", value))
    address = phone_address(wa_id) if wa_id else uid
    if not address:
        raise ValueError("a preference without contact")
    ts = meta.text_of(str(p.get("timestamp", "")), 20)
    return MarketingPreference(
        address=address,
        stop=value == "stop",
        at=meta.timestamp(p.get("timestamp")),
        provider_id=meta.digest(account, "pref", address, value, ts),  # no number in plain text at rest
        user_id=uid,
        account_ref=account_ref,
    )


def parse_cloud_payload(account: AccountConfig, body: bytes) -> list[Event]:
    """Every message, status, preference and error of one Cloud API delivery (CH2)."""
    data = meta.load_json(body)
    if data.get("object") != "whatsapp_business_account":
        return [UnknownEvent(kind=meta.kind_label("object", data.get("object")))]
    own = str(account.settings.get("phone_number_id") or "")
    events: list[Event] = []
    for entry in meta.as_list(data.get("entry"), "entry"):
        entry = meta.as_dict(entry, "entry")
        for change in meta.as_list(entry.get("changes"), "changes"):
            change = meta.as_dict(change, "change")
            field = change.get("field")
            value = meta.as_dict(change.get("value"), "value")
            metadata = meta.as_dict(value.get("metadata"), "metadata")
            ref = meta.opt_ident(metadata.get("phone_number_id"), "phone_number_id")
            if own and ref and ref != own:
                # One Meta app may post every number's events here; another number's are not ours.
                events.append(UnknownEvent(kind="foreign_phone_number_id"))
                continue
            if field == "messages":
                contacts = _contact_index(value)
                for m in meta.as_list(value.get("messages"), "messages"):
                    events.append(_message(meta.as_dict(m, "message"), contacts, ref))
                for s in meta.as_list(value.get("statuses"), "statuses"):
                    events.extend(_status(meta.as_dict(s, "status"), ref))
                for e in meta.as_list(value.get("errors"), "errors"):
                    e = meta.as_dict(e, "error")
                    events.append(UnknownEvent(kind=meta.kind_label("error", e.get("code"))))
            elif field == "user_preferences":
                contacts = _contact_index(value)
                for p in meta.as_list(value.get("user_preferences"), "user_preferences"):
                    events.append(_preference(account, meta.as_dict(p, "preference"), contacts, ref))
            else:
                events.append(UnknownEvent(kind=meta.kind_label("field", field)))
    return events


def message_body(address: str, content: OutboundContent) -> dict[str, Any]:
    """The Cloud API send body: text, reply buttons or a template with body variables (CH3)."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if is_phone(address):
        body["to"] = address
    else:
        body["recipient"] = address  # a contact known only by their BSUID
    if content.template:
        template: dict[str, Any] = {
            "name": content.template,
            "language": {"code": content.template_language or "de"},
        }
        if content.template_params:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in content.template_params]}
            ]
        body.update(type="template", template=template)
    elif content.media_url:
        body.update(out_media.whatsapp(content))
    elif content.buttons:
        body.update(
            type="interactive",
            interactive={
                "type": "button",
                "body": {"text": content.text[:1024]},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": b.id[:256], "title": b.title[:MAX_BUTTON_TITLE]}}
                        for b in content.buttons[: CAPABILITIES.max_buttons]
                    ]
                },
            },
        )
    else:
        body.update(type="text", text={"preview_url": False, "body": content.text})
    return body


def _result(body: Any) -> SendResult:
    try:
        wamid = body["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return SendResult(SendOutcome.UNKNOWN, error_code="bad_response", error_text="no message id")
    return SendResult(SendOutcome.SENT, provider_id=str(wamid)[: meta.MAX_ID_LEN])


def _wa_link(account: AccountConfig, prefill: str) -> str:
    digits = re.sub(r"\D", "", str(account.settings.get("display_phone_number", "")))
    return f"https://wa.me/{digits}?text={quote(prefill, safe='')}"


class _WhatsAppBase(ChannelAdapter):
    capabilities = CAPABILITIES

    def __init__(self) -> None:
        self._http = meta.GraphClient()

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
        failure, body = await self._http.post_json(
            url, message_body(address, content), headers=headers, timeout_s=meta.timeout_of(account)
        )
        return failure or _result(body)

    async def close(self) -> None:
        await self._http.close()

    def _api_base(self, account: AccountConfig) -> str:
        raise NotImplementedError

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
        SetupField("api_base", "Graph API base URL", required=False, help=GRAPH_BASE),
        SetupField(
            "waba_id",
            "WhatsApp Business Account ID",
            required=False,
            help="Only for fetching message templates: WhatsApp Manager → Account tools",
        ),
    )

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        meta.verify_signature(account.secrets.get("app_secret", ""), request)
        meta.require_json(request)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> str | None:
        return meta.hub_challenge(account, request)

    def _api_base(self, account: AccountConfig) -> str:
        return str(account.settings.get("api_base") or GRAPH_BASE).rstrip("/")

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
        SetupField("api_base", "360dialog base URL", required=False, help=D360_BASE),
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

    def _api_base(self, account: AccountConfig) -> str:
        return str(account.settings.get("api_base") or D360_BASE).rstrip("/")

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
