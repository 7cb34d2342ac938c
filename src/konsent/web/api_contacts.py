"""REST API: create, update and erase contacts, their consents, and opt-ins started from a shop (M4, C2)."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from konsent.flows import contact_directory
from konsent.flows.privacy import rights
from konsent.web.api_conventions import IDEMPOTENT, write_once
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1", tags=["contacts"])
ContactId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Slug = Annotated[str, Field(max_length=64)]


class ContactIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel_account_id": 1,
                    "address": "+4915112345678",
                    "name": "Erika Mustermann",
                    "topics": ["angebote"],
                    "consent_text_version": 1,
                    "consent_time": "2026-11-30T14:03:00+01:00",
                    "source": "webshop checkout, order 4711",
                }
            ]
        },
    )
    channel_account_id: int = Field(ge=1, le=2**63 - 1)
    address: str = Field(max_length=500, description="Phone number (E.164 or German national) or user id.")
    name: str = Field("", max_length=500)
    locale: str = Field("", max_length=5)
    topics: list[Slug] = Field(default_factory=list, max_length=50)
    consent_text_version: int | None = Field(None, ge=0, le=2**31 - 1, description="Evidence: which text.")
    consent_time: str = Field("", max_length=40, description="Evidence: when, ISO 8601 with time zone.")
    source: str = Field("", max_length=500, description="Evidence: where, e.g. `checkout`.")


class ContactPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Erika Muster"}]})
    name: str | None = Field(None, max_length=500)
    locale: Literal["de", "en"] | None = None


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["staff", "email", "letter", "phone"] = Field(
        "staff", description="How the contact asked for erasure (the request log records it)."
    )


class OptInStart(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"topics": ["angebote"], "locale": "de", "source_url": "https://shop.example"}]
        },
    )
    topics: list[Slug] = Field(min_length=1, max_length=20)
    locale: str = Field("de", max_length=5)
    source_url: str = Field("", max_length=500, description="The page the visitor signed up on (evidence).")
    channel_account_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Default: every channel.")


def _qr_svg(data: str) -> str:
    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True, title="QR code")
    return out.getvalue().decode()


@router.post("/contacts", status_code=201, openapi_extra=IDEMPOTENT)
def create_contact(body: ContactIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Add one contact; consent to `topics` only with complete evidence (C7), never for a suppressed
    or withdrawn address. The answer says what happened (`consented`, `service_only`, `rejected`)."""
    caller.require("settings.manage")
    ctx = get_ctx(request)
    record = {
        "address": body.address,
        "name": body.name,
        "locale": body.locale,
        "topics": ",".join(body.topics),
        "consent_text_version": "" if body.consent_text_version is None else str(body.consent_text_version),
        "consent_time": body.consent_time,
        "source": body.source,
    }

    def run(s: Any) -> dict[str, Any]:
        return contact_directory.create_contact(
            ctx, s, caller.tenant_id, caller.actor, body.channel_account_id, record
        )

    return write_once(request, caller, body, 201, run)


@router.patch("/contacts/{contact_id}")
def update_contact(
    contact_id: ContactId, body: ContactPatch, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Correct a contact's name or language (D3, audited)."""
    caller.require("contacts.personal")
    caller.require("messages.send")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        changed = rights.rectify_contact(
            ctx, s, caller.tenant_id, caller.actor, contact_id, name=body.name, locale=body.locale
        )
    return {"id": contact_id, "changed": changed}


@router.post("/contacts/{contact_id}/erase", openapi_extra=IDEMPOTENT)
def erase_contact(
    contact_id: ContactId, body: EraseIn, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """Erase a contact for good (D2): its key is destroyed, its address suppressed; logged as a request."""
    caller.require("consent.proof")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        rights.staff_erase(ctx, s, caller.tenant_id, caller.actor, contact_id, body.channel)
        return {"id": contact_id, "erased": True}

    return write_once(request, caller, body, 200, run)


@router.get("/contacts/{contact_id}/consents")
def contact_consents(
    contact_id: ContactId, request: Request, caller: Caller = Depends(api_caller)
) -> list[dict[str, Any]]:
    """The contact's consent per purpose: status, text version and when it last changed (C3)."""
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return contact_directory.consents(s, caller.tenant_id, contact_id)


@router.post("/optins", status_code=201, openapi_extra=IDEMPOTENT)
def start_opt_in(body: OptInStart, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Start a double opt-in from a checkout or thank-you page (C2): per channel a code, a deep link
    that opens the messenger with the code prefilled, and its QR code. Nothing is sent and nobody is
    subscribed until the contact sends the code from their own messenger."""
    caller.require("messages.send")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        started = contact_directory.start_opt_in(
            ctx,
            s,
            caller.tenant_id,
            topic_slugs=list(body.topics),
            locale=body.locale,
            source_url=body.source_url,
            channel_account_id=body.channel_account_id,
        )
        return {
            "topics": list(body.topics),
            "channels": [
                {
                    "optin_id": p.request_id,
                    "channel_account_id": a.id,
                    "channel": a.kind,
                    "name": a.name,
                    "code": p.code,
                    "prefill": p.prefill,
                    "deep_link": p.deep_link,
                    "qr_svg": _qr_svg(p.deep_link),
                    "expires_at": p.expires_at.isoformat(),
                }
                for a, p in started
            ],
        }

    return write_once(request, caller, body, 201, run)
