"""WhatsApp Cloud API JSON, shared by Meta's door and 360dialog's: webhook payloads parsed into events
(messages, statuses, marketing preferences, contacts by phone or BSUID) and message bodies for sends.

The adapters in `channels.whatsapp` add what differs per door: base URL, auth, webhook proof.
"""

from __future__ import annotations

import re
from typing import Any

from konsent.channels import interactive as out_interactive
from konsent.channels import media as out_media
from konsent.channels import meta
from konsent.channels import whatsapp_kinds as kinds
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    OutboundContent,
)
from konsent.domain import costs
from konsent.domain.events import (
    Event,
    InboundMessage,
    MarketingPreference,
    ReachabilityChange,
    StatusUpdate,
    UnknownEvent,
)

CAPABILITIES = Capabilities(
    service_window_hours=24,
    templates=True,
    buttons=True,
    max_buttons=3,
    max_list_rows=10,  # interactive list: 10 rows across all sections
    max_list_title=24,
    list_descriptions=True,
    link_buttons=True,  # interactive cta_url
    max_link_text=1024,
    max_text_len=4096,
    throughput_per_s=80.0,
    per_contact_interval_s=6.0,  # the pair rate limit (131056) ...
    per_contact_burst=45,  # ... with its documented burst
    media_kinds=frozenset({"image", "document", "video", "audio"}),
    max_caption_len=1024,
    captioned_kinds=frozenset({"image", "document", "video"}),  # audio messages have no caption
    processing_region="Meta Platforms Ireland Ltd.; transfers to Meta Platforms Inc., USA",
    safeguard="EU-US Data Privacy Framework (Meta is certified) and standard contractual clauses",
    echoes_ref=True,  # biz_opaque_callback_data comes back in every status webhook
    priced_per_message=True,  # per-message pricing by country and category since July 2025
)

MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}
_PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")


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
    common["details"] = kinds.referral(m)
    if mtype == "text":
        body = meta.as_dict(m.get("text"), "text")
        return InboundMessage(text=meta.text_of(body.get("body")), **common)
    special = kinds.parse(m, mtype)
    if special is not None:
        return _received(special, common)
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
        return _received(kinds.unsupported(m, f"interactive:{itype}"), common)
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
    return _received(kinds.unsupported(m, mtype), common)


def _received(parsed: kinds.Parsed, common: dict[str, Any]) -> InboundMessage:
    details = (*parsed.details, *common.pop("details", ()))
    return InboundMessage(text=parsed.text, kind=parsed.kind, details=details, ref_id=parsed.ref_id, **common)


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
    ref = meta.text_of(s.get("biz_opaque_callback_data"), 512) or None
    block = s.get("pricing")
    pricing = costs.pricing_of(block) if isinstance(block, dict) else None
    events: list[Event] = [
        StatusUpdate(
            wamid, status, at, error_code=code, error_title=title, address=address, account_ref=account_ref,
            ref=ref, pricing=pricing, country=costs.country_of(address) if pricing else "",
        )
    ]  # fmt: skip
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
            elif isinstance(field, str) and field in kinds.TEMPLATE_FIELDS:
                events.append(kinds.template_update(field, value, entry.get("time"), ref))
            elif field == "user_preferences":
                contacts = _contact_index(value)
                for p in meta.as_list(value.get("user_preferences"), "user_preferences"):
                    events.append(_preference(account, meta.as_dict(p, "preference"), contacts, ref))
            else:
                events.append(UnknownEvent(kind=meta.kind_label("field", field)))
    return events


def message_body(address: str, content: OutboundContent) -> dict[str, Any]:
    """The Cloud API send body: text, reply buttons, a list, a link button or a template (CH3, CH5)."""
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
    elif content.interactive:
        body.update(type="interactive", interactive=out_interactive.whatsapp(content))
    else:
        body.update(type="text", text={"preview_url": False, "body": content.text})
    if content.ref:  # echoed in the status webhooks: reconciles a send of unknown outcome (#14)
        body["biz_opaque_callback_data"] = content.ref[:512]
    return body
