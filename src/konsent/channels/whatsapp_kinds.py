"""WhatsApp inbound messages beyond text, buttons and media (CH5): every documented kind, none dropped.

Shapes from ../shared/protocols/whatsapp-cloud.md and Meta's webhook reference (location, contacts,
reaction, order, interactive nfm_reply and call_permission_reply, edit, revoke, system, unsupported,
referral). Each becomes (kind, text, details, ref_id) for an `InboundMessage`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from konsent.channels import meta
from konsent.domain.events import TemplateUpdate
from konsent.domain.received import clip_details, coordinate, map_link


@dataclass(frozen=True)
class Parsed:
    kind: str
    text: str = ""
    details: tuple[tuple[str, str], ...] = ()
    ref_id: str | None = None


def location(m: dict[str, Any]) -> Parsed:
    loc = meta.as_dict(m.get("location"), "location")
    lat, lng = coordinate(loc.get("latitude"), "latitude"), coordinate(loc.get("longitude"), "longitude")
    name, address = meta.text_of(loc.get("name"), 300), meta.text_of(loc.get("address"), 500)
    details = clip_details(
        [("name", name), ("address", address), ("latitude", lat), ("longitude", lng),
         ("url", meta.text_of(loc.get("url"), 500)), ("map", map_link(lat, lng))]
    )  # fmt: skip
    return Parsed("location", name or address, details)


def _card(card: dict[str, Any]) -> list[tuple[str, object]]:
    name = meta.as_dict(card.get("name") or {}, "name")
    pairs: list[tuple[str, object]] = [("name", meta.text_of(name.get("formatted_name"), 300))]
    for phone in meta.as_list(card.get("phones") or [], "phones"):
        pairs.append(("phone", meta.text_of(meta.as_dict(phone, "phone").get("phone"), 60)))
    for mail in meta.as_list(card.get("emails") or [], "emails"):
        pairs.append(("email", meta.text_of(meta.as_dict(mail, "email").get("email"), 300)))
    org = meta.as_dict(card.get("org") or {}, "org")
    pairs.append(("organisation", meta.text_of(org.get("company"), 300)))
    for addr in meta.as_list(card.get("addresses") or [], "addresses"):
        a = meta.as_dict(addr, "address")
        parts = [meta.text_of(a.get(k), 200) for k in ("street", "zip", "city", "country")]
        pairs.append(("address", ", ".join(p for p in parts if p)))
    for url in meta.as_list(card.get("urls") or [], "urls"):
        pairs.append(("url", meta.text_of(meta.as_dict(url, "url").get("url"), 500)))
    return pairs


def contacts(m: dict[str, Any]) -> Parsed:
    cards = [meta.as_dict(c, "contact card") for c in meta.as_list(m.get("contacts"), "contacts")]
    pairs: list[tuple[str, object]] = []
    for card in cards:
        pairs.extend(_card(card))
    names = [v for k, v in pairs if k == "name" and v]
    return Parsed("contacts", ", ".join(str(n) for n in names)[:500], clip_details(pairs))


def reaction(m: dict[str, Any]) -> Parsed:
    r = meta.as_dict(m.get("reaction"), "reaction")
    target = meta.ident(r.get("message_id"), "reaction message_id")
    emoji = meta.text_of(r.get("emoji"), 32)
    details = clip_details([("emoji", emoji)] if emoji else [("removed", "✓")])
    return Parsed("reaction", emoji, details, target)


def order(m: dict[str, Any]) -> Parsed:
    o = meta.as_dict(m.get("order"), "order")
    pairs: list[tuple[str, object]] = [("catalog", meta.text_of(o.get("catalog_id"), 100))]
    for raw in meta.as_list(o.get("product_items") or [], "product_items"):
        item = meta.as_dict(raw, "product item")
        qty = meta.text_of(str(item.get("quantity", "")), 20)
        price = meta.text_of(str(item.get("item_price", "")), 30)
        currency = meta.text_of(item.get("currency"), 8)
        sku = meta.text_of(item.get("product_retailer_id"), 200)
        pairs.append(("item", f"{sku} × {qty} à {price} {currency}".strip()))
    return Parsed("order", meta.text_of(o.get("text"), 1000), clip_details(pairs))


def _flat(prefix: str, value: Any, out: list[tuple[str, object]], depth: int = 0) -> None:
    if depth > 4 or len(out) > 80:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "flow_token":  # Meta's correlation token, not the customer's answer
                _flat(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, list):
        out.append((prefix, ", ".join(str(v) for v in value if not isinstance(v, dict | list))))
    else:
        out.append((prefix, value))


def flow_reply(inter: dict[str, Any]) -> Parsed:
    reply = meta.as_dict(inter.get("nfm_reply"), "nfm_reply")
    raw = reply.get("response_json") or "{}"
    if not isinstance(raw, str) or len(raw) > 64_000:
        raise ValueError("response_json must be a JSON string")
    try:
        answers = json.loads(raw)
    except ValueError as exc:
        raise ValueError("response_json is not JSON") from exc
    pairs: list[tuple[str, object]] = []
    _flat("", answers if isinstance(answers, dict) else {"response": answers}, pairs)
    return Parsed("flow_reply", meta.text_of(reply.get("body"), 500), clip_details(pairs))


def call_permission(inter: dict[str, Any]) -> Parsed:
    reply = meta.as_dict(inter.get("call_permission_reply"), "call_permission_reply")
    response = meta.text_of(reply.get("response"), 20)
    expires = reply.get("expiration_timestamp")
    details = clip_details(
        [("response", response), ("source", meta.text_of(reply.get("response_source"), 40)),
         ("expires", meta.timestamp(expires).isoformat() if expires not in (None, "") else "")]
    )  # fmt: skip
    return Parsed("call_permission", response, details)


def edit(m: dict[str, Any]) -> Parsed:
    e = meta.as_dict(m.get("edit"), "edit")
    target = meta.ident(e.get("original_message_id"), "original_message_id")
    inner = meta.as_dict(e.get("message") or {}, "edited message")
    itype = inner.get("type")
    body = meta.as_dict(inner.get(itype) or {}, "edited content") if isinstance(itype, str) else {}
    text = meta.text_of(body.get("body") if itype == "text" else body.get("caption"))
    return Parsed("edit", text, (), target)


def revoke(m: dict[str, Any]) -> Parsed:
    r = meta.as_dict(m.get("revoke"), "revoke")
    return Parsed("revoke", "", (), meta.ident(r.get("original_message_id"), "original_message_id"))


def system(m: dict[str, Any]) -> Parsed:
    sysm = meta.as_dict(m.get("system") or {}, "system")
    return Parsed("system", meta.text_of(sysm.get("body"), 1000), clip_details([("type", sysm.get("type"))]))


def unsupported(m: dict[str, Any], mtype: object) -> Parsed:
    """Anything else, shown as 'not supported by the provider' with the provider's own error."""
    pairs: list[tuple[str, object]] = [("type", meta.kind_label(mtype))]
    errors = m.get("errors")
    for err in errors[:3] if isinstance(errors, list) else []:
        if not isinstance(err, dict):
            continue
        raw_data = err.get("error_data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        for key, value in (("error", err.get("title") or err.get("message")), ("error_code", err.get("code")),
                           ("error", data.get("details"))):  # fmt: skip
            if isinstance(value, str | int) and not isinstance(value, bool):
                pairs.append((key, str(value)[:500]))
    return Parsed("unsupported", "", clip_details(pairs))


def parse(m: dict[str, Any], mtype: object) -> Parsed | None:
    """The kind of a message beyond text, buttons and media; None for those. Content that does not
    read is kept as 'unsupported' rather than refused: a 400 would make Meta retry the whole batch
    and finally drop it, and nothing a customer sends may be lost (CH5)."""
    try:
        if isinstance(mtype, str) and mtype in BY_TYPE:
            return BY_TYPE[mtype](m)
        if mtype == "interactive":
            inter = meta.as_dict(m.get("interactive"), "interactive")
            itype = inter.get("type")
            if isinstance(itype, str) and itype in BY_INTERACTIVE:
                return BY_INTERACTIVE[itype](inter)
    except (ValueError, TypeError, KeyError):
        return unsupported(m, mtype)
    return None


def referral(m: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A click-to-WhatsApp ad's source, kept with the message that opened the chat."""
    ref = m.get("referral")
    if not isinstance(ref, dict):
        return ()
    source = f"{meta.text_of(ref.get('source_type'), 20)} {meta.text_of(ref.get('source_id'), 60)}"
    return clip_details(
        [("referral_source", source.strip()),
         ("referral_headline", meta.text_of(ref.get("headline"), 300)),
         ("referral_url", meta.text_of(ref.get("source_url"), 500)),
         ("referral_click_id", meta.text_of(ref.get("ctwa_clid"), 500))]
    )  # fmt: skip


BY_TYPE = {
    "location": location,
    "contacts": contacts,
    "reaction": reaction,
    "order": order,
    "edit": edit,
    "revoke": revoke,
    "system": system,
}
BY_INTERACTIVE = {"nfm_reply": flow_reply, "call_permission_reply": call_permission}


# template lifecycle webhooks (T4): field -> (what changed, key of the old value, key of the new value)
TEMPLATE_FIELDS: dict[str, tuple[str, str, str]] = {
    "message_template_status_update": ("status", "", "event"),
    "message_template_quality_update": ("quality", "previous_quality_score", "new_quality_score"),
    "template_category_update": ("category", "previous_category", "new_category"),
}


def template_update(field: str, value: dict[str, Any], time: Any, account_ref: str | None) -> TemplateUpdate:
    """A template's new status (APPROVED, PAUSED, DISABLED, REJECTED ...), quality or category."""
    what, old_key, new_key = TEMPLATE_FIELDS[field]
    new = meta.text_of(value.get(new_key), 40).strip().upper()
    if not new:
        raise ValueError(f"{field} without {new_key}")
    raw_info = value.get("other_info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    reason = " ".join(
        t for t in (meta.text_of(value.get("reason"), 100), meta.text_of(info.get("title"), 100),
                    meta.text_of(info.get("description"), 200)) if t and t != "NONE"
    )  # fmt: skip
    at = meta.timestamp(time) if time not in (None, "") else datetime.now(UTC)
    template_id = meta.opt_ident(value.get("message_template_id"), "message_template_id") or ""
    return TemplateUpdate(
        name=meta.text_of(value.get("message_template_name"), 512),
        language=meta.text_of(value.get("message_template_language"), 16),
        field=what,
        old=meta.text_of(value.get(old_key), 40).strip().upper() if old_key else "",
        new=new,
        reason=reason[:300],
        at=at,
        provider_id=f"{template_id}:{what}:{new}:{int(at.timestamp())}",
        account_ref=account_ref,
    )
