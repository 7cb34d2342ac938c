"""Admin pages for topics, versioned consent texts and re-consent (U5, C1, C6, issue #12)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.flows.organisation import company, consent_texts, topics
from konsent.flows.outbound import reconsent, templates
from konsent.i18n import LOCALES
from konsent.web.admin_common import admin_caller, error_text, page
from konsent.web.admin_company import continue_to, setup_context
from konsent.web.deps import Caller, check_csrf_form, get_ctx
from konsent.web.errors import status_of

router = APIRouter(prefix="/admin", include_in_schema=False)


_ACTIONS = ("archive", "restore", "up", "down", "delete")


def _topics_page(
    request: Request, caller: Caller, error: str = "", values: dict[str, str] | None = None, status: int = 200
) -> Response:
    with get_ctx(request).db.read() as s:
        rows = topics.all_topics(s, caller.tenant_id)
        counts = topics.active_consents(s, caller.tenant_id)
    ctx = {
        **setup_context(request, caller, "topics"),
        "topics": rows,
        "counts": counts,
        "error": error,
        "values": values or {},
        "notice": request.query_params.get("notice", "")[:20],
    }
    return page(request, caller, "admin/setup/topics.html", ctx, status)


@router.get("/topics")
def topics_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("settings.manage")
    return _topics_page(request, caller)


@router.post("/topics")
def topic_create(
    request: Request,
    csrf_token: str = Form(""),
    slug: str = Form(""),
    name_de: str = Form(""),
    name_en: str = Form(""),
    description_de: str = Form(""),
    description_en: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    values = {"slug": slug[:100], "name_de": name_de[:200], "name_en": name_en[:200],
              "description_de": description_de[:1000], "description_en": description_en[:1000]}  # fmt: skip
    try:
        with get_ctx(request).db.write() as s:
            topics.create_topic(
                s,
                company.get_tenant(s, caller.tenant_id),
                values["slug"],
                {"de": values["name_de"], "en": values["name_en"]},
                {"de": values["description_de"], "en": values["description_en"]},
                actor=caller.actor,
            )
    except DomainError as exc:
        return _topics_page(request, caller, error_text(request, exc), values, status_of(exc))
    suffix = "?setup=1" if request.query_params.get("setup") == "1" else "?notice=created"
    return RedirectResponse(f"/admin/topics{suffix}", 303)


@router.post("/topics/{slug}")
def topic_update(
    slug: str,
    request: Request,
    csrf_token: str = Form(""),
    name_de: str = Form(""),
    name_en: str = Form(""),
    description_de: str = Form(""),
    description_en: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Rename or describe a topic; its slug, consents and proofs stay as they are."""
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    try:
        with get_ctx(request).db.write() as s:
            topics.update_topic(
                s, caller.tenant_id, slug[:63],
                names={"de": name_de[:200], "en": name_en[:200]},
                descriptions={"de": description_de[:1000], "en": description_en[:1000]},
                actor=caller.actor,
            )  # fmt: skip
    except DomainError as exc:
        return _topics_page(request, caller, error_text(request, exc), None, status_of(exc))
    return RedirectResponse("/admin/topics?notice=saved", 303)


@router.post("/topics/{slug}/{action}")
def topic_action(
    slug: str,
    action: str,
    request: Request,
    csrf_token: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Archive, restore, move up or down, or delete (only a topic nothing refers to)."""
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    if action not in _ACTIONS:
        raise NotFound()
    try:
        with get_ctx(request).db.write() as s:
            tid, who = caller.tenant_id, caller.actor
            if action == "archive":
                topics.archive_topic(s, tid, slug[:63], actor=who)
            elif action == "restore":
                topics.restore_topic(s, tid, slug[:63], actor=who)
            elif action == "delete":
                topics.delete_topic(s, tid, slug[:63], actor=who)
            else:
                topics.move_topic(s, tid, slug[:63], -1 if action == "up" else 1, actor=who)
    except DomainError as exc:
        return _topics_page(request, caller, error_text(request, exc), None, status_of(exc))
    return RedirectResponse(f"/admin/topics?notice={action}", 303)


def _texts_page(
    request: Request, caller: Caller, error: str = "", values: dict[str, str] | None = None, status: int = 200
) -> Response:
    with get_ctx(request).db.read() as s:
        tenant = company.get_tenant(s, caller.tenant_id)
        per_locale: dict[str, dict[str, Any]] = {
            loc: {
                "versions": consent_texts.versions(s, tenant.id, loc),
                "by_version": consent_texts.consents_by_version(s, tenant.id, loc),
            }
            for loc in LOCALES
        }
        campaigns = reconsent.campaigns(s, tenant)
        topic_rows = topics.all_topics(s, tenant.id)
        choices = templates.approved_choices(s, tenant.id)
    current = {loc: (d["versions"][0].text if d["versions"] else "") for loc, d in per_locale.items()}
    ctx = {
        **setup_context(request, caller, "texts"),
        "per_locale": per_locale,
        "values": values or current,
        "error": error,
        "campaigns": campaigns,
        "template_choices": choices,
        "topics": topic_rows,
        "notice": request.query_params.get("notice", "")[:20],
    }
    return page(request, caller, "admin/setup/consent_texts.html", ctx, status)


@router.get("/consent-texts")
def texts_page(request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    caller.require("settings.manage")
    return _texts_page(request, caller)


@router.post("/consent-texts")
def texts_save(
    request: Request,
    csrf_token: str = Form(""),
    locale: str = Form(""),
    text: str = Form(""),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Publish a changed text as a new version; earlier versions stay exactly as they were."""
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    try:
        with get_ctx(request).db.write() as s:
            consent_texts.publish(
                s, company.get_tenant(s, caller.tenant_id), locale[:8], text[:20000], actor=caller.actor
            )
    except DomainError as exc:
        return _texts_page(
            request, caller, error_text(request, exc), {locale[:8]: text[:20000]}, status_of(exc)
        )
    return RedirectResponse(
        continue_to(request, caller, "texts", "/admin/consent-texts?notice=published"), 303
    )


@router.get("/consent-texts/{locale}/diff")
def text_diff(
    locale: str, request: Request, old: int = 0, new: int = 0, caller: Caller = Depends(admin_caller)
) -> Response:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        lines = consent_texts.diff(s, caller.tenant_id, locale[:8], old, new)
    return page(
        request,
        caller,
        "admin/setup/consent_diff.html",
        {"locale": locale, "old": old, "new": new, "lines": lines},
    )


@router.get("/consent-texts/{locale}/{version}")
def text_version(
    locale: str, version: int, request: Request, caller: Caller = Depends(admin_caller)
) -> Response:
    """One version exactly as given; proofs of consents point at it."""
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        row = consent_texts.get_version(s, caller.tenant_id, locale[:8], version)
        ctx = {"ct": row, "by_version": consent_texts.consents_by_version(s, caller.tenant_id, row.locale)}
    return page(request, caller, "admin/setup/consent_version.html", ctx)


@router.post("/reconsent")
def reconsent_start(
    request: Request,
    csrf_token: str = Form(""),
    locale: str = Form(""),
    template: str = Form(""),
    template_params: str = Form(""),
    topic: list[str] = Form([]),
    caller: Caller = Depends(admin_caller),
) -> Response:
    """Ask the contacts on an older version of `locale` (of the ticked topics, or all) to confirm
    the current text (C6)."""
    check_csrf_form(caller, csrf_token)
    caller.require("settings.manage")
    choice = None
    if template.strip():
        name, _, lang = template.strip().partition("|")
        params = tuple(p.strip() for p in template_params.split("\n") if p.strip())
        choice = reconsent.TemplateChoice(name[:512], lang[:16], params[:20])
    ctx = get_ctx(request)
    try:
        with ctx.db.write() as s:
            campaign = reconsent.start(
                ctx,
                s,
                company.get_tenant(s, caller.tenant_id),
                locale[:8],
                topic_slugs=[x[:63] for x in topic[:500]] or None,
                template=choice,
                actor=caller.actor,
            )
            cid = campaign.id
    except (InvalidInput, NotFound) as exc:
        return _texts_page(request, caller, error_text(request, exc), None, status_of(exc))
    return RedirectResponse(f"/admin/reconsent/{cid}", 303)


@router.get("/reconsent/{campaign_id}")
def reconsent_page(campaign_id: int, request: Request, caller: Caller = Depends(admin_caller)) -> Response:
    """Progress of one re-consent request: asked, not askable (why), confirmed, still waiting."""
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        p = reconsent.progress(s, company.get_tenant(s, caller.tenant_id), campaign_id)
    return page(request, caller, "admin/setup/reconsent.html", {"p": p})
