"""Admin pages for the tenant's setup: ledger verification and channel accounts (C3, CH1, S7)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import InvalidInput
from konsent.flows.audit import AUDIT, CONSENT
from konsent.flows.organisation import channel_setup, channel_views
from konsent.flows.privacy import proof
from konsent.web.admin_common import admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter()


@router.get("/ledger")
def ledger_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("ledger.verify")
    return page(request, caller, "admin/ledger.html", {"report": None, "chain": CONSENT})


@router.post("/ledger/verify")
async def ledger_verify(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Recompute the hash chain and name the first broken entry (C3, invariant 3)."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("ledger.verify")
    chain = AUDIT if form.get("chain") == AUDIT else CONSENT
    ctx = get_ctx(request)

    def run() -> proof.ChainReport:
        with ctx.db.read() as s:
            return proof.verify_ledger(s, caller.tenant_id, chain)

    report = await run_in_threadpool(run)
    return page(request, caller, "admin/ledger.html", {"report": report, "chain": chain})


@router.get("/channels")
def channels_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    return render_channels(request, caller)


def render_channels(
    request: Request,
    caller: Caller,
    *,
    error: str = "",
    status_code: int = 200,
    open_kind: str = "",
    values: dict[str, str] | None = None,
    hook: dict[str, object] | None = None,
    edit_id: int | None = None,
) -> Response:
    """The channel page; `edit_id` opens that account's edit form (after a refused change)."""
    caller.require("settings.manage")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        accounts = channel_views.channel_views(ctx, s, caller.tenant_id)
    created = request.query_params.get("created", "")
    return page(
        request,
        caller,
        "admin/channels.html",
        {
            "accounts": accounts,
            "kinds": channel_views.channel_kinds(),
            "error": error,
            "open_kind": open_kind,
            "values": values or {},
            "created": int(created) if created.isdigit() and len(created) < 18 else None,
            "hook": hook,
            "edit_id": edit_id,
            "done": request.query_params.get("done", "")[:20],
        },
        status_code,
    )


@router.post("/channels")
async def channel_create(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Connect a channel account of any registered kind; secrets are sealed and never shown again."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    kind = values.pop("kind", "")[:32]
    name = values.pop("name", "")
    ctx = get_ctx(request)

    def run() -> int:
        with ctx.db.write() as s:
            return channel_views.add_channel_account(
                ctx, s, caller.tenant_id, caller.actor, kind, name, values
            ).id

    try:
        account_id = await run_in_threadpool(run)
    except InvalidInput as exc:
        message, status = error_text(request, exc), status_of(exc)
        # Echo only what is not secret; secrets must be typed again.
        secret_names = {
            f.name for k in channel_views.channel_kinds() if k.kind == kind for f in k.fields if f.secret
        }
        echo = {k: v[:2000] for k, v in values.items() if k not in secret_names}
        echo["name"] = name[:200]
        return await run_in_threadpool(
            lambda: render_channels(
                request,
                caller,
                error=message,
                status_code=status,
                open_kind=kind,
                values=echo,
            )
        )
    return RedirectResponse(f"/admin/channels?created={account_id}#account-{account_id}", status_code=303)


_HOOK_STATUS = {"": 200, "invalid_settings": 422}


@router.post("/channels/{account_id}/webhook")
async def channel_register_webhook(
    account_id: int, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """Register this account's webhook URL and secret at the provider; show what it answered (CH2)."""
    form = await request.form()
    check_csrf_form(caller, str(form.get("csrf_token") or ""))
    caller.require("settings.manage")
    ctx = get_ctx(request)
    try:
        outcome = await channel_setup.register_webhook(ctx, caller.tenant_id, caller.actor, account_id)
    except InvalidInput as exc:
        message, status = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(
            lambda: render_channels(request, caller, error=message, status_code=status)
        )
    hook = {"account_id": account_id, "ok": outcome.ok, "problem": outcome.problem, "detail": outcome.detail}
    return await run_in_threadpool(
        lambda: render_channels(
            request, caller, hook=hook, status_code=_HOOK_STATUS.get(outcome.problem, 502)
        )
    )
