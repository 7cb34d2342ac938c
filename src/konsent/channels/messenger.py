"""Facebook Messenger and Instagram Messaging: Meta's Messenger Platform (CH1-CH4).

Both receive `messaging[]` webhooks signed with the app secret and send through
`POST /{page-id}/messages` with the Page access token. The contact's address is
the page-scoped id (PSID) or Instagram-scoped id (IGSID).

Opt-in codes arrive out of band: an m.me / ig.me link with `?ref=KS…` produces a
`referral` event (existing conversation) or a Get Started `postback.referral`
(new conversation); both become an InboundMessage with `optin_code`.

Watermarks: Messenger reports reads only as a `watermark` (ms timestamp: every
message sent at or before it was read) and deliveries with a `watermark` and
sometimes `mids`. Each named mid becomes a StatusUpdate; each valid watermark a
StatusWatermark, which the flows apply to every message of that contact on this
account sent up to it. Instagram may name the read message (`read.mid`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from konsent.channels import interactive as out_interactive
from konsent.channels import media, messenger_kinds, meta, register
from konsent.channels.base import (
    REF_PREFIX,
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
    SetupField,
    WebhookRequest,
)
from konsent.channels.outcomes import Row, Table, codes
from konsent.channels.transport import Provider, Transport, default_transport
from konsent.domain import optin
from konsent.domain.events import (
    Event,
    InboundMessage,
    MarketingPreference,
    StatusUpdate,
    StatusWatermark,
    UnknownEvent,
)

GRAPH_BASE = "https://graph.facebook.com/v21.0"
MAX_QUICK_REPLIES = 13
# A list goes out as quick replies (titles up to 20 characters, no descriptions); a link button as a
# button template with one web_url button (its text up to 640 characters).
INTERACTIVE: dict[str, Any] = {
    "max_list_rows": 10,
    "max_list_title": 20,
    "list_descriptions": False,
    "link_buttons": True,
    "max_link_text": 640,
}
REGION = "Meta Platforms Ireland Ltd.; transfers to Meta Platforms Inc., USA"
SAFEGUARD = "EU-US Data Privacy Framework (Meta is certified) and standard contractual clauses"


# The Send API's answers for Messenger and Instagram, first matching row decides
# (messenger-instagram.md §4, §5); docs/channels/messenger.md lists every code.
_RETRY = SendOutcome.RETRY_AFTER
HUMAN_AGENT_WINDOW = (
    "window closed: after 24 hours only an agent's reply with the HUMAN_AGENT tag, within 7 days"
)
MESSENGER_ERRORS: Table = (
    Row(_RETRY, codes=codes(613), retry_s=60.0),  # too many calls (also 613/2534040, excessive tags 2018338)
    Row(_RETRY, codes=codes(4), retry_s=60.0),  # application request limit
    Row(_RETRY, statuses=frozenset({429}), retry_s=1.0),
    # the 24-hour standard messaging window is closed (Instagram: 2534022; "person not available
    # right now": 1545041, also under 551 and 200)
    Row(
        SendOutcome.WINDOW_CLOSED,
        codes=codes(10, 200, 551, None),
        subcodes=frozenset({2018278, 2534022, 2018065, 1545041}),
        error_text=HUMAN_AGENT_WINDOW,
    ),
    Row(SendOutcome.UNREACHABLE, codes=codes(551)),  # the person blocked the Page / is not reachable
    Row(SendOutcome.PERMANENT, codes=codes(10), subcodes=frozenset({1893063})),  # Page restricted
    Row(SendOutcome.TRANSIENT, codes=codes(1, 2, 1200)),  # temporary send failure
    Row(SendOutcome.TRANSIENT, min_status=500),
    Row(SendOutcome.TRANSIENT, flag="is_transient"),
    Row(SendOutcome.PERMANENT),  # 100 (bad parameter, retired tags), 190 (token), 200 (permission) …
)


def _code(ref: Any) -> str | None:
    """The konsent opt-in code inside a ref parameter, if it is one."""
    return optin.find_code(ref) if isinstance(ref, str) else None


# A watermark before 2000 or in the future is not one Meta sends; it must not mark anything.
_MIN_WATERMARK_MS = 946_684_800_000


def watermark(value: Any) -> datetime | None:
    """A `watermark` (ms since the epoch) as aware UTC, or None when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not _MIN_WATERMARK_MS <= value <= (time.time() + 300) * 1000:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _one(account: AccountConfig, obj: str, page_id: str, m: dict[str, Any]) -> Event | list[Event]:
    sender = meta.ident(meta.as_dict(m.get("sender"), "sender").get("id"), "sender id")
    at = meta.timestamp(m.get("timestamp"), millis=True)
    common: dict[str, Any] = {"address": sender, "at": at, "account_ref": page_id}
    if "message" in m:
        msg = meta.as_dict(m["message"], "message")
        mid = meta.ident(msg.get("mid"), "mid")
        if msg.get("is_echo") or sender == page_id:
            ref = meta.text_of(msg.get("metadata"), 1000) if isinstance(msg.get("metadata"), str) else ""
            if ref.startswith(
                REF_PREFIX
            ):  # our reference echoed: the send is confirmed, even if its answer was lost (#14)
                return StatusUpdate(mid, "sent", at, account_ref=page_id, ref=ref[:64])
            return UnknownEvent(kind="echo", provider_id=mid)  # our own message coming back
        if msg.get("is_deleted") or msg.get("is_unsupported"):  # kept and shown as such (CH5)
            parsed = messenger_kinds.deleted_or_unsupported(msg, mid)
            return InboundMessage(
                provider_id=f"{parsed.kind}:{mid}", **messenger_kinds.fields(parsed), **common
            )
        text = meta.text_of(msg.get("text"))
        quick = meta.as_dict(msg.get("quick_reply"), "quick_reply")
        referral = meta.as_dict(msg.get("referral"), "referral")
        attachments = meta.as_list(msg.get("attachments"), "attachments")
        if quick:
            return InboundMessage(
                provider_id=mid,
                text=text,
                kind="button",
                payload=meta.text_of(quick.get("payload"), 1000),
                **common,
            )
        special = messenger_kinds.parse_message(msg, attachments)
        if special is not None:
            return InboundMessage(provider_id=mid, **messenger_kinds.fields(special), **common)
        if attachments and not text:
            first = meta.as_dict(attachments[0], "attachment")
            payload = meta.as_dict(first.get("payload"), "payload")
            ref = meta.text_of(payload.get("url") or payload.get("id") or first.get("type"), 2000)
            return InboundMessage(provider_id=mid, kind="media", media_ref=ref or None, **common)
        return InboundMessage(provider_id=mid, text=text, optin_code=_code(referral.get("ref")), **common)
    if "postback" in m:
        pb = meta.as_dict(m["postback"], "postback")
        referral = meta.as_dict(pb.get("referral"), "referral")
        mid = meta.opt_ident(pb.get("mid"), "mid") or "pb:" + meta.digest(account, sender, m.get("timestamp"))
        return InboundMessage(
            provider_id=mid,
            text=meta.text_of(pb.get("title"), 200),
            kind="button",
            payload=meta.text_of(pb.get("payload"), 1000),
            optin_code=_code(referral.get("ref")),
            **common,
        )
    if "reaction" in m:  # a reaction to a message, or its removal (CH5)
        parsed = messenger_kinds.reaction(meta.as_dict(m["reaction"], "reaction"))
        key = "re:" + meta.digest(account, sender, m.get("timestamp"), parsed.ref_id, parsed.text)
        return InboundMessage(provider_id=key, **messenger_kinds.fields(parsed), **common)
    if "referral" in m:  # m.me / ig.me link into an existing conversation (opens the window)
        referral = meta.as_dict(m["referral"], "referral")
        key = "ref:" + meta.digest(account, sender, m.get("timestamp"), referral.get("ref"))
        return InboundMessage(provider_id=key, kind="start", optin_code=_code(referral.get("ref")), **common)
    if "optin" in m:  # marketing messages: the person stopped or resumed them in Messenger (C4, CH6)
        pref = _preference(account, sender, page_id, at, m)
        if pref is not None:
            return pref
    for key, status in (("delivery", "delivered"), ("read", "read")):
        if key in m:
            receipt = meta.as_dict(m[key], key)
            mids = [meta.ident(x, "mid") for x in meta.as_list(receipt.get("mids"), "mids")]
            mids += [x for x in [meta.opt_ident(receipt.get("mid"), "mid")] if x]  # Instagram read.mid
            events: list[Event] = [
                StatusUpdate(x, status, at, address=sender, account_ref=page_id) for x in mids
            ]
            mark = watermark(receipt.get("watermark"))
            if mark is not None:
                key_ = "wm:" + meta.digest(account, sender, status, receipt.get("watermark"))
                events.append(StatusWatermark(sender, status, mark, at, key_, account_ref=page_id))
            return events or UnknownEvent(kind=f"{key}_empty")
    other = next((k for k in m if k not in ("sender", "recipient", "timestamp")), "empty")
    return UnknownEvent(kind=meta.kind_label(obj, other))


_PREFERENCES = {"STOP_NOTIFICATIONS": True, "RESUME_NOTIFICATIONS": False}


def _preference(
    account: AccountConfig, sender: str, page_id: str, at: datetime, m: dict[str, Any]
) -> MarketingPreference | None:
    """`messaging_optins` of type `notification_messages` with `notification_messages_status`
    STOP_NOTIFICATIONS / RESUME_NOTIFICATIONS: the person turned the Page's marketing messages off
    or on again. Off is a withdrawal; on grants nothing (a new opt-in is needed)."""
    optin = meta.as_dict(m["optin"], "optin")
    status = str(optin.get("notification_messages_status") or "").upper()
    if optin.get("type") != "notification_messages" or status not in _PREFERENCES:
        return None
    key = "optin:" + meta.digest(account, sender, m.get("timestamp"), status)
    return MarketingPreference(
        sender, _PREFERENCES[status], at, provider_id=key, account_ref=page_id, source="provider_unsubscribe"
    )


def parse_messaging(account: AccountConfig, body: bytes, expected_object: str) -> list[Event]:
    """Every item of every entry of one Messenger/Instagram delivery (CH2)."""
    data = meta.load_json(body)
    obj = data.get("object")
    if obj != expected_object:
        return [UnknownEvent(kind=meta.kind_label("object", obj))]
    own = str(account.settings.get("page_id" if obj == "page" else "ig_account_id") or "")
    events: list[Event] = []
    for entry in meta.as_list(data.get("entry"), "entry"):
        entry = meta.as_dict(entry, "entry")
        page_id = meta.opt_ident(entry.get("id"), "entry id") or ""
        if own and page_id and page_id != own:
            events.append(UnknownEvent(kind="foreign_account_id"))
            continue
        for m in meta.as_list(entry.get("messaging"), "messaging"):
            ev = _one(account, str(obj), page_id, meta.as_dict(m, "messaging item"))
            if isinstance(ev, list):
                events.extend(ev)
            else:
                events.append(ev)
        for key in ("standby", "changes"):
            if entry.get(key):
                events.append(UnknownEvent(kind=key))
    return events


def send_body(address: str, content: OutboundContent) -> dict[str, Any] | None:
    """The Send API body: text with optional quick replies, a link button, or one attachment; None if
    inexpressible."""
    if content.media_url:
        attachment = media.messenger(content)
        if content.ref:
            attachment = {**attachment, "metadata": content.ref[:1000]}
        return {"recipient": {"id": address}, "messaging_type": "RESPONSE", "message": attachment}
    if not content.text:
        return None  # WhatsApp templates have no Messenger equivalent
    message = out_interactive.messenger(content, MAX_QUICK_REPLIES)
    if content.ref:  # comes back in the message echo: reconciles a send of unknown outcome (#14)
        message["metadata"] = content.ref[:1000]
    return {"recipient": {"id": address}, "messaging_type": "RESPONSE", "message": message}


class _MessengerBase(ChannelAdapter):
    object_name = "page"

    provider: ClassVar[Provider]

    def __init__(self, transport: Transport | None = None) -> None:
        self._http = meta.GraphClient(transport or default_transport(), self.provider, MESSENGER_ERRORS)

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        meta.verify_signature(account.secrets.get("app_secret", ""), request)
        meta.require_json(request)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> str | None:
        return meta.hub_challenge(account, request)

    def parse(self, account: AccountConfig, body: bytes) -> list[Event]:
        return parse_messaging(account, body, self.object_name)

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        refused = media.refusal(content, self.capabilities) if content.media_url else None
        if refused:
            return refused
        body = send_body(address, content)
        if body is None:
            return SendResult(SendOutcome.PERMANENT, error_code="unsupported", error_text="templates only")
        base = self._http.base(account)
        page = quote(str(account.settings.get("page_id", "")), safe="")
        failure, answer = await self._http.post_json(
            f"{base}/{page}/messages",
            body,
            params={"access_token": account.secrets.get("page_access_token", "")},
            timeout_s=meta.timeout_of(account),
        )
        if failure:
            return failure
        mid = answer.get("message_id") if isinstance(answer, dict) else None
        if not mid:
            return SendResult(SendOutcome.UNKNOWN, error_code="bad_response", error_text="no message id")
        return SendResult(SendOutcome.SENT, provider_id=str(mid)[: meta.MAX_ID_LEN])


@register
class MessengerChannel(_MessengerBase):
    """Facebook Messenger through a Facebook Page."""

    kind = "messenger"
    label = "Facebook Messenger"
    provider = meta.graph_provider("messenger", GRAPH_BASE)
    object_name = "page"
    capabilities = Capabilities(
        service_window_hours=24,
        templates=False,
        buttons=True,
        max_buttons=MAX_QUICK_REPLIES,
        **INTERACTIVE,
        max_text_len=2000,
        throughput_per_s=300.0,
        # One message holds a text or an attachment, never both: media goes without caption.
        media_kinds=frozenset({"image", "document", "video", "audio"}),
        address_is_phone=False,
        processing_region=REGION,
        safeguard=SAFEGUARD,
        echoes_ref=True,  # message.metadata comes back in the message echo
    )
    setup_fields = (
        SetupField("page_id", "Page ID"),
        SetupField("page_name", "Page user name (for m.me links)", required=False),
        SetupField("page_access_token", "Page access token", secret=True),
        SetupField("app_secret", "App secret", secret=True, help="App Dashboard → Settings → Basic"),
        SetupField("verify_token", "Verify token", secret=True, help="Any random string; enter it at Meta"),
    )

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        page = account.settings.get("page_name") or account.settings.get("page_id", "")
        return f"https://m.me/{quote(str(page), safe='')}?ref={quote(code, safe='')}"


@register
class InstagramChannel(_MessengerBase):
    """Instagram Direct through an Instagram professional account linked to a Page."""

    kind = "instagram"
    label = "Instagram Direct"
    provider = meta.graph_provider("instagram", GRAPH_BASE)
    object_name = "instagram"
    capabilities = Capabilities(
        service_window_hours=24,
        templates=False,
        buttons=True,
        max_buttons=MAX_QUICK_REPLIES,
        **INTERACTIVE,
        max_text_len=1000,
        throughput_per_s=300.0,
        media_kinds=frozenset({"image", "video", "audio"}),  # Instagram's Send API takes no files
        address_is_phone=False,
        processing_region=REGION,
        safeguard=SAFEGUARD,
        echoes_ref=True,  # message.metadata comes back in the message echo
    )
    setup_fields = (
        SetupField("ig_username", "Instagram user name (for ig.me links)"),
        SetupField("ig_account_id", "Instagram professional account ID", required=False),
        SetupField("page_id", "ID of the linked Facebook Page"),
        SetupField("page_access_token", "Page access token", secret=True),
        SetupField("app_secret", "App secret", secret=True, help="App Dashboard → Settings → Basic"),
        SetupField("verify_token", "Verify token", secret=True, help="Any random string; enter it at Meta"),
    )

    def deep_link(self, account: AccountConfig, code: str, prefill: str) -> str:
        user = str(account.settings.get("ig_username", "")).lstrip("@")
        return f"https://ig.me/m/{quote(user, safe='')}?ref={quote(code, safe='')}"
