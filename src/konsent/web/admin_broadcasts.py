"""Admin broadcast pages: list, compose with audience preview, send/schedule, pause/resume/cancel,
live progress (polled JSON) and the delivery funnel as a server-rendered SVG (M3, U3).

Thin views: check the permission and the CSRF token, call one flow, render.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from konsent.domain import interactive
from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.domain.segments import explain as explain_segment
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import tenants
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import broadcast_stats, cost_views, personalise, segments, templates
from konsent.web.admin_common import REFUSAL_REASONS, add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, gettext_for, request_locale
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin/broadcasts", include_in_schema=False)
add_nav("/admin/broadcasts", "Broadcasts", "contacts.read", 30)

VIEW = "contacts.read"
MANAGE = "settings.manage"  # owners and admins send marketing


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def _list_page(
    request: Request, caller: Caller, error: str = "", form: dict[str, Any] | None = None, status: int = 200
) -> Response:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        rows = [(b, broadcast_stats.stats(s, b)) for b in bc.list_broadcasts(s, caller.tenant_id)]
        topic_list = tenants.topics(s, caller.tenant_id)
        accounts = tenants.channel_accounts(s, caller.tenant_id)
        choices = templates.approved_choices(s, caller.tenant_id)
        fields = personalise.field_names(s, caller.tenant_id)
        labels = inbox.label_names(s, caller.tenant_id)
        saved_segments = segments.list_segments(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/broadcasts/index.html",
        {
            "rows": rows,
            "topics": topic_list,
            "accounts": accounts,
            "choices": choices,
            "fields": fields,
            "labels": labels,
            "segments": saved_segments,
            "error": error,
            "form": form or {},
        },
        status,
    )


@router.get("")
def broadcast_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Every broadcast with its state and funnel counts, and the compose form."""
    return _list_page(request, caller)


def _segment(
    locale: str, active_days: str, inactive_days: str, label: str = "", has_field: str = ""
) -> dict[str, Any]:
    seg: dict[str, Any] = {}
    if locale.strip():
        seg["locale"] = locale.strip()
    if label.strip():
        seg["label"] = label.strip()
    if has_field.strip():
        seg["has_field"] = has_field.strip()
    for key, raw in (("active_within_days", active_days), ("inactive_for_days", inactive_days)):
        if raw.strip():
            if not raw.strip().isdigit():
                raise InvalidInput("{key} must be a whole number of days ≥ 1", key=key)
            seg[key] = int(raw.strip())
    return seg


@router.post("")
def broadcast_create(
    request: Request,
    caller: Caller = Depends(admin_caller),
    csrf_token: str = Form(""),
    name: str = Form(""),
    topic: str = Form(""),
    text: str = Form(""),
    template: str = Form(""),
    template_params: str = Form(""),
    min_text_version: str = Form("0"),
    locale: str = Form(""),
    active_within_days: str = Form(""),
    inactive_for_days: str = Form(""),
    label: str = Form(""),
    has_field: str = Form(""),
    channel_account_id: str = Form(""),
    segment_id: str = Form(""),
    media_url: str = Form(""),
    media_kind: str = Form(""),
    media_filename: str = Form(""),
    choice_kind: str = Form(""),
    button_title: list[str] = Form([]),
    link_title: str = Form(""),
    link_url: str = Form(""),
) -> Response:
    """Compose a draft; bad input re-shows the form with the reason and stores nothing."""
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    form = {
        "name": name,
        "topic": topic,
        "text": text,
        "template": template,
        "template_params": template_params,
        "min_text_version": min_text_version,
        "locale": locale,
        "active_within_days": active_within_days,
        "inactive_for_days": inactive_for_days,
        "label": label,
        "has_field": has_field,
        "channel_account_id": channel_account_id,
        "segment_id": segment_id,
        "media_url": media_url,
        "media_kind": media_kind,
        "media_filename": media_filename,
        "choice_kind": choice_kind,
        "button_title": button_title[:3],
        "link_title": link_title,
        "link_url": link_url,
    }
    choices = interactive.from_form(
        choice_kind if choice_kind in ("buttons", "link") else "",
        [t[:100] for t in button_title[:10]],
        link_title=link_title[:100],
        link_url=link_url[:4000],
    )
    ctx = get_ctx(request)
    # The select offers the registry's approved templates as "name|language".
    template_name, _sep, template_language = template.strip()[:600].partition("|")
    try:
        if not min_text_version.strip().isdigit():
            raise InvalidInput(detail="the minimum consent-text version must be a whole number")
        acc = channel_account_id.strip()
        if acc and not acc.isdigit():
            raise InvalidInput(detail="unknown channel account")
        if segment_id.strip() and not segment_id.strip().isdigit():
            raise InvalidInput(detail="choose a saved segment or criteria, not both")
        with ctx.db.write() as s:
            b = bc.create_broadcast(
                ctx,
                s,
                caller.tenant_id,
                name=name,
                topic=topic,
                text=text,
                template=template_name or None,
                template_language=template_language or None,
                template_params=[p.strip() for p in template_params.split(",") if p.strip()],
                min_text_version=int(min_text_version.strip()),
                segment=_segment(locale, active_within_days, inactive_for_days, label, has_field),
                channel_account_id=int(acc) if acc else None,
                segment_id=int(segment_id.strip()) if segment_id.strip() else None,
                author=caller.actor,
                media_url=media_url[:4000] or None,
                media_kind=media_kind[:20] or None,
                media_filename=media_filename[:500] or None,
                choices=choices,
            )
            bid = b.id
    except NotFound:
        what = "unknown segment" if segment_id.strip() else "unknown channel account"
        return _list_page(request, caller, error_text(request, InvalidInput(detail=what)), form, 422)
    except DomainError as exc:
        return _list_page(request, caller, error_text(request, exc), form, status_of(exc))
    return RedirectResponse(f"/admin/broadcasts/{bid}", status_code=303)


# Why `enqueue_many` skipped a contact, as the admin reads it; legal-basis codes use REFUSAL_REASONS.
SKIP_REASONS = {
    "no_identity": "the contact cannot be reached on that channel",
    "window_closed": "outside the 24-hour window and no template",
    "no_templates": "the channel has no message templates",
    "no_media": "the channel cannot send this media (kind or caption)",
    "empty": "nothing to send",
    "too_long": "the text is too long for the channel",
}


def skip_reason(request: Request, code: str) -> str:
    """A skip reason code as a phrase in the admin's language (unknown codes as they are)."""
    _ = gettext_for(request_locale(request))
    phrase = SKIP_REASONS.get(code) or REFUSAL_REASONS.get(code)
    return _(phrase) if phrase else code


def _detail(request: Request, caller: Caller, bid: int, error: str = "", status: int = 200) -> Response:
    caller.require(VIEW)
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        b = bc.get_broadcast(s, caller.tenant_id, bid)
        preview = bc.preview_count(s, b, ctx=ctx) if b.state in ("draft", "scheduled") else None
        paused_reason = b.paused_reason if b.state == "paused" else ""
        cost = cost_views.broadcast_costs(s, b)  # CH6: estimate, budget, a budget pause's reason
        paused_reason = "" if cost["budget_pause"] else paused_reason
    prog = bc.progress(ctx, caller.tenant_id, bid)
    return page(
        request,
        caller,
        "admin/broadcasts/detail.html",
        {
            "b": prog,
            "paused_reason": paused_reason,
            "preview": preview,
            "error": error,
            "funnel": funnel_svg(request, prog["stats"]),
            "reason_label": lambda code: skip_reason(request, code),
            "explain": explain_segment,
            "cost": cost,
            "budget_error": request.query_params.get("budget_error", ""),
        },
        status,
    )


@router.get("/{broadcast_id}")
def broadcast_detail(broadcast_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """One broadcast: audience preview, actions, live progress and funnel."""
    return _detail(request, caller, _id(broadcast_id))


@router.get("/{broadcast_id}/progress.json")
def broadcast_progress(
    broadcast_id: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Polled by the page for live progress (no personal data)."""
    caller.require(VIEW)
    prog = bc.progress(get_ctx(request), caller.tenant_id, _id(broadcast_id))
    return JSONResponse(prog)


@router.get("/{broadcast_id}/funnel.svg")
def broadcast_funnel(broadcast_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The delivery funnel as an SVG image (U3)."""
    caller.require(VIEW)
    prog = bc.progress(get_ctx(request), caller.tenant_id, _id(broadcast_id))
    return Response(funnel_svg(request, prog["stats"]), media_type="image/svg+xml")


@router.post("/{broadcast_id}/{action}")
def broadcast_action(
    broadcast_id: str,
    action: str,
    request: Request,
    caller: Caller = Depends(admin_caller),
    csrf_token: str = Form(""),
    at: str = Form(""),
) -> Response:
    """Send now or at a time (UTC), pause, resume, cancel."""
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    bid = _id(broadcast_id)
    if action not in bc.ACTIONS:
        raise NotFound()
    try:
        when = None
        if action == "send" and at.strip():
            try:
                when = datetime.fromisoformat(at.strip()).replace(tzinfo=UTC)
            except ValueError as exc:
                raise InvalidInput(detail="the send time is not a valid date and time") from exc
        bc.act(get_ctx(request), caller.tenant_id, bid, action, caller.actor, when)
    except NotFound:
        raise
    except DomainError as exc:
        return _detail(request, caller, bid, error_text(request, exc), status_of(exc))
    return RedirectResponse(f"/admin/broadcasts/{bid}", status_code=303)


FUNNEL = (
    ("queued", "Queued", "#5b6b86"),
    ("sent", "Sent", "#2f6fb3"),
    ("delivered", "Delivered", "#2a8a5b"),
    ("read", "Read", "#1d6b45"),
    ("failed", "Failed", "#b3412f"),
    ("skipped", "Skipped", "#8a7a2a"),
    ("opt_outs", "Opt-outs caused", "#7a2a8a"),
)


def funnel_svg(request: Request, stats: dict[str, Any]) -> str:
    """Horizontal bars, one per stage, scaled to the queued and skipped total (U3)."""
    _ = gettext_for(request_locale(request))
    total = max(1, int(stats.get("queued", 0)) + int(stats.get("skipped", 0)))
    row, label_w, bar_w = 30, 170, 360
    height = row * len(FUNNEL) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" height="{height}" '
        f'role="img" aria-label="{_esc(_("Delivery funnel"))}" font-family="sans-serif" font-size="13">'
    ]
    for i, (key, label, color) in enumerate(FUNNEL):
        value = int(stats.get(key, 0))
        y = 5 + i * row
        width = round(bar_w * min(value, total) / total)
        parts.append(f'<text x="0" y="{y + 17}">{_esc(_(label))}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="20" fill="#eef1f5"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="20" fill="{color}"/>')
        parts.append(f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


__all__ = ["funnel_svg", "router"]
