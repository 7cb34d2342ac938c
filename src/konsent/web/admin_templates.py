"""Admin pages of the template registry: list, add, edit, remove, import Meta's JSON (M1, CH3).

Owners and admins manage; agents read. Thin views: check the permission and the CSRF token,
call one flow in one transaction, redirect or re-render with the error a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, InvalidInput
from konsent.domain.templates import N_, TemplateImportInvalid, TemplateSpec
from konsent.flows.outbound import templates
from konsent.flows.outbound.templates import AccountConfig, TemplateFetch
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.admin_inbox_setup import int_id, opt_int
from konsent.web.deps import Caller, check_csrf_form, get_ctx, gettext_for, request_locale
from konsent.web.errors import status_of

router = APIRouter(include_in_schema=False)
add_nav("/admin/templates", "Templates", templates.READ, 65)

MAX_IMPORT_BYTES = 2_000_000


def _render(
    request: Request,
    caller: Caller,
    *,
    edit_id: int | None = None,
    error: str = "",
    problems: list[str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    caller.require(templates.READ)
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        rows = templates.list_templates(s, caller)
        accounts = templates.template_accounts(ctx, s, caller.tenant_id)
        editing = templates.get_template(s, caller.tenant_id, edit_id) if edit_id is not None else None
    names = {a.id: a.name for a in accounts}
    return page(
        request,
        caller,
        "admin/inbox/templates.html",
        {
            "rows": rows,
            "accounts": accounts,
            "account_names": names,
            "editing": editing,
            "error": error,
            "problems": problems or [],
            "form": form or {},
            "notice": _notice(request),
        },
        status_code,
    )


def _notice(request: Request) -> str:
    _ = gettext_for(request_locale(request))
    raw = request.query_params.get("notice", "")
    if raw == "saved":
        return _("Template saved.")
    if raw == "deleted":
        return _("Template removed.")
    parts = raw.split("-")
    if len(parts) == 4 and parts[0] == "imported" and all(p.isdigit() and len(p) < 6 for p in parts[1:]):
        return _(
            "Import done: {added} added, {changed} changed, {unchanged} unchanged.",
            added=parts[1], changed=parts[2], unchanged=parts[3],
        )  # fmt: skip
    return ""


@router.get("/templates")
def template_list(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The registry: every template of the tenant's template channels (M1)."""
    return _render(request, caller)


@router.get("/templates/{template_id}")
def template_edit(template_id: str, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """One template in the edit form (read-only for agents)."""
    return _render(request, caller, edit_id=int_id(template_id))


def _spec(
    name: str, language: str, category: str, status: str, body: str, header: str, buttons: str
) -> TemplateSpec:
    return TemplateSpec(
        name=name[:512],
        language=language[:16],
        category=category[:20],
        status=status[:20],
        body=body[:2000],
        header=header[:200],
        buttons=tuple(b for b in buttons[:1000].split("\n")),
    )


def _save(
    request: Request, caller: Caller, tid: int | None, account: str, spec: TemplateSpec, csrf: str
) -> Response:
    check_csrf_form(caller, csrf)
    caller.require(templates.MANAGE)
    ctx = get_ctx(request)
    acc = opt_int(account)
    try:
        with ctx.db.write() as s:
            if acc is None:
                raise InvalidInput(detail=templates.NO_TEMPLATES)
            templates.save_template(ctx, s, caller, acc, spec, template_id=tid)
    except DomainError as exc:
        form = {**spec.__dict__, "buttons": "\n".join(spec.buttons), "account": account}
        if status_of(exc) == 404 and tid is not None:
            raise
        return _render(
            request,
            caller,
            edit_id=tid,
            error=error_text(request, exc),
            form=form,
            status_code=status_of(exc),
        )
    return RedirectResponse("/admin/templates?notice=saved", status_code=303)


@dataclass(frozen=True)
class _Posted:
    """The add and edit forms: which account, the template as typed, the CSRF token."""

    account: str
    spec: TemplateSpec
    csrf: str


def _posted(
    account: str = Form(""),
    name: str = Form(""),
    language: str = Form(""),
    category: str = Form(""),
    status: str = Form(""),
    body: str = Form(""),
    header: str = Form(""),
    buttons: str = Form(""),
    csrf_token: str = Form(""),
) -> _Posted:
    return _Posted(account, _spec(name, language, category, status, body, header, buttons), csrf_token)


@router.post("/templates")
def template_add(
    request: Request, form: _Posted = Depends(_posted), caller: Caller = Depends(admin_caller)
) -> Response:
    """Add a template by hand (or replace the one with the same name and language)."""
    return _save(request, caller, None, form.account, form.spec, form.csrf)


@router.post("/templates/sync")
async def template_sync(
    request: Request,
    caller: Caller = Depends(admin_caller),
    account: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Fetch the templates from the provider (WhatsApp Cloud API: `GET /<WABA_ID>/message_templates`)."""
    check_csrf_form(caller, csrf_token)
    caller.require(templates.MANAGE)
    ctx = get_ctx(request)
    acc = opt_int(account) or 0

    def source() -> AccountConfig:
        with ctx.db.read() as s:
            return templates.sync_source(ctx, s, caller, acc)

    def store(fetched: TemplateFetch) -> templates.ImportResult:
        with ctx.db.write() as s:
            return templates.store_fetched(ctx, s, caller, acc, fetched)

    try:
        config = await run_in_threadpool(source)
        fetched = await ctx.adapter(config.kind).fetch_templates(config)
        result = await run_in_threadpool(store, fetched)
    except TemplateImportInvalid as exc:
        lines = _problem_lines(request, exc)
        error = _t(request, exc.message)
        return await run_in_threadpool(_render, request, caller, error=error, problems=lines, status_code=422)
    except DomainError as exc:
        text, code = error_text(request, exc), status_of(exc)
        return await run_in_threadpool(_render, request, caller, error=text, status_code=code)
    notice = f"imported-{result.added}-{result.changed}-{result.unchanged}"
    return RedirectResponse(f"/admin/templates?notice={notice}", status_code=303)


def _t(request: Request, msgid: str) -> str:
    return gettext_for(request_locale(request))(msgid)


def _problem_lines(request: Request, exc: TemplateImportInvalid) -> list[str]:
    """Each broken template as a sentence in the admin's language."""
    _ = gettext_for(request_locale(request))
    return [
        _("Template {number} ({name}): {reason}", number=n, name=name or "—", reason=_(reason))
        if n
        else _(reason)
        for n, name, reason in exc.problems
    ]


@router.post("/templates/import")
async def template_import(
    request: Request,
    caller: Caller = Depends(admin_caller),
    account: str = Form(""),
    json_text: str = Form(""),
    file: UploadFile | None = File(None),
    csrf_token: str = Form(""),
) -> Response:
    """Import Meta's `message_templates` JSON: every template, or none with each error listed."""
    check_csrf_form(caller, csrf_token)
    caller.require(templates.MANAGE)
    raw = json_text
    if file is not None and file.filename:
        data = await file.read(MAX_IMPORT_BYTES + 1)
        raw = data.decode("utf-8", errors="replace")
    form = {"json_text": json_text[:MAX_IMPORT_BYTES], "import_account": account}
    return await run_in_threadpool(_import, request, caller, opt_int(account), raw, form)


def _import(request: Request, caller: Caller, acc: int | None, raw: str, form: dict[str, Any]) -> Response:
    ctx = get_ctx(request)
    try:
        if len(raw) > MAX_IMPORT_BYTES:
            raise InvalidInput(detail=N_("the import is larger than 2 MB"))
        if acc is None:
            raise InvalidInput(detail=templates.NO_TEMPLATES)
        with ctx.db.write() as s:
            result = templates.import_templates(ctx, s, caller, acc, raw)
    except TemplateImportInvalid as exc:
        lines = _problem_lines(request, exc)
        return _render(
            request,
            caller,
            error=_t(request, exc.message),
            problems=lines,
            form=form,
            status_code=status_of(exc),
        )
    except DomainError as exc:
        return _render(request, caller, error=error_text(request, exc), form=form, status_code=status_of(exc))
    notice = f"imported-{result.added}-{result.changed}-{result.unchanged}"
    return RedirectResponse(f"/admin/templates?notice={notice}", status_code=303)


@router.post("/templates/{template_id}")
def template_update(
    template_id: str,
    request: Request,
    form: _Posted = Depends(_posted),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Change a template; its version goes up, so sent messages say which text they used."""
    return _save(request, caller, int_id(template_id), form.account, form.spec, form.csrf)


@router.post("/templates/{template_id}/delete")
def template_delete(
    template_id: str, request: Request, csrf_token: str = Form(""), caller: Caller = Depends(admin_caller)
) -> Response:
    """Remove a template from the registry."""
    check_csrf_form(caller, csrf_token)
    caller.require(templates.MANAGE)
    tid = int_id(template_id)
    with get_ctx(request).db.write() as s:
        templates.delete_template(s, caller, tid)
    return RedirectResponse("/admin/templates?notice=deleted", status_code=303)
