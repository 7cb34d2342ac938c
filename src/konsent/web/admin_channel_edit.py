"""Admin actions on existing channel accounts and on a contact's display name (U5, CH1).

The channel page itself is `admin_setup`; here: edit, replace secrets, switch off and
on, delete when unused. A contact's display name is edited on the contact page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, NotFound
from konsent.flows.organisation import channel_admin, names
from konsent.web import admin_contacts, admin_setup
from konsent.web.admin_common import admin_caller, error_text
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter()
_ACTIONS = ("edit", "disable", "enable", "delete")


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound()
    return int(raw)


@router.post("/channels/{account_id}/{action}")
async def channel_action(
    account_id: str, action: str, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Edit an account (every field checked before saving), switch it off or on, or delete it."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    if action not in _ACTIONS:
        raise NotFound()
    aid = _id(account_id)
    values = {k: v[:2001] for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    ctx = get_ctx(request)

    def run() -> str:
        with ctx.db.write() as s:
            if action == "edit":
                channel_admin.edit_account(
                    ctx, s, caller.tenant_id, caller.actor, aid, values.pop("name", ""), values
                )
                return "saved"
            if action == "delete":
                channel_admin.delete_account(s, caller.tenant_id, caller.actor, aid)
                return "deleted"
            channel_admin.set_active(s, caller.tenant_id, caller.actor, aid, action == "enable")
            return "enabled" if action == "enable" else "disabled"

    try:
        done = await run_in_threadpool(run)
    except NotFound:
        raise
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: admin_setup.render_channels(
                request, caller, error=message, status_code=status, edit_id=aid
            )
        )
    anchor = "" if done == "deleted" else f"#account-{aid}"
    return RedirectResponse(f"/admin/channels?done={done}{anchor}", status_code=303)


@router.post("/contacts/{contact_id}/name")
async def contact_name(contact_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Staff correct a contact's display name; sealed and audited (S1, S4, U5)."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("contacts.personal")
    cid = _id(contact_id)
    name = str(form.get("name") or "")[:1000]
    ctx = get_ctx(request)

    def run() -> None:
        with ctx.db.write() as s:
            names.set_display_name(ctx, s, caller.tenant_id, caller.actor, cid, name)

    try:
        await run_in_threadpool(run)
    except NotFound:
        raise
    except DomainError as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: admin_contacts.contact_page(request, caller, cid, error=message, status_code=status)
        )
    return RedirectResponse(f"/admin/contacts/{cid}", status_code=303)
