"""Admin contact pages: list, consent state and ledger, conversation, reply, withdraw, proof (C3, C4, C5)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.flows import admin_ops, api_ops
from konsent.flows.inbox import scope
from konsent.flows.organisation import names, staff, tenants
from konsent.web.admin_common import admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx, render
from konsent.web.errors import status_of

router = APIRouter()

PAGE_SIZE = 50
MAX_TEXT = 4096
NOTICES = ("sent", "withdrawn", "nothing_withdrawn")


def _contact_id(raw: str) -> int:
    # Ids are positive integers; anything else is simply not a contact of this tenant.
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


@router.get("/contacts")
def contact_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Contacts with their consent states; display names only for roles that see personal data,
    then with one audit entry for the page (S4, U5)."""
    caller.require("contacts.read")
    raw = request.query_params.get("page", "1")
    number = int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1
    ctx = get_ctx(request)
    personal = staff.allowed(caller.role, "contacts.personal")
    with ctx.db.write() if personal else ctx.db.read() as s:
        only = scope.contact_filter(s, caller)  # agents: contacts of their teams only
        rows = admin_ops.contact_list(s, caller.tenant_id, PAGE_SIZE + 1, (number - 1) * PAGE_SIZE, only)
        display = (
            names.names_for_list(ctx, s, caller.tenant_id, caller.actor, [r.id for r in rows[:PAGE_SIZE]])
            if personal
            else {}
        )
    return page(
        request,
        caller,
        "admin/contacts.html",
        {
            "rows": rows[:PAGE_SIZE],
            "page_no": number,
            "has_next": len(rows) > PAGE_SIZE,
            "display": display,
            "personal": personal,
        },
    )


def _contact_page(
    request: Request,
    caller: Caller,
    contact_id: int,
    *,
    error: str = "",
    status_code: int = 200,
    draft: str = "",
    draft_purpose: str = "service",
) -> Response:
    caller.require("contacts.read")
    personal = staff.allowed(caller.role, "contacts.personal")
    ctx = get_ctx(request)
    with ctx.db.write() as s:  # a write: viewing personal data appends to the audit log (S4)
        view = admin_ops.contact_page(ctx, s, caller.tenant_id, caller.actor, contact_id, personal)
        topic_list = tenants.topics(s, caller.tenant_id)
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
        },
        status_code,
    )


@router.get("/contacts/{contact_id}")
def contact_detail(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return _contact_page(request, caller, _contact_id(contact_id))


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
            api_ops.send_message(ctx, s, caller.tenant_id, caller.actor, cid, purpose[:80], text.strip())
    except (NoLegalBasis, WindowClosed, InvalidInput) as exc:
        return _contact_page(
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
        return _contact_page(request, caller, cid, error=error_text(request, exc), status_code=409)
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
            done = api_ops.staff_withdraw(s, caller.tenant_id, caller.actor, cid, purposes)
    except InvalidInput as exc:
        return _contact_page(request, caller, cid, error=error_text(request, exc), status_code=status_of(exc))
    notice = "withdrawn" if done else "nothing_withdrawn"
    return RedirectResponse(f"/admin/contacts/{cid}?notice={notice}", status_code=303)


@router.get("/contacts/{contact_id}/proof.json")
def proof_json(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Download the consent proof as JSON (C3)."""
    caller.require("consent.proof")
    cid = _contact_id(contact_id)
    with get_ctx(request).db.write() as s:
        doc = api_ops.contact_proof(s, caller.tenant_id, caller.actor, cid)
    return JSONResponse(
        doc, headers={"content-disposition": f'attachment; filename="consent-proof-{cid}.json"'}
    )


@router.get("/contacts/{contact_id}/proof.html")
def proof_html(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The consent proof as a readable, printable document (C3)."""
    caller.require("consent.proof")
    cid = _contact_id(contact_id)
    with get_ctx(request).db.write() as s:
        doc = api_ops.contact_proof(s, caller.tenant_id, caller.actor, cid)
    return render(request, "proof.html", {"doc": doc})
