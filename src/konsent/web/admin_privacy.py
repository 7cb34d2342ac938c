"""Admin privacy centre: request log, contact rights, audit log, deletion concept, import, documents.

Thin views: check the permission and the CSRF token, call one flow, render. Every view or
change of personal data is audited inside the flow (S4).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.domain.retention import DESCRIPTIONS, Category
from konsent.flows.organisation import staff, tenants
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy import importer, retention, transparency
from konsent.flows.privacy import rights as privacy
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, templates
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin/privacy", include_in_schema=False)
add_nav("/admin/privacy", "Privacy", "consent.proof", 70)

MAX_UPLOAD = importer.MAX_BYTES


def overdue_count(request: Request, me: Caller | None) -> int:
    """Overdue data-subject requests of the signed-in tenant, for the dashboard warning (D5)."""
    if me is None or not staff.allowed(me.role, "consent.proof"):
        return 0
    with get_ctx(request).db.read() as s:
        return len(privacy.overdue_requests(s, me.tenant_id))


templates.env.globals.setdefault("privacy_overdue_count", overdue_count)


def _int(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


def _overview(request: Request, caller: Caller, error: str = "", status: int = 200) -> Response:
    caller.require("consent.proof")
    with get_ctx(request).db.read() as s:
        data = privacy.overview(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/privacy/index.html",
        {
            **data,
            "kinds": privacy.KINDS,
            "channels": privacy.CHANNELS,
            "now": datetime.now(UTC),
            "error": error,
            "notice": request.query_params.get("notice", ""),
        },
        status,
    )


@router.get("")
def index(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Open data-subject requests with due dates and overdue warnings (D5)."""
    return _overview(request, caller)


@router.post("/requests")
def log_request(
    request: Request,
    kind: str = Form(""),
    channel: str = Form(""),
    received: str = Form(""),
    contact_id: str = Form(""),
    note: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Staff enter a request received by e-mail, letter or phone (D5)."""
    caller.require("consent.proof")
    check_csrf_form(caller, csrf_token)
    try:
        at = datetime.fromisoformat(received).replace(tzinfo=UTC) if received else None
        if at is not None and at > datetime.now(UTC):
            raise InvalidInput(detail="the received date lies in the future")
        with get_ctx(request).db.write() as s:
            cid = None
            if contact_id.strip():
                from konsent.flows.contacts import get_contact

                cid = get_contact(s, caller.tenant_id, _int(contact_id.strip())).id
            req = privacy.log_request(
                s,
                caller.tenant_id,
                kind,
                channel,
                contact_id=cid,
                received_at=at,
                handled_by=caller.actor,
                note=note,
            )
            from konsent.flows import audit

            audit.record(
                s, caller.tenant_id, caller.actor, "privacy.request.log", f"request:{req.id}", kind=kind
            )
    except ValueError:
        return _overview(request, caller, "The received date is not a date (YYYY-MM-DD).", 422)
    except DomainError as exc:
        return _overview(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/privacy?notice=logged", status_code=303)


@router.post("/requests/{request_id}/close")
def close_request(
    request_id: str,
    request: Request,
    state: str = Form("done"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("consent.proof")
    check_csrf_form(caller, csrf_token)
    try:
        with get_ctx(request).db.write() as s:
            privacy.close_request(s, caller.tenant_id, _int(request_id), caller.actor, state)
    except InvalidInput as exc:
        return _overview(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/privacy?notice=closed", status_code=303)


# --- one contact's rights (D1-D4) -------------------------------------------------------------------


@router.get("/contact")
def contact_lookup(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("contacts.personal")
    return RedirectResponse(f"/admin/privacy/contacts/{_int(request.query_params.get('cid', ''))}", 303)


@router.get("/contacts/{contact_id}")
def contact_rights(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("contacts.personal")
    with get_ctx(request).db.read() as s:
        from konsent.flows.contacts import get_contact

        c = get_contact(s, caller.tenant_id, _int(contact_id))
        if c.erased_at is not None:
            raise NotFound()
    return page(
        request,
        caller,
        "admin/privacy/contact.html",
        {"cid": c.id, "notice": request.query_params.get("notice", ""), "error": ""},
    )


def _contact_error(request: Request, caller: Caller, cid: int, exc: DomainError) -> Response:
    return page(
        request,
        caller,
        "admin/privacy/contact.html",
        {"cid": cid, "notice": "", "error": error_text(request, exc)},
        status_of(exc),
    )


@router.post("/contacts/{contact_id}/export")
def contact_export(
    contact_id: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """The same export the contact gets, for a request received otherwise; audited (D1, S4)."""
    caller.require("contacts.personal")
    check_csrf_form(caller, csrf_token)
    cid = _int(contact_id)
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        blob = privacy_export.staff_export(ctx, s, caller.tenant_id, caller.actor, cid)
    return Response(
        blob,
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="contact-{cid}-export.zip"',
            "cache-control": "no-store",
        },
    )


@router.post("/contacts/{contact_id}/erase")
def contact_erase(
    contact_id: str,
    request: Request,
    channel: str = Form("staff"),
    confirm: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Erasure by an agent or the DPO; the form must repeat the contact id to confirm (D2)."""
    caller.require("contacts.personal")
    check_csrf_form(caller, csrf_token)
    cid = _int(contact_id)
    if confirm.strip() != str(cid):
        return _contact_error(
            request, caller, cid, InvalidInput(detail="type the contact number to confirm the erasure")
        )
    try:
        with get_ctx(request).db.write() as s:
            privacy.staff_erase(get_ctx(request), s, caller.tenant_id, caller.actor, cid, channel)
    except InvalidInput as exc:
        return _contact_error(request, caller, cid, exc)
    return RedirectResponse("/admin/contacts", status_code=303)


@router.post("/contacts/{contact_id}/rectify")
def contact_rectify(
    contact_id: str,
    request: Request,
    name: str = Form(""),
    locale: str = Form(""),
    channel: str = Form("staff"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("contacts.personal")
    check_csrf_form(caller, csrf_token)
    cid = _int(contact_id)
    try:
        with get_ctx(request).db.write() as s:
            privacy.rectify_contact(
                get_ctx(request),
                s,
                caller.tenant_id,
                caller.actor,
                cid,
                name=name if name.strip() else None,
                locale=locale or None,
                channel=channel,
            )
    except InvalidInput as exc:
        return _contact_error(request, caller, cid, exc)
    return RedirectResponse(f"/admin/privacy/contacts/{cid}?notice=rectified", status_code=303)


@router.post("/contacts/{contact_id}/object")
def contact_object(
    contact_id: str,
    request: Request,
    channel: str = Form("staff"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("contacts.personal")
    check_csrf_form(caller, csrf_token)
    cid = _int(contact_id)
    try:
        with get_ctx(request).db.write() as s:
            privacy.object_to_marketing(get_ctx(request), s, caller.tenant_id, caller.actor, cid, channel)
    except InvalidInput as exc:
        return _contact_error(request, caller, cid, exc)
    return RedirectResponse(f"/admin/privacy/contacts/{cid}?notice=objected", status_code=303)


# --- audit log (S4) -------------------------------------------------------------------------------------


@router.get("/audit")
def audit_log(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("ledger.verify")
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 18 else None
    with get_ctx(request).db.read() as s:
        rows = privacy.audit_entries(s, caller.tenant_id, 101, before)
        report = retention.verify_audit(s, caller.tenant_id) if request.query_params.get("verify") else None
    return page(
        request,
        caller,
        "admin/privacy/audit.html",
        {"rows": rows[:100], "more": rows[99].seq if len(rows) > 100 else None, "report": report},
    )


# --- deletion concept (L1) ------------------------------------------------------------------------------


def _retention_page(request: Request, caller: Caller, error: str = "", status: int = 200) -> Response:
    caller.require("consent.proof")
    with get_ctx(request).db.read() as s:
        rules = retention.rules(s, caller.tenant_id)
        due = retention.due_counts(s, caller.tenant_id)
        nxt = retention.next_due(s, caller.tenant_id)
        runs = retention.past_runs(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/privacy/retention.html",
        {
            "rules": rules,
            "descriptions": DESCRIPTIONS,
            "due": due,
            "next_due": nxt,
            "runs": runs,
            "error": error,
            "notice": request.query_params.get("notice", ""),
        },
        status,
    )


@router.get("/retention")
def retention_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _retention_page(request, caller)


@router.post("/retention/rules")
async def retention_rules(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Edit the periods (in days; hours for opt-ins); each change is audited (L1)."""
    caller.require("settings.manage")
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token", "")))
    try:
        with get_ctx(request).db.write() as s:
            current = retention.rule_map(s, caller.tenant_id)
            for cat in Category:
                raw = str(form.get(cat.value, "")).strip()
                if not raw:
                    continue
                if not raw.isdigit() or len(raw) > 6:
                    raise InvalidInput("{category}: a whole number, please", category=cat.value)
                hours = int(raw) * (1 if cat is Category.UNCONFIRMED_OPTINS else 24)
                if hours != current[cat].hours:
                    retention.set_rule(s, caller.tenant_id, cat.value, hours, caller.actor)
    except InvalidInput as exc:
        return _retention_page(request, caller, error_text(request, exc), status_of(exc))
    return RedirectResponse("/admin/privacy/retention?notice=saved", status_code=303)


@router.post("/retention/run")
def retention_run(
    request: Request,
    dry_run: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    caller.require("settings.manage")
    check_csrf_form(caller, csrf_token)
    retention.run_retention(get_ctx(request), caller.tenant_id, dry_run=bool(dry_run), actor=caller.actor)
    return RedirectResponse("/admin/privacy/retention?notice=ran", status_code=303)


# --- import (C7) ----------------------------------------------------------------------------------------


def _import_page(
    request: Request, caller: Caller, report: dict | None = None, error: str = "", status: int = 200
) -> Response:
    with get_ctx(request).db.read() as s:
        accounts = tenants.channel_accounts(s, caller.tenant_id)
    return page(
        request,
        caller,
        "admin/privacy/import.html",
        {"accounts": accounts, "report": report, "error": error},
        status,
    )


@router.get("/import")
def import_form(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("settings.manage")
    return _import_page(request, caller)


@router.post("/import")
async def import_upload(
    request: Request,
    file: UploadFile = File(...),
    account_id: str = Form(""),
    without_evidence: str = Form("service_only"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Upload a CSV; every row is checked first, then all accepted rows go in at once (C7)."""
    caller.require("settings.manage")
    check_csrf_form(caller, csrf_token)
    data = await file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise InvalidInput("file larger than {limit} bytes", limit=MAX_UPLOAD)
        rep = importer.import_csv(
            get_ctx(request),
            caller.tenant_id,
            _int(account_id),
            data,
            actor=caller.actor,
            without_evidence=without_evidence,
        )
    except DomainError as exc:
        return _import_page(request, caller, error=error_text(request, exc), status=status_of(exc))
    return _import_page(request, caller, report=rep.as_dict())


# --- transparency (T1, T2) ------------------------------------------------------------------------------


@router.get("/documents")
def documents(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("consent.proof")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        tenant = transparency.tenant_of(s, caller.tenant_id)
        docs = {
            "notice_de": transparency.privacy_notice(ctx, s, tenant, "de"),
            "notice_en": transparency.privacy_notice(ctx, s, tenant, "en"),
            "art30_html": transparency.markdown_to_html(transparency.art30_record(ctx, s, tenant, "de")),
        }
    return page(request, caller, "admin/privacy/documents.html", docs)


@router.get("/documents/{name}")
def document_file(name: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """notice-de.md, notice-en.md, art30-de.md, art30-en.md and the same as .html."""
    caller.require("consent.proof")
    stem, _, ext = name.partition(".")
    kind, _, locale = stem.partition("-")
    if kind not in ("notice", "art30") or locale not in ("de", "en") or ext not in ("md", "html"):
        raise NotFound()
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        tenant = transparency.tenant_of(s, caller.tenant_id)
        md = (transparency.privacy_notice if kind == "notice" else transparency.art30_record)(
            ctx, s, tenant, locale
        )
    if ext == "md":
        return PlainTextResponse(md, media_type="text/markdown; charset=utf-8")
    body = f"<!doctype html><meta charset='utf-8'><title>{kind}</title>{transparency.markdown_to_html(md)}"
    return Response(body, media_type="text/html; charset=utf-8")
