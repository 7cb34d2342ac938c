"""REST API for broadcasts, templates, privacy requests and the audit log (M3, M4, D5, S4).

Each route calls the flow the admin uses, with the admin's permissions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from konsent.flows import contact_directory
from konsent.flows.outbound import broadcast, broadcast_stats, templates
from konsent.flows.privacy import proof, rights
from konsent.web import api_interactive
from konsent.web.api_conventions import IDEMPOTENT, write_once
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1")
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
VIEW, MANAGE = "contacts.read", "settings.manage"  # as the admin's broadcast pages


class BroadcastIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "November offers", "topic": "angebote", "text": "20% off!"}]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    topic: str = Field(max_length=64, description="Only contacts with active consent to it receive it.")
    text: str = Field("", max_length=4096)
    template: str | None = Field(None, max_length=512, description="A registered, approved template.")
    template_language: str | None = Field(None, max_length=16)
    template_params: list[Annotated[str, Field(max_length=1000)]] | None = Field(None, max_length=20)
    channel_account_id: int | None = Field(None, ge=1, le=2**63 - 1)
    media_url: str | None = Field(None, max_length=2000)
    media_kind: Literal["image", "document", "video", "audio"] | None = None
    segment: dict[str, Any] | None = Field(None, description="Criteria that narrow the audience (M5).")
    segment_id: int | None = Field(None, ge=1, le=2**63 - 1, description="A saved segment, copied in.")
    buttons: list[api_interactive.ButtonIn] | None = Field(
        None, max_length=20, description="Up to 3 reply buttons under the text (CH5); not with `link`."
    )
    link: api_interactive.LinkIn | None = Field(None, description=api_interactive.LINK_DOC)


class ScheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"at": "2026-12-24T09:00:00+01:00"}]}
    )
    at: datetime | None = Field(None, description="When to start; omit to start now.")


class PrivacyRequestIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "access", "channel": "email", "contact_id": 1}]},
    )
    kind: Literal["access", "erasure", "rectification", "objection"]
    channel: Literal["keyword", "portal", "staff", "email", "letter", "phone"]
    contact_id: int | None = Field(None, ge=1, le=2**63 - 1)
    note: str = Field("", max_length=500)


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["done", "rejected"] = "done"


@router.get("/broadcasts", tags=["broadcasts"])
def list_broadcasts(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return [broadcast_stats.describe(b) for b in broadcast.list_broadcasts(s, caller.tenant_id)]


@router.post("/broadcasts", status_code=201, tags=["broadcasts"], openapi_extra=IDEMPOTENT)
def create_broadcast(body: BroadcastIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """A draft; nothing is queued until it is scheduled (M3)."""
    caller.require(MANAGE)
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        fields = body.model_dump(exclude_none=True, exclude={"buttons", "link"})
        choices = api_interactive.to_domain(body.buttons, None, body.link)
        b = broadcast.create_broadcast(
            ctx, s, caller.tenant_id, author=caller.actor, choices=choices, **fields
        )
        return broadcast_stats.describe(b)

    return write_once(request, caller, body, 201, run)


@router.get("/broadcasts/{broadcast_id}", tags=["broadcasts"])
def get_broadcast(broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """The broadcast with its statistics: queued, sent, delivered, read, failed, opt-outs caused."""
    caller.require(VIEW)
    return broadcast.progress(get_ctx(request), caller.tenant_id, broadcast_id)


def _act(request: Request, caller: Caller, broadcast_id: int, action: str, at: datetime | None = None) -> Any:
    caller.require(MANAGE)
    b = broadcast.act(get_ctx(request), caller.tenant_id, broadcast_id, action, caller.actor, at)
    return broadcast_stats.describe(b)


@router.post("/broadcasts/{broadcast_id}/schedule", tags=["broadcasts"])
def schedule(
    broadcast_id: Id, body: ScheduleIn, request: Request, caller: Caller = Depends(api_caller)
) -> Any:
    return _act(request, caller, broadcast_id, "send", body.at)


@router.post("/broadcasts/{broadcast_id}/pause", tags=["broadcasts"])
def pause(broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> Any:
    return _act(request, caller, broadcast_id, "pause")


@router.post("/broadcasts/{broadcast_id}/resume", tags=["broadcasts"])
def resume(broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> Any:
    return _act(request, caller, broadcast_id, "resume")


@router.post("/broadcasts/{broadcast_id}/cancel", tags=["broadcasts"])
def cancel(broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> Any:
    return _act(request, caller, broadcast_id, "cancel")


@router.get("/templates", tags=["templates"])
def list_templates(
    request: Request,
    channel_account_id: int | None = Query(None, ge=1, le=2**63 - 1),
    caller: Caller = Depends(api_caller),
) -> list[dict[str, Any]]:
    """The registry of provider-approved templates per channel account (CH3)."""
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return [
            {
                "id": t.id,
                "channel_account_id": t.channel_account_id,
                "name": t.name,
                "language": t.language,
                "category": t.category,
                "status": t.status,
                "body": t.body,
                "variables": t.variables,
                "version": t.version,
            }
            for t in templates.list_templates(s, caller, channel_account_id)
        ]


@router.get("/privacy-requests", tags=["privacy"])
def list_privacy_requests(
    request: Request, open_only: bool = Query(False), caller: Caller = Depends(api_caller)
) -> list[dict[str, Any]]:
    """The request log: each data-subject request with its due date (D5)."""
    caller.require("consent.proof")
    with get_ctx(request).db.read() as s:
        return [_request(r) for r in rights.list_requests(s, caller.tenant_id, open_only)]


@router.post("/privacy-requests", status_code=201, tags=["privacy"], openapi_extra=IDEMPOTENT)
def open_privacy_request(
    body: PrivacyRequestIn, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """Log a request that came by e-mail, letter or phone; due one month after receipt (D5)."""
    caller.require("consent.proof")

    def run(s: Any) -> dict[str, Any]:
        if body.contact_id is not None:
            contact_directory.consents(s, caller.tenant_id, body.contact_id)  # 404 for another tenant's
        req = rights.log_request(
            s, caller.tenant_id, body.kind, body.channel, contact_id=body.contact_id, handled_by=caller.actor,
            note=body.note,
        )  # fmt: skip
        return _request(req)

    return write_once(request, caller, body, 201, run)


@router.post("/privacy-requests/{request_id}/complete", tags=["privacy"])
def complete_privacy_request(
    request_id: Id, body: CompleteIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("consent.proof")
    with get_ctx(request).db.write() as s:
        rights.close_request(s, caller.tenant_id, request_id, caller.actor, body.state)
        return _request(rights.get_request(s, caller.tenant_id, request_id))


def _request(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "channel": r.channel,
        "state": r.state,
        "contact_id": r.contact_id,
        "received_at": r.received_at.isoformat(),
        "due_at": r.due_at.isoformat(),
        "completed_at": r.completed_at.isoformat() if r.completed_at else None,
    }


@router.get("/audit/verify", tags=["audit"])
async def verify_audit(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """Recompute the audit log's hash chain; name the first broken entry (S4)."""
    caller.require("ledger.verify")
    ctx = get_ctx(request)

    def run() -> dict[str, Any]:
        with ctx.db.read() as s:
            r = proof.verify_ledger(s, caller.tenant_id, "audit")
        return {"ok": r.ok, "checked": r.checked, "first_broken_seq": r.first_broken_seq, "reason": r.reason}

    return await run_in_threadpool(run)
