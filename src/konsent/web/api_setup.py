"""REST API for a company's setup: company data, topics, consent texts, re-consent (U5, C6, issue #12).

The same flows as the admin pages and the CLI; the tenant comes from the caller's token or session.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from konsent.flows.organisation import company, consent_texts, topics
from konsent.flows.outbound import reconsent
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1", tags=["setup"])

Slug = Annotated[str, Path(max_length=63)]
Locale = Annotated[str, Path(max_length=8, description="`de` or `en`.")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


class LocalizedText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    de: str | None = Field(None, max_length=500)
    en: str | None = Field(None, max_length=500)

    def values(self) -> dict[str, str]:
        return {k: v for k, v in (("de", self.de), ("en", self.en)) if v is not None}


class TopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(max_length=63, description="Lower-case letters, digits, _ or -; never changes.")
    names: LocalizedText = Field(description="At least one of de / en.")
    descriptions: LocalizedText = Field(default_factory=LocalizedText)


class TopicPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: LocalizedText | None = None
    descriptions: LocalizedText | None = None
    archived: bool | None = Field(None, description="true archives, false restores.")
    move: Literal[-1, 1] | None = Field(None, description="-1 moves the topic up, 1 down.")


class TopicOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slugs: list[Annotated[str, Field(max_length=63)]] = Field(
        max_length=500, description="Every active topic once."
    )


class ConsentTextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=5000, description="Published as a new version when it differs.")


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    legal_name: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)
    representative: str | None = Field(None, max_length=200)
    dpo_contact: str | None = Field(None, max_length=300)
    supervisory_authority: str | None = Field(None, max_length=300)
    privacy_url: str | None = Field(None, max_length=500)
    privacy_version: str | None = Field(None, max_length=64)
    default_locale: str | None = Field(None, max_length=8)
    time_zone: str | None = Field(None, max_length=64)


class TemplateChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=512)
    language: str = Field(max_length=16)
    params: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=20, description="`{code}` in a value becomes the contact's code."
    )


class ReconsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locale: str = Field(max_length=8, description="The language whose current text to ask for.")
    topics: list[Annotated[str, Field(max_length=63)]] | None = Field(None, max_length=500)
    template: TemplateChoiceIn | None = Field(
        None, description="For contacts outside WhatsApp's 24-hour window: an APPROVED template."
    )


@router.get("/company")
def get_company(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """Controller data, privacy policy, default language, time zone, and the setup checklist."""
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        tenant = company.get_tenant(s, caller.tenant_id)
        steps = company.checklist(s, tenant)
        return {
            **company.company(tenant).as_dict(),
            "setup": [{"step": x.key, "done": x.done} for x in steps],
        }


@router.put("/company")
def put_company(body: CompanyIn, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """Change any of the fields; all are checked before anything is saved."""
    caller.require("settings.manage")
    values = body.model_dump(exclude_none=True)
    with get_ctx(request).db.write() as s:
        return company.update_company(
            s, company.get_tenant(s, caller.tenant_id), values, actor=caller.actor
        ).as_dict()


@router.post("/topics", status_code=201)
def create_topic(body: TopicIn, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """A new topic; contacts consent to it as purpose `newsletter:<slug>`. A taken slug is 409."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        tp = topics.create_topic(
            s, company.get_tenant(s, caller.tenant_id), body.slug, body.names.values(),
            body.descriptions.values(), actor=caller.actor,
        )  # fmt: skip
        return topics.topic_view(tp, "de")


@router.get("/topics/{slug}")
def get_topic(slug: Slug, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        view = topics.topic_view(topics.get_topic(s, caller.tenant_id, slug), "de")
        view["active_consents"] = topics.active_consents(s, caller.tenant_id).get(slug, 0)
        return view


@router.patch("/topics/{slug}")
def patch_topic(
    slug: Slug, body: TopicPatch, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Rename, describe, archive or restore, move. The slug, consents and proofs never change."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        tid, who = caller.tenant_id, caller.actor
        topics.get_topic(s, tid, slug)
        if body.names is not None or body.descriptions is not None:
            topics.update_topic(
                s, tid, slug,
                names=body.names.values() if body.names else None,
                descriptions=body.descriptions.values() if body.descriptions else None,
                actor=who,
            )  # fmt: skip
        if body.archived is True:
            topics.archive_topic(s, tid, slug, actor=who)
        elif body.archived is False:
            topics.restore_topic(s, tid, slug, actor=who)
        if body.move is not None:
            topics.move_topic(s, tid, slug, body.move, actor=who)
        return topics.topic_view(topics.get_topic(s, tid, slug), "de")


@router.put("/topics-order")
def order_topics(
    body: TopicOrderIn, request: Request, caller: Caller = Depends(api_caller)
) -> list[dict[str, Any]]:
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        return [
            topics.topic_view(tp, "de")
            for tp in topics.set_order(s, caller.tenant_id, body.slugs, actor=caller.actor)
        ]


@router.delete("/topics/{slug}", status_code=204)
def delete_topic(slug: Slug, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Only a topic nothing refers to; otherwise 409 (archive it instead)."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        topics.delete_topic(s, caller.tenant_id, slug, actor=caller.actor)
    return Response(status_code=204)


@router.get("/consent-texts/{locale}")
def list_texts(
    locale: Locale, request: Request, caller: Caller = Depends(api_caller)
) -> list[dict[str, Any]]:
    """Every version of one language, newest first."""
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return [consent_texts.text_view(ct) for ct in consent_texts.versions(s, caller.tenant_id, locale)]


@router.post("/consent-texts/{locale}", status_code=201)
def publish_text(
    locale: Locale, body: ConsentTextIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Publish a new version (an unchanged text keeps the current one). Empty text: 422."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        ct = consent_texts.publish(
            s, company.get_tenant(s, caller.tenant_id), locale, body.text, actor=caller.actor
        )
        return consent_texts.text_view(ct)


@router.get("/consent-texts/{locale}/diff")
def diff_texts(
    locale: Locale,
    request: Request,
    old: Annotated[int, Query(ge=1, le=2**31 - 1, alias="from")],
    new: Annotated[int, Query(ge=1, le=2**31 - 1, alias="to")],
    caller: Caller = Depends(api_caller),
) -> dict[str, Any]:
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        lines = consent_texts.diff(s, caller.tenant_id, locale, old, new)
        return {
            "from": old,
            "to": new,
            "lines": [{"kind": x.kind, "text": x.text} for x in lines],
            "unified": consent_texts.unified_diff(s, caller.tenant_id, locale, old, new),
        }


@router.get("/consent-texts/{locale}/{version}")
def get_text(
    locale: Locale, version: Version, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """One version exactly as it was given."""
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return consent_texts.text_view(consent_texts.get_version(s, caller.tenant_id, locale, version))


@router.post("/reconsent", status_code=201)
def start_reconsent(
    body: ReconsentIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Ask the contacts on an older text version to confirm the current one (C6)."""
    caller.require("settings.manage")
    ctx = get_ctx(request)
    choice = (
        reconsent.TemplateChoice(body.template.name, body.template.language, tuple(body.template.params))
        if body.template
        else None
    )
    with ctx.db.write() as s:
        tenant = company.get_tenant(s, caller.tenant_id)
        c = reconsent.start(
            ctx, s, tenant, body.locale, topic_slugs=body.topics, template=choice, actor=caller.actor
        )
        cid = c.id
    with ctx.db.read() as s:
        return reconsent.progress(s, company.get_tenant(s, caller.tenant_id), cid).as_dict()


@router.get("/reconsent/{campaign_id}")
def reconsent_progress(
    campaign_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    caller: Caller = Depends(api_caller),
) -> dict[str, Any]:
    caller.require("settings.manage")
    with get_ctx(request).db.read() as s:
        return reconsent.progress(s, company.get_tenant(s, caller.tenant_id), campaign_id).as_dict()
