"""Admin contact pages: list, consent state and ledger, conversation, reply, withdraw, proof (C3, C4, C5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.flows import contact_views, message_desk
from konsent.flows.contact_data import attributes, labels, profile, search
from konsent.flows.contact_data.search import Query
from konsent.flows.inbox import scope
from konsent.flows.organisation import names, staff, tenants
from konsent.web.admin_common import admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, render
from konsent.web.errors import status_of

router = APIRouter()

PAGE_SIZE = 50
MAX_TEXT = 4096
NOTICES = ("sent", "withdrawn", "nothing_withdrawn", "saved")


def _contact_id(raw: str) -> int:
    # Ids are positive integers; anything else is simply not a contact of this tenant.
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


@router.get("/contacts")
def contact_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Contacts with their consent states; display names and labels only for roles that see personal
    data, then with one audit entry for the page (S4, U5). With a search (name, number, label,
    attribute) the matching contacts instead, the search audited too (M5)."""
    caller.require("contacts.read")
    params = request.query_params
    raw = params.get("page", "1")
    number = int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1
    query = Query(
        text=params.get("q", "")[:200],
        label=params.get("label", "")[:100],
        attribute=params.get("attribute", "")[:100],
        value=params.get("value", "")[:1000],
    )
    ctx = get_ctx(request)
    personal = staff.allowed(caller.role, "contacts.personal")
    if not query.empty:
        caller.require("contacts.personal")  # a search by name or number reveals personal data
    error, status_code, tags = "", 200, {}
    opened: dict[int, str] = {}  # names the search opened to confirm matches: not opened twice
    with ctx.db.write() if personal else ctx.db.read() as s:
        only = scope.contact_filter(s, caller)  # agents: contacts of their teams only
        if query.empty:
            rows = contact_views.contact_list(
                s, caller.tenant_id, PAGE_SIZE + 1, (number - 1) * PAGE_SIZE, only
            )
        else:
            try:
                found = search.search_audited(
                    ctx, s, caller.tenant_id, caller.actor, query, only=only, limit=PAGE_SIZE, names=opened
                )
            except InvalidInput as exc:
                found, error, status_code = [], error_text(request, exc), status_of(exc)
            rows = contact_views.contact_rows(s, caller.tenant_id, found)
        shown = [r.id for r in rows[:PAGE_SIZE]]
        display = (
            names.names_for_list(ctx, s, caller.tenant_id, caller.actor, shown, opened) if personal else {}
        )
        if personal:
            tags = labels.labels_of_many(s, caller.tenant_id, shown)
            label_choices = labels.list_labels(s, caller.tenant_id)
            attribute_choices = attributes.list_attributes(s, caller.tenant_id)
        else:
            label_choices, attribute_choices = [], []
    return page(
        request,
        caller,
        "admin/contacts.html",
        {
            "rows": rows[:PAGE_SIZE],
            "page_no": number,
            "has_next": query.empty and len(rows) > PAGE_SIZE,
            "display": display,
            "tags": tags,
            "personal": personal,
            "query": query,
            "searching": not query.empty,
            "label_choices": label_choices,
            "attribute_choices": attribute_choices,
            "error": error,
        },
        status_code,
    )


def contact_page(
    request: Request,
    caller: Caller,
    contact_id: int,
    *,
    error: str = "",
    status_code: int = 200,
    draft: str = "",
    draft_purpose: str = "service",
    sent: dict[str, Any] | None = None,
) -> Response:
    """The contact page; `sent` holds what the name, labels and attributes form sent when it failed."""
    caller.require("contacts.read")
    personal = staff.allowed(caller.role, "contacts.personal")
    ctx = get_ctx(request)
    data: dict[str, Any] = {}
    with ctx.db.write() as s:  # a write: viewing personal data appends to the audit log (S4)
        view = contact_views.contact_page(ctx, s, caller.tenant_id, caller.actor, contact_id, personal)
        topic_list = tenants.topics(s, caller.tenant_id)
        if personal and view.personal:
            kept = profile.read(ctx, s, caller.tenant_id, contact_id)
            data = {
                "all_labels": labels.list_labels(s, caller.tenant_id),
                "all_attributes": attributes.list_attributes(s, caller.tenant_id),
                "data_labels": {int(str(r["id"])) for r in kept.labels},
                "data_values": kept.attributes,
                "data_name": view.name,
                **(sent or {}),
            }
    notice = request.query_params.get("notice")
    return page(
        request,
        caller,
        "admin/contact.html",
        {
            "c": view,
            "topics": topic_list,
            "notice": notice if notice in NOTICES else None,
            "error": error,
            "draft": draft,
            "draft_purpose": draft_purpose,
            "data": data,
        },
        status_code,
    )


@router.get("/contacts/{contact_id}")
def contact_detail(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return contact_page(request, caller, _contact_id(contact_id))


@router.post("/contacts/{contact_id}/reply")
def contact_reply(
    contact_id: str,
    request: Request,
    text: str = Form(""),
    purpose: str = Form("service"),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Staff answer the contact (normally purpose `service`); refusals are shown, not raised (C5)."""
    check_csrf_form(caller, csrf_token)
    caller.require("messages.send")
    cid = _contact_id(contact_id)
    ctx = get_ctx(request)
    try:
        if not text.strip():
            raise InvalidInput(detail="Write a message first.")
        if len(text) > MAX_TEXT:
            raise InvalidInput(detail="The message is too long.")
        with ctx.db.write() as s:
            message_desk.send_message(ctx, s, caller.tenant_id, caller.actor, cid, purpose[:80], text.strip())
    except (NoLegalBasis, WindowClosed, InvalidInput) as exc:
        return contact_page(
            request,
            caller,
            cid,
            error=error_text(request, exc),
            status_code=status_of(exc),
            draft=text[:MAX_TEXT],
            draft_purpose=purpose[:80],
        )
    except NotFound as exc:
        if exc.message == NotFound.message:
            raise
        # the contact exists but cannot be reached on any channel
        return contact_page(request, caller, cid, error=error_text(request, exc), status_code=409)
    return RedirectResponse(f"/admin/contacts/{cid}?notice=sent#conversation", status_code=303)


@router.post("/contacts/{contact_id}/withdraw")
def contact_withdraw(
    contact_id: str,
    request: Request,
    purpose: str = Form(""),
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Record a withdrawal the contact made by phone, letter or e-mail (C4)."""
    check_csrf_form(caller, csrf_token)
    caller.require("messages.send")
    cid = _contact_id(contact_id)
    purposes = [purpose[:80]] if purpose else None
    try:
        with get_ctx(request).db.write() as s:
            done = message_desk.staff_withdraw(s, caller.tenant_id, caller.actor, cid, purposes)
    except InvalidInput as exc:
        return contact_page(request, caller, cid, error=error_text(request, exc), status_code=status_of(exc))
    notice = "withdrawn" if done else "nothing_withdrawn"
    return RedirectResponse(f"/admin/contacts/{cid}?notice={notice}", status_code=303)


@router.get("/contacts/{contact_id}/proof.json")
def proof_json(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Download the consent proof as JSON (C3)."""
    caller.require("consent.proof")
    cid = _contact_id(contact_id)
    with get_ctx(request).db.write() as s:
        doc = message_desk.contact_proof(s, caller.tenant_id, caller.actor, cid)
    return JSONResponse(
        doc, headers={"content-disposition": f'attachment; filename="consent-proof-{cid}.json"'}
    )


@router.get("/contacts/{contact_id}/proof.html")
def proof_html(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The consent proof as a readable, printable document (C3)."""
    caller.require("consent.proof")
    cid = _contact_id(contact_id)
    with get_ctx(request).db.write() as s:
        doc = message_desk.contact_proof(s, caller.tenant_id, caller.actor, cid)
    return render(request, "proof.html", {"doc": doc})
