"""REST API for audiences and contact pressure (#17 items 3 and 4, M5, M4).

Each route calls the flow the admin pages use, with the admin's permissions: segments are read
by everyone who may see broadcasts and changed by those who may send them; a broadcast's proof
lists contact ids and outcomes only (owners, admins, DPO); the preview names a few contacts only
when asked by a caller who may see every contact's personal data (and that is audited).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from konsent.flows.outbound import broadcast_proof, pressure, segments
from konsent.web.api_conventions import IDEMPOTENT, write_once
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1")
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
VIEW, MANAGE, PROOF = "contacts.read", "settings.manage", "consent.proof"
NAMES = ("contacts.personal", "contacts.all_teams")  # names of any contact of the tenant
DEFINITION_DOC = (
    "Criteria, all of which must hold; they only narrow the topic's consented audience "
    "(docs/BROADCASTS.md, 'Audiences')."
)


class SegmentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Active fans", "definition": {"replied_within_days": 30, "topics": ["news"]}}
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any] = Field(default_factory=dict, description=DEFINITION_DOC)


class PreviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topic": "angebote", "segment_id": 1}]}
    )
    topic: str = Field(max_length=64, description="Only contacts with active consent to it are counted.")
    definition: dict[str, Any] | None = Field(None, description=DEFINITION_DOC)
    segment_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="A saved segment instead of criteria."
    )
    min_text_version: int = Field(0, ge=0, le=10_000)
    channel_account_id: int | None = Field(None, ge=1, le=2**63 - 1)
    include_names: bool = Field(
        False, description="Up to five display names (needs access to personal data)."
    )


class PressureIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"cap_messages": 3, "cap_days": 7, "quiet_start": "21:00", "quiet_end": "08:00"}]
        },
    )
    cap_messages: int = Field(
        0, ge=0, le=1000, description="At most this many marketing messages; 0: no cap."
    )
    cap_days: int = Field(7, ge=1, le=365, description="... per contact within this many days.")
    quiet_start: str = Field("", max_length=5, description="HH:MM in the contact's zone; empty: none.")
    quiet_end: str = Field("", max_length=5)


@router.get("/segments", tags=["segments"])
def list_segments(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return [segments.describe(seg) for seg in segments.list_segments(s, caller.tenant_id)]


@router.post("/segments", status_code=201, tags=["segments"], openapi_extra=IDEMPOTENT)
def create_segment(body: SegmentIn, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    """Save a segment definition; a bad definition is a 422 naming the problem (M5)."""
    caller.require(MANAGE)

    def run(s: Any) -> dict[str, Any]:
        return segments.describe(
            segments.create_segment(s, caller.tenant_id, caller.actor, body.name, body.definition)
        )

    return write_once(request, caller, body, 201, run)


@router.post("/segments/preview", tags=["segments"])
def preview_segment(
    body: PreviewIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """How many contacts a broadcast to the topic with these criteria would reach now (M5)."""
    caller.require(VIEW)
    if body.include_names:
        for permission in NAMES:
            caller.require(permission)
    shown = segments.preview_for(
        get_ctx(request),
        caller.tenant_id,
        body.topic,
        body.definition,
        segment_id=body.segment_id,
        min_text_version=body.min_text_version,
        channel_account_id=body.channel_account_id,
        actor=caller.actor,
        show_names=body.include_names,
    )
    return shown.as_dict()


@router.get("/segments/{segment_id}", tags=["segments"])
def get_segment(segment_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return segments.describe(segments.get_segment(s, caller.tenant_id, segment_id))


@router.put("/segments/{segment_id}", tags=["segments"])
def update_segment(
    segment_id: Id, body: SegmentIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Change a saved segment; broadcasts already created with it keep their copy."""
    caller.require(MANAGE)
    with get_ctx(request).db.write() as s:
        seg = segments.update_segment(
            s, caller.tenant_id, caller.actor, segment_id, body.name, body.definition
        )
        return segments.describe(seg)


@router.delete("/segments/{segment_id}", status_code=204, tags=["segments"])
def delete_segment(segment_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> Response:
    caller.require(MANAGE)
    with get_ctx(request).db.write() as s:
        segments.delete_segment(s, caller.tenant_id, caller.actor, segment_id)
    return Response(status_code=204)


@router.get("/broadcasts/{broadcast_id}/proof", tags=["broadcasts"])
def broadcast_proof_doc(
    broadcast_id: Id, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Who was chosen and why (the consent rule and the segment copy), and each message's outcome."""
    caller.require(PROOF)
    with get_ctx(request).db.write() as s:  # a write: reading it is audited
        return broadcast_proof.proof(s, caller.tenant_id, broadcast_id, caller.actor)


@router.get("/contact-pressure", tags=["settings"])
def get_pressure(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """The tenant's frequency cap and quiet hours for marketing (docs/BROADCASTS.md)."""
    caller.require(VIEW)
    with get_ctx(request).db.read() as s:
        return pressure.current_rules(s, caller.tenant_id).as_dict()


@router.put("/contact-pressure", tags=["settings"])
def set_pressure(body: PressureIn, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    caller.require(MANAGE)
    with get_ctx(request).db.write() as s:
        return pressure.set_rules(s, caller.tenant_id, caller.actor, body.model_dump()).as_dict()
