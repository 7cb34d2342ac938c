"""Admin pages for a company's own setup: the first-run sequence, company and privacy-policy data,
the widget snippet and a test sign-up (U5, T1, T2, issue #12).

Topics, consent texts and re-consent are in `admin_topics`. Every page here is also a step of
the guided sequence: with `?setup=1` it says which step it is and "Save and continue" goes on.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError
from konsent.flows.organisation import company
from konsent.web.admin_common import add_nav, admin_caller, error_text, page
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin", include_in_schema=False)

# One entry in the main navigation; topics, consent texts and the other setup pages are listed there.
add_nav("/admin/settings", "Settings", "settings.manage", 85)


def setup_context(request: Request, caller: Caller, key: str) -> dict[str, Any]:
    """What a page needs to show itself as a step of the guided sequence."""
    with get_ctx(request).db.read() as s:
        steps = company.checklist(s, company.get_tenant(s, caller.tenant_id))
    keys = [x.key for x in steps]
    return {
        "setup": request.query_params.get("setup") == "1",
        "steps": steps,
        "step_no": keys.index(key) + 1 if key in keys else 0,
        "step_key": key,
    }


def continue_to(request: Request, caller: Caller, key: str, fallback: str) -> str:
    """After saving: the next step in the guided sequence, or back to the page itself."""
    if request.query_params.get("setup") != "1":
        return fallback
    with get_ctx(request).db.read() as s:
        return company.next_step(s, company.get_tenant(s, caller.tenant_id), key)


@router.get("/setup")
def setup_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The first-run sequence as a checklist; each step links to its page."""
    caller.require("settings.manage")
    return page(request, caller, "admin/setup/setup.html", setup_context(request, caller, ""))


@router.get("/settings")
def settings_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Every setup step, editable later."""
    caller.require("settings.manage")
    return page(request, caller, "admin/setup/settings.html", setup_context(request, caller, ""))


def _company_page(
    request: Request, caller: Caller, error: str = "", values: dict[str, str] | None = None, status: int = 200
) -> Response:
    with get_ctx(request).db.read() as s:
        current = company.company(company.get_tenant(s, caller.tenant_id)).as_dict()
    ctx = {
        **setup_context(request, caller, "company"),
        "values": values or current,
        "error": error,
        "zones": company.zone_names(),
        "saved": request.query_params.get("saved") == "1",
    }
    return page(request, caller, "admin/setup/company.html", ctx, status)


@router.get("/settings/company")
def company_form(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("settings.manage")
    return _company_page(request, caller)


@router.post("/settings/company")
def company_save(
    request: Request,
    csrf_token: str = Form(""),
    name: str = Form(""),
    legal_name: str = Form(""),
    address: str = Form(""),
    representative: str = Form(""),
    dpo_contact: str = Form(""),
    supervisory_authority: str = Form(""),
    privacy_url: str = Form(""),
    privacy_version: str = Form(""),
    default_locale: str = Form(""),
    time_zone: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Controller data, privacy policy, default language and time zone, saved together or not at all."""
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    values = {
        "name": name[:300], "legal_name": legal_name[:300], "address": address[:600],
        "representative": representative[:300], "dpo_contact": dpo_contact[:400],
        "supervisory_authority": supervisory_authority[:400], "privacy_url": privacy_url[:600],
        "privacy_version": privacy_version[:100], "default_locale": default_locale[:8],
        "time_zone": time_zone[:64],
    }  # fmt: skip
    try:
        with get_ctx(request).db.write() as s:
            company.update_company(s, company.get_tenant(s, caller.tenant_id), values, actor=caller.actor)
    except DomainError as exc:
        return _company_page(request, caller, error_text(request, exc), values, status_of(exc))
    return RedirectResponse(continue_to(request, caller, "company", "/admin/settings/company?saved=1"), 303)


@router.get("/setup/widget")
def widget_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """The widget snippet, a preview page with the widget, and the simulator phone for a test sign-up."""
    caller.require("settings.manage")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        info = company.widget_info(ctx, s, company.get_tenant(s, caller.tenant_id))
    return page(
        request, caller, "admin/setup/widget.html", {**setup_context(request, caller, "widget"), "w": info}
    )
