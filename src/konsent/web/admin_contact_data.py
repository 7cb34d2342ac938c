"""Admin pages for contact labels and attributes, the contact page's one Save, and the CSV export (M5, S4)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.attributes import Retention
from konsent.domain.errors import DomainError, NotFound
from konsent.flows.contact_data import attributes, csv_export, labels, profile
from konsent.flows.contact_data.search import Query
from konsent.flows.inbox import scope
from konsent.web.admin_common import admin_caller, error_text, page
from konsent.web.admin_contacts import contact_page
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter()  # included by web.admin under /admin

MAX_FORM_FIELDS = 200


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def _days(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) < 6 else (None if not raw else -1)


# --- definitions (settings.manage) ----------------------------------------------------------------


def _definitions_page(request: Request, caller: Caller, error: str = "", status: int = 200) -> Response:
    with get_ctx(request).db.read() as s:
        ctx = {
            "labels": labels.list_labels(s, caller.tenant_id),
            "attributes": attributes.list_attributes(s, caller.tenant_id),
            "retentions": [r.value for r in Retention],
            "error": error,
            "notice": request.query_params.get("notice", "")[:20],
        }
    return page(request, caller, "admin/contact_data.html", ctx, status)


@router.get("/contact-data")
def definitions(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The tenant's labels and attributes, each attribute with its purpose and retention (M5, L1)."""
    caller.require("settings.manage")
    return _definitions_page(request, caller)


def _run(request: Request, caller: Caller, action: Any) -> Response:
    try:
        with get_ctx(request).db.write() as s:
            action(s)
    except DomainError as exc:
        return _definitions_page(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/contact-data?notice=saved", status_code=303)


@router.post("/contact-data/labels")
def label_create(
    request: Request, csrf_token: str = Form(""), name: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    return _run(request, caller, lambda s: labels.define_label(s, caller.tenant_id, caller.actor, name[:200]))


@router.post("/contact-data/labels/{label_id}")
def label_change(
    label_id: str,
    request: Request,
    csrf_token: str = Form(""),
    action: str = Form("rename"),
    name: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    lid = _id(label_id)
    if action == "delete":
        return _run(request, caller, lambda s: labels.delete_label(s, caller.tenant_id, caller.actor, lid))
    return _run(
        request, caller, lambda s: labels.rename_label(s, caller.tenant_id, caller.actor, lid, name[:200])
    )


def _options(raw: str) -> list[str]:
    return [o for o in (line.strip() for line in raw[:10_000].splitlines()) if o]


@router.post("/contact-data/attributes")
def attribute_create(
    request: Request,
    csrf_token: str = Form(""),
    key: str = Form(""),
    name: str = Form(""),
    type: str = Form("text"),
    options: str = Form(""),
    purpose: str = Form(""),
    retention: str = Form("until_erasure"),
    retention_days: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    return _run(
        request,
        caller,
        lambda s: attributes.define_attribute(
            s,
            caller.tenant_id,
            caller.actor,
            key=key[:100],
            name=name[:300],
            type=type[:40],
            options=_options(options),
            purpose=purpose[:1000],
            retention=retention[:40],
            retention_days=_days(retention_days),
        ),
    )


@router.post("/contact-data/attributes/{attribute_id}")
def attribute_change(
    attribute_id: str,
    request: Request,
    csrf_token: str = Form(""),
    action: str = Form("save"),
    name: str = Form(""),
    options: str = Form(""),
    purpose: str = Form(""),
    retention: str = Form("until_erasure"),
    retention_days: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    aid = _id(attribute_id)
    if action == "delete":
        return _run(
            request, caller, lambda s: attributes.delete_attribute(s, caller.tenant_id, caller.actor, aid)
        )

    def save(s: Any) -> None:
        d = attributes.get_attribute(s, caller.tenant_id, aid)
        attributes.update_attribute(
            s,
            caller.tenant_id,
            caller.actor,
            aid,
            name=name[:300],
            options=_options(options) if d.type == "choice" else None,
            purpose=purpose[:1000],
            retention=retention[:40],
            retention_days=_days(retention_days),
        )

    return _run(request, caller, save)


# --- the contact page's one Save (contacts.edit) ---------------------------------------------------


@router.post("/contacts/{contact_id}/data")
async def contact_data_save(
    contact_id: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Name, labels and attribute values in one form with one Save; a bad value → the page again with
    the reason and what was typed (4xx), nothing saved."""
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    check_csrf_form(caller, str(form.get("csrf_token", "")))
    caller.require("contacts.personal")
    caller.require("contacts.edit")
    cid = _id(contact_id)
    name = str(form.get("name", ""))[:1000] if "name" in form else None
    label_refs = [str(v)[:40] for v in form.getlist("label")]
    values = {k[5:]: str(v)[:1000] for k, v in form.multi_items() if k.startswith("attr:")}

    ctx = get_ctx(request)

    def save() -> None:
        with ctx.db.write() as s:
            profile.save(
                ctx, s, caller.tenant_id, caller.actor, cid, name=name, label_refs=label_refs, values=values
            )

    try:
        await run_in_threadpool(save)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        sent = {
            "data_labels": {int(x) for x in label_refs if x.isdigit()},
            "data_values": values,
            "data_name": name,
        }
        return await run_in_threadpool(
            contact_page,
            request,
            caller,
            cid,
            error=error_text(request, exc),
            status_code=status_of(exc),
            sent=sent,
        )
    return RedirectResponse(f"/admin/contacts/{cid}?notice=saved#data", status_code=303)


# --- CSV export (contacts.export) -------------------------------------------------------------------


@router.get("/contact-export")
def export_form(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Choose the fields of the CSV export; the export itself is recorded in the audit log (S4)."""
    caller.require("contacts.export")
    with get_ctx(request).db.read() as s:
        fields = csv_export.available_fields(s, caller.tenant_id)
    return page(request, caller, "admin/contact_export.html", {"fields": fields, "error": ""})


@router.post("/contact-export")
async def export_download(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    check_csrf_form(caller, str(form.get("csrf_token", "")))
    caller.require("contacts.export")
    fields = [str(f)[:100] for f in form.getlist("field")]
    q = Query(
        text=str(form.get("q", ""))[:200],
        label=str(form.get("label", ""))[:100],
        attribute=str(form.get("attribute", ""))[:100],
        value=str(form.get("value", ""))[:1000],
    )
    ctx = get_ctx(request)

    def run() -> tuple[bytes, int]:
        with ctx.db.write() as s:
            only = scope.contact_filter(s, caller)
            return csv_export.export_csv(ctx, s, caller.tenant_id, caller.actor, fields, only=only, query=q)

    try:
        body, _rows = await run_in_threadpool(run)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        with ctx.db.read() as s:
            available = csv_export.available_fields(s, caller.tenant_id)
        return page(
            request,
            caller,
            "admin/contact_export.html",
            {"fields": available, "error": error_text(request, exc)},
            status_of(exc),
        )
    name = f"contacts-{date.today().isoformat()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
    )
