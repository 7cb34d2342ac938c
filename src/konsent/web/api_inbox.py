"""REST API for conversations: list, read, reply, assign, state, notes; the inbox's rules apply
(agents see only their teams' conversations, every view of personal data is audited) (M1, M4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from konsent.flows import contact_directory, message_desk
from konsent.flows.inbox import conversation, listing
from konsent.web import api_interactive
from konsent.web.api_conventions import IDEMPOTENT, PAGE_HEADERS, write_once
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1", tags=["conversations"])
ConversationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ReplyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Your parcel left today."}]}
    )
    text: str = Field("", max_length=4096)
    media_url: str = Field("", max_length=2000, description="An https:// link; the text is its caption.")
    media_kind: Literal["", "image", "document", "video", "audio"] = ""
    buttons: list[api_interactive.ButtonIn] | None = Field(
        None, max_length=20, description=api_interactive.BUTTONS_DOC
    )
    choice_list: api_interactive.ListIn | None = Field(
        None, alias="list", description=api_interactive.LIST_DOC
    )
    link: api_interactive.LinkIn | None = Field(None, description=api_interactive.LINK_DOC)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"assignee_id": 3}]})
    assignee_id: int | None = Field(None, ge=1, le=2**63 - 1, description="A staff user; null: nobody.")
    team_id: int | None = Field(None, ge=1, le=2**63 - 1)
    expected_version: int | None = Field(None, ge=0, le=2**31 - 1, description="409 if it changed since.")


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"state": "closed"}]})
    state: Literal["open", "pending", "closed"]
    expected_version: int | None = Field(None, ge=0, le=2**31 - 1)


class LabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"labels": ["order", "vip"]}]})
    labels: list[Annotated[str, Field(max_length=40)]] = Field(
        max_length=20, description="Replaces all labels."
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Called back, fine."}]}
    )
    text: str = Field(min_length=1, max_length=4000)


def _summary(conv: Any) -> dict[str, Any]:
    return {
        "id": conv.id,
        "contact_id": conv.contact_id,
        "state": conv.state,
        "team_id": conv.team_id,
        "assignee_id": conv.assignee_id,
        "version": conv.version,
    }


@router.get("/conversations", responses={200: {"headers": PAGE_HEADERS}})
def list_conversations(
    request: Request,
    state: Literal["open", "pending", "closed", "all"] = Query("open"),
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100, description="`X-Next-Cursor` of the previous page."),
    caller: Caller = Depends(api_caller),
) -> Response:
    """Conversations the caller may see, newest activity first (names shown: audited)."""
    caller.require("inbox.use")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        f = listing.InboxFilter(state=None if state == "all" else state)
        result = listing.list_conversations(ctx, s, caller, f, before=cursor, limit=limit)
        listing.record_list_view(s, caller, result)
        rows = contact_directory.jsonable(result.rows)
    headers = {}
    if result.next_cursor:
        url = request.url.include_query_params(cursor=result.next_cursor)
        headers = {"x-next-cursor": result.next_cursor, "link": f'<{url.path}?{url.query}>; rel="next"'}
    return JSONResponse(rows, headers=headers)


@router.get("/conversations/{conversation_id}")
def get_conversation(
    conversation_id: ConversationId, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """The messages, notes and consent panel of one conversation (audited, S4)."""
    caller.require("inbox.use")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, caller, conversation_id)
        out = contact_directory.jsonable({k: v for k, v in vars(view).items() if k != "conversation"})
        return {**_summary(view.conversation), **out}


@router.post("/conversations/{conversation_id}/reply", status_code=202, openapi_extra=IDEMPOTENT)
def reply(
    conversation_id: ConversationId, body: ReplyIn, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """Answer in the conversation (service purpose; the channel's window rules apply, 409 outside)."""
    caller.require("inbox.use")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        choices = api_interactive.to_domain(body.buttons, body.choice_list, body.link)
        msg = conversation.reply(
            ctx, s, caller, conversation_id, body.text, media_url=body.media_url, media_kind=body.media_kind,
            choices=choices,
        )  # fmt: skip
        return message_desk.describe_message(ctx, s, msg, with_body=False)

    return write_once(request, caller, body, 202, run)


@router.post("/conversations/{conversation_id}/assign")
def assign(
    conversation_id: ConversationId, body: AssignIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("inbox.use")
    with get_ctx(request).db.write() as s:
        conv = conversation.assign(
            s,
            caller,
            conversation_id,
            assignee_id=body.assignee_id,
            team_id=body.team_id,
            expected_version=body.expected_version,
        )
        return _summary(conv)


@router.post("/conversations/{conversation_id}/state")
def set_state(
    conversation_id: ConversationId, body: StateIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("inbox.use")
    with get_ctx(request).db.write() as s:
        conv = conversation.set_state(
            s, caller, conversation_id, body.state, expected_version=body.expected_version
        )
        return _summary(conv)


@router.post("/conversations/{conversation_id}/notes", status_code=201, openapi_extra=IDEMPOTENT)
def add_note(
    conversation_id: ConversationId, body: NoteIn, request: Request, caller: Caller = Depends(api_caller)
) -> Response:
    """An internal note the contact never sees."""
    caller.require("inbox.use")
    ctx = get_ctx(request)

    def run(s: Any) -> dict[str, Any]:
        note = conversation.add_note(ctx, s, caller, conversation_id, body.text)
        return {"id": note.id, "conversation_id": conversation_id, "created_at": note.created_at.isoformat()}

    return write_once(request, caller, body, 201, run)


@router.put("/conversations/{conversation_id}/labels")
def set_labels(
    conversation_id: ConversationId, body: LabelsIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Replace the conversation's labels (M5)."""
    caller.require("inbox.use")
    with get_ctx(request).db.write() as s:
        return {"labels": conversation.set_labels(s, caller, conversation_id, list(body.labels))}
