"""REST API under /api/v1 (M4). Tenant from the caller's token or session; other tenants' ids → 404."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from starlette.responses import HTMLResponse, JSONResponse, Response

from konsent.flows import contact_directory, contacts, message_desk
from konsent.flows.inbox import scope
from konsent.flows.organisation import names, tenants
from konsent.flows.privacy import importer, proof
from konsent.web import api_interactive
from konsent.web.api_conventions import IDEMPOTENT, PAGE_HEADERS, decode_cursor, page, write_once
from konsent.web.deps import Caller, api_caller, get_ctx, render, request_locale

router = APIRouter(prefix="/api/v1", tags=["api"])

MAX_ID = 2**63 - 1  # ids are BIGINT: anything beyond is no row's id (and would be a database error)
ContactId = Annotated[int, Path(ge=1, le=MAX_ID)]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID)]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=512, description="The template's name as registered, e.g. `order_update`.")
    language: str = Field(max_length=16, description="Its language code as registered, e.g. `de` or `en_US`.")
    params: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list,
        max_length=20,
        description="One value per variable, in order ({{1}}, {{2}}, ...).",
    )


class SendMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt media or template field must not vanish silently

    contact_id: int = Field(ge=1, le=MAX_ID, description="The contact to write to.")
    purpose: str = Field(description="`service` or `newsletter:<topic>`.", max_length=80)
    media_url: str | None = Field(
        None, max_length=2000, description="An https:// link to the file; the provider fetches it."
    )
    media_kind: Literal["image", "document", "video", "audio"] | None = Field(
        None, description="What `media_url` is; required with it."
    )
    template: TemplateIn | None = Field(
        None,
        description="A template registered as APPROVED on the account: outside WhatsApp's 24-hour window "
        "the only way to write first. Not with text or media.",
    )
    text: str = Field(
        "",
        max_length=4096,
        validate_default=True,  # no text at all is checked like an empty one
        description="The message, or the caption of `media_url`. Required otherwise.",
    )
    channel_account_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Defaults to the channel the contact used last."
    )
    buttons: list[api_interactive.ButtonIn] | None = Field(
        None, max_length=20, description=api_interactive.BUTTONS_DOC
    )
    choice_list: api_interactive.ListIn | None = Field(
        None, alias="list", description=api_interactive.LIST_DOC
    )
    link: api_interactive.LinkIn | None = Field(None, description=api_interactive.LINK_DOC)

    @field_validator("text")
    @classmethod
    def _something_to_send(cls, value: str, info: ValidationInfo) -> str:
        template, media = info.data.get("template"), info.data.get("media_url")
        if template is not None and (value or media):
            raise ValueError("send either a template or text and media, not both")
        if template is None and not media and not value.strip():
            raise ValueError("text must not be blank (or give media_url or a template)")
        return value


class ImportContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt evidence field must not vanish silently

    address: str = Field(
        max_length=500, description="Phone number (E.164 or German national) or channel user id."
    )
    name: str = Field("", max_length=500)
    locale: str = Field("", max_length=5, description="`de` or `en`; empty means unknown.")
    topics: list[str] = Field(default_factory=list, max_length=50, description="Topic slugs to subscribe to.")
    consent_text_version: int | None = Field(None, description="Evidence: the consent text they agreed to.")
    consent_time: str = Field("", max_length=40, description="Evidence: when, ISO 8601 with time zone.")
    source: str = Field("", max_length=500, description="Evidence: where, e.g. `webshop checkout 2025`.")

    def as_record(self) -> dict[str, str]:
        version = "" if self.consent_text_version is None else str(self.consent_text_version)
        return {
            "address": self.address,
            "name": self.name,
            "locale": self.locale,
            "topics": ",".join(self.topics),
            "consent_text_version": version,
            "consent_time": self.consent_time,
            "source": self.source,
        }


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: int = Field(ge=1, le=MAX_ID)
    without_evidence: Literal["service_only", "reject"] = Field(
        "service_only", description="Contacts without complete evidence: keep for service only, or reject."
    )
    contacts: list[ImportContactIn] = Field(min_length=1, max_length=1000)


class WithdrawIn(BaseModel):
    purposes: list[str] | None = Field(None, description="Newsletter purposes; omit for all marketing.")


@router.get("/topics")
def list_topics(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return [
            {"slug": t.slug, "purpose": f"newsletter:{t.slug}", "names": t.names, "active": t.active}
            for t in tenants.topics(s, caller.tenant_id, active_only=False)
        ]


@router.get("/channels")
def list_channels(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    caller.require("contacts.read")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        out = []
        for a in tenants.channel_accounts(s, caller.tenant_id):
            caps = ctx.adapter(a.kind).capabilities
            out.append(
                {
                    "id": a.id,
                    "kind": a.kind,
                    "name": a.name,
                    "processing_region": caps.processing_region,
                    "safeguard": caps.safeguard,
                }
            )
        return out


@router.get("/contacts", responses={200: {"headers": PAGE_HEADERS}})
def list_contacts(
    request: Request,
    limit: int = Query(50, ge=1, le=500, description="Page size."),
    cursor: str | None = Query(
        None, max_length=100, description="From `X-Next-Cursor` of the previous page."
    ),
    topic: str | None = Query(None, max_length=80, description="Only contacts with active consent to it."),
    address: str | None = Query(None, max_length=500, description="Only the contact with this number or id."),
    caller: Caller = Depends(api_caller),
) -> Response:
    """Contacts, newest first, without personal data; cursor pagination."""
    caller.require("contacts.read")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        only = scope.contact_filter(s, caller)  # agents: contacts of their teams only
        rows = contact_directory.contacts_page(
            ctx, s, caller.tenant_id, limit, decode_cursor(cursor), topic, address, only=only
        )
        return page(request, [contacts.describe(ctx, s, c, personal=False) for c in rows], limit)


@router.get("/contacts/{contact_id}")
def get_contact(
    contact_id: ContactId, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("contacts.read")
    personal = caller.role != "viewer"
    with get_ctx(request).db.write() as s:
        return message_desk.view_contact(
            get_ctx(request), s, caller.tenant_id, caller.actor, contact_id, personal
        )


@router.get("/contacts/{contact_id}/messages")
def contact_messages(
    contact_id: ContactId, request: Request, caller: Caller = Depends(api_caller)
) -> list[dict[str, Any]]:
    caller.require("contacts.personal")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        return message_desk.conversation_messages(ctx, s, caller.tenant_id, caller.actor, contact_id)


@router.post(
    "/contacts/import",
    responses={404: {"description": "No such channel account for this tenant."}},
    openapi_extra=IDEMPOTENT,
)
def import_contacts(body: ImportIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Add existing contacts; consent only with evidence, suppressed numbers never re-added (C7).

    All accepted contacts go in at once or none do; the answer gives an outcome and a reason per contact.
    """
    caller.require("settings.manage")
    records = [c.as_record() for c in body.contacts]

    def run(s: Any) -> dict[str, Any]:
        rep = importer.import_records(
            get_ctx(request),
            caller.tenant_id,
            body.channel_account_id,
            records,
            actor=caller.actor,
            without_evidence=body.without_evidence,
            session=s,
        )
        return rep.as_dict()

    return write_once(request, caller, body, 200, run)


@router.post("/contacts/{contact_id}/withdraw")
def withdraw(
    contact_id: ContactId, body: WithdrawIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("messages.send")
    with get_ctx(request).db.write() as s:
        done = message_desk.staff_withdraw(s, caller.tenant_id, caller.actor, contact_id, body.purposes)
    return {"withdrawn": done}


class DisplayNameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="The contact's display name; empty clears it.")


@router.put("/contacts/{contact_id}/name")
def set_contact_name(
    contact_id: ContactId, body: DisplayNameIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Correct or clear a contact's display name (by default their messenger profile name); sealed
    at rest and audited (U5, S1, S4)."""
    caller.require("contacts.personal")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        names.set_display_name(ctx, s, caller.tenant_id, caller.actor, contact_id, body.name)
    return {"id": contact_id, "name": " ".join(body.name.split())}


@router.get("/contacts/{contact_id}/proof")
def contact_proof(
    contact_id: ContactId, request: Request, caller: Caller = Depends(api_caller)
) -> JSONResponse:
    """The consent proof as JSON (C3)."""
    caller.require("consent.proof")
    with get_ctx(request).db.write() as s:
        doc = message_desk.contact_proof(s, caller.tenant_id, caller.actor, contact_id)
    return JSONResponse(
        doc, headers={"content-disposition": f'attachment; filename="consent-proof-{contact_id}.json"'}
    )


@router.get("/contacts/{contact_id}/proof.html", response_class=HTMLResponse)
def contact_proof_html(
    contact_id: ContactId, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """The consent proof as a readable document (C3)."""
    caller.require("consent.proof")
    with get_ctx(request).db.write() as s:
        doc = message_desk.contact_proof(s, caller.tenant_id, caller.actor, contact_id)
    return render(request, "proof.html", {"doc": doc}, locale=request_locale(request))


@router.post(
    "/messages",
    status_code=202,
    responses={
        409: {"description": "Refused: the purpose has no legal basis for this contact; the body says why."},
        404: {"description": "No such contact or channel account for this tenant."},
    },
    openapi_extra=IDEMPOTENT,
)
def send_message(body: SendMessageIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Queue a message. Refused with 409 and the reason unless its purpose has a legal basis (C5).

    With an `Idempotency-Key`, a retry returns the first answer and queues nothing again."""
    caller.require("messages.send")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        scope.require_contact(s, caller, body.contact_id)  # agents: only contacts of their teams
        t = body.template
        msg = message_desk.send_message(
            ctx,
            s,
            caller.tenant_id,
            caller.actor,
            body.contact_id,
            body.purpose,
            body.text,
            body.channel_account_id,
            media_url=body.media_url,
            media_kind=body.media_kind,
            template=message_desk.TemplateRef(t.name, t.language, tuple(t.params)) if t else None,
            choices=api_interactive.to_domain(body.buttons, body.choice_list, body.link),
        )
        return message_desk.describe_message(ctx, s, msg, with_body=False)

    return write_once(request, caller, body, 202, run)


@router.get("/messages/{message_id}")
def get_message(
    message_id: MessageId, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("contacts.read")
    ctx = get_ctx(request)
    with ctx.db.read() as s:
        return message_desk.describe_message(
            ctx, s, message_desk.get_message(s, caller.tenant_id, message_id), False
        )


@router.get("/messages/{message_id}/media", responses={404: {"description": "No attachment"}})
async def message_media(
    message_id: MessageId, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """Fetch an inbound attachment from the provider when someone opens it (CH2); audited."""
    caller.require("contacts.personal")
    ctx = get_ctx(request)

    def locate() -> tuple[Any, str]:
        with ctx.db.write() as s:
            return message_desk.media_to_fetch(ctx, s, caller.tenant_id, caller.actor, message_id)

    account, ref = await run_in_threadpool(locate)
    got = await ctx.adapter(account.kind).fetch_media(account, ref)
    if got is None:
        return JSONResponse(
            {"code": "provider_unavailable", "message": "The provider did not hand out this attachment."}, 502
        )
    data, mime = got
    return Response(
        data,
        media_type=mime or "application/octet-stream",
        headers={"content-disposition": "attachment", "cache-control": "no-store"},
    )


@router.get("/ledger/verify")
async def verify_ledger(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """Recompute the tenant's consent-ledger hash chain; name the first broken entry (C3)."""
    caller.require("ledger.verify")
    ctx = get_ctx(request)

    def run() -> dict[str, Any]:
        with ctx.db.read() as s:
            r = proof.verify_ledger(s, caller.tenant_id)
        return {"ok": r.ok, "checked": r.checked, "first_broken_seq": r.first_broken_seq, "reason": r.reason}

    return await run_in_threadpool(run)
