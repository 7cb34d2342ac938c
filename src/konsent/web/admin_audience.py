"""Admin pages for audiences and contact pressure (#17 items 3 and 4, M5): saved segments with a
size preview, the broadcast's proof and export, and the tenant's frequency cap and quiet hours.

Thin views: check the permission and the CSRF token, turn the form into data, call one flow.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from konsent.domain import segments as rules
from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.flows.contact_data import attributes, labels
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import tenants
from konsent.flows.outbound import broadcast_proof, pressure, segments
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin", include_in_schema=False)
add_nav("/admin/segments", "Segments", "contacts.read", 31)

VIEW, MANAGE, PROOF = "contacts.read", "settings.manage", "consent.proof"
# Sample names are personal data of any contact of the tenant: only for who may see all of them.
NAMES = ("contacts.personal", "contacts.all_teams")
ATTRIBUTE_ROWS = 3


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def _days(raw: str, key: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidInput(
            "{key} must be a whole number of days from 1 to {most}", key=key, most=rules.MAX_DAYS
        )
    return int(raw)


def definition_from_form(form: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as a segment definition (the domain validates it)."""
    out: dict[str, Any] = {}
    if form.get("topics"):
        out["topics"] = list(form["topics"])
    for key in rules.DAY_KEYS:
        value = _days(str(form.get(key) or ""), key)
        if value is not None:
            out[key] = value
    read = str(form.get("read_last_broadcast") or "")
    if read in ("yes", "no"):
        out["read_last_broadcast"] = read == "yes"
    for key in (*rules.DATE_KEYS, "locale", "label", "has_field"):
        if str(form.get(key) or "").strip():
            out[key] = str(form[key]).strip()
    if form.get("contact_labels"):
        out["contact_labels"] = list(form["contact_labels"])
    conditions = []
    for name, op, value in zip(
        form.get("attr_name", []), form.get("attr_op", []), form.get("attr_value", []), strict=False
    ):
        if name.strip():
            conditions.append(
                {
                    "name": name.strip(),
                    "op": op or "eq",
                    **({"value": value} if op not in ("set", "unset") else {}),
                }
            )
    if conditions:
        out["attributes"] = conditions
    return out


def _form(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("request", "caller", "csrf_token")}


def _segments_page(
    request: Request,
    caller: Caller,
    *,
    error: str = "",
    form: dict[str, Any] | None = None,
    editing: int | None = None,
    preview: segments.Preview | None = None,
    status: int = 200,
) -> Response:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        tid = caller.tenant_id
        saved = segments.list_segments(s, tid)
        if editing is not None and form is None:
            seg = segments.get_segment(s, tid, editing)
            form = {"name": seg.name, **_as_form(seg.definition)}
        context = {
            "segments": saved,
            "topics": tenants.topics(s, tid),
            "conversation_labels": inbox.label_names(s, tid),
            "contact_labels": [d.name for d in labels.list_labels(s, tid)],
            "attributes": attributes.list_attributes(s, tid),
            "ops": rules.ATTRIBUTE_OPS,
            "attribute_rows": ATTRIBUTE_ROWS,
            "explain": rules.explain,
            "form": form or {},
            "editing": editing,
            "preview": preview,
            "error": error,
        }
    return page(request, caller, "admin/segments.html", context, status)


def _as_form(definition: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {
        k: v for k, v in definition.items() if k not in ("attributes", "read_last_broadcast")
    }
    if "read_last_broadcast" in definition:
        form["read_last_broadcast"] = "yes" if definition["read_last_broadcast"] else "no"
    conditions = definition.get("attributes", [])
    form["attr_name"] = [c["name"] for c in conditions]
    form["attr_op"] = [c["op"] for c in conditions]
    form["attr_value"] = [str(c.get("value", "")) for c in conditions]
    return form


@router.get("/segments")
def segment_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Saved segments, the form for a new one and the size preview."""
    return _segments_page(request, caller)


@router.get("/segments/{segment_id}")
def segment_edit_form(segment_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _segments_page(request, caller, editing=_id(segment_id))


def _criteria_form(
    csrf_token: str = Form(""),
    name: str = Form(""),
    topics: list[str] = Form([]),
    replied_within_days: str = Form(""),
    not_replied_for_days: str = Form(""),
    active_within_days: str = Form(""),
    inactive_for_days: str = Form(""),
    read_last_broadcast: str = Form(""),
    subscribed_since: str = Form(""),
    subscribed_before: str = Form(""),
    locale: str = Form(""),
    label: str = Form(""),
    has_field: str = Form(""),
    contact_labels: list[str] = Form([]),
    attr_name: list[str] = Form([]),
    attr_op: list[str] = Form([]),
    attr_value: list[str] = Form([]),
    topic: str = Form(""),
    saved_segment: str = Form(""),
) -> dict[str, Any]:
    """The segment form's fields, each cut to a sane length."""
    return {
        "csrf_token": csrf_token,
        "name": name[:200],
        "topics": [t[:64] for t in topics[:20]],
        "replied_within_days": replied_within_days[:8],
        "not_replied_for_days": not_replied_for_days[:8],
        "active_within_days": active_within_days[:8],
        "inactive_for_days": inactive_for_days[:8],
        "read_last_broadcast": read_last_broadcast[:4],
        "subscribed_since": subscribed_since[:10],
        "subscribed_before": subscribed_before[:10],
        "locale": locale[:8],
        "label": label[:63],
        "has_field": has_field[:63],
        "contact_labels": [x[:63] for x in contact_labels[:20]],
        "attr_name": [x[:63] for x in attr_name[:ATTRIBUTE_ROWS]],
        "attr_op": [x[:8] for x in attr_op[:ATTRIBUTE_ROWS]],
        "attr_value": [x[:200] for x in attr_value[:ATTRIBUTE_ROWS]],
        "topic": topic[:64],
        "saved_segment": saved_segment[:18],
    }


@router.post("/segments")
def segment_create(
    request: Request, form: dict[str, Any] = Depends(_criteria_form), caller: Caller = Depends(admin_caller)
) -> Response:
    """Save a new segment; bad criteria re-show the form with the reason (422) and store nothing."""
    check_csrf_form(caller, form["csrf_token"])
    caller.require(MANAGE)
    try:
        with get_ctx(request).db.write() as s:
            segments.create_segment(
                s, caller.tenant_id, caller.actor, form["name"], definition_from_form(form)
            )
    except DomainError as exc:
        return _segments_page(
            request, caller, error=error_text(request, exc), form=form, status=status_of(exc)
        )
    return RedirectResponse("/admin/segments", status_code=303)


@router.post("/segments/preview")
def segment_preview(
    request: Request, form: dict[str, Any] = Depends(_criteria_form), caller: Caller = Depends(admin_caller)
) -> Response:
    """How many contacts with consent for the topic the segment holds now, and a few names for
    staff who may see personal data (the viewing is audited)."""
    check_csrf_form(caller, form["csrf_token"])
    caller.require(VIEW)
    try:
        saved = form["saved_segment"].strip()
        if saved and not saved.isdigit():
            raise InvalidInput(detail="choose a saved segment or criteria, not both")
        shown = segments.preview_for(
            get_ctx(request),
            caller.tenant_id,
            form["topic"],
            None if saved else definition_from_form(form),
            segment_id=int(saved) if saved else None,
            actor=caller.actor,
            show_names=all(_may(caller, p) for p in NAMES),
        )
    except DomainError as exc:
        return _segments_page(
            request, caller, error=error_text(request, exc), form=form, status=status_of(exc)
        )
    return _segments_page(request, caller, form=form, preview=shown)


def _may(caller: Caller, permission: str) -> bool:
    try:
        caller.require(permission)
    except DomainError:
        return False
    return True


@router.post("/segments/{segment_id}")
def segment_update(
    segment_id: str,
    request: Request,
    form: dict[str, Any] = Depends(_criteria_form),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Change a saved segment; broadcasts sent with it keep their copy."""
    check_csrf_form(caller, form["csrf_token"])
    caller.require(MANAGE)
    sid = _id(segment_id)
    try:
        with get_ctx(request).db.write() as s:
            segments.update_segment(
                s, caller.tenant_id, caller.actor, sid, form["name"], definition_from_form(form)
            )
    except NotFound:
        raise
    except DomainError as exc:
        return _segments_page(
            request, caller, error=error_text(request, exc), form=form, editing=sid, status=status_of(exc)
        )
    return RedirectResponse("/admin/segments", status_code=303)


@router.post("/segments/{segment_id}/delete")
def segment_delete(
    segment_id: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    with get_ctx(request).db.write() as s:
        segments.delete_segment(s, caller.tenant_id, caller.actor, _id(segment_id))
    return RedirectResponse("/admin/segments", status_code=303)


# ---------------------------------------------------------------- a broadcast's proof and export


@router.get("/broadcasts/{broadcast_id}/proof.json")
def broadcast_proof_json(
    broadcast_id: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Who was chosen and why, and each message's outcome (contact ids only); audited."""
    caller.require(PROOF)
    with get_ctx(request).db.write() as s:
        doc = broadcast_proof.proof(s, caller.tenant_id, _id(broadcast_id), caller.actor)
    return JSONResponse(
        doc,
        headers={
            "Content-Disposition": f'attachment; filename="broadcast-{doc["broadcast"]["id"]}-proof.json"'
        },
    )


@router.get("/broadcasts/{broadcast_id}/export.csv")
def broadcast_export_csv(
    broadcast_id: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """One row per message: contact id, outcome, reason; audited."""
    caller.require(PROOF)
    bid = _id(broadcast_id)
    with get_ctx(request).db.write() as s:
        body = broadcast_proof.export_csv(s, caller.tenant_id, bid, caller.actor)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="broadcast-{bid}.csv"'},
    )


# ---------------------------------------------------------------- contact pressure


def _pressure_page(
    request: Request, caller: Caller, error: str = "", values: dict[str, Any] | None = None, status: int = 200
) -> Response:
    caller.require(MANAGE)
    with get_ctx(request).db.read() as s:
        current = pressure.current_rules(s, caller.tenant_id).as_dict()
    context = {
        "values": values or current,
        "error": error,
        "saved": request.query_params.get("saved") == "1",
    }
    return page(request, caller, "admin/setup/pressure.html", context, status)


@router.get("/settings/pressure")
def pressure_form(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The tenant's frequency cap and quiet hours for marketing."""
    return _pressure_page(request, caller)


@router.post("/settings/pressure")
def pressure_save(
    request: Request,
    csrf_token: str = Form(""),
    cap_messages: str = Form(""),
    cap_days: str = Form(""),
    quiet_start: str = Form(""),
    quiet_end: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require(MANAGE)
    values: dict[str, Any] = {
        "cap_messages": cap_messages[:6],
        "cap_days": cap_days[:6],
        "quiet_start": quiet_start[:5],
        "quiet_end": quiet_end[:5],
    }
    try:
        parsed = dict(values)
        for key in ("cap_messages", "cap_days"):
            raw = str(values[key]).strip() or "0"
            if not raw.isdigit():
                raise InvalidInput(
                    "{key} must be a whole number from 0 to {most}",
                    key=key,
                    most=1000 if key == "cap_messages" else 365,
                )
            parsed[key] = int(raw)
        if not parsed["cap_days"]:
            parsed["cap_days"] = 7
        with get_ctx(request).db.write() as s:
            pressure.set_rules(s, caller.tenant_id, caller.actor, parsed)
    except DomainError as exc:
        return _pressure_page(request, caller, error_text(request, exc), values, status_of(exc))
    return RedirectResponse("/admin/settings/pressure?saved=1", status_code=303)


__all__ = ["definition_from_form", "router"]
