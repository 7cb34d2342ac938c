"""Server-sent events for the live inbox (M1).

A stream waits on the in-process hub (woken right after a commit in this process)
and polls the `inbox_events` table as a fallback, so changes made by another web
or worker process arrive within `POLL_SECONDS`. Each event names only ids and a
kind; the page then fetches what it shows through the normal, audited views.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from konsent.flows.inbox import listing as inbox
from konsent.flows.inbox import live, scope
from konsent.web.admin_common import admin_caller
from konsent.web.deps import Caller, get_ctx

router = APIRouter(include_in_schema=False)

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 55  # the browser reconnects with Last-Event-ID; a stopping server waits at most this


@router.get("/inbox/events")
async def inbox_events(request: Request, caller: Caller = Depends(admin_caller)) -> StreamingResponse:
    """The caller's inbox changes as `text/event-stream` (only conversations they may see)."""
    ctx = get_ctx(request)

    def prepare() -> int:
        with ctx.db.read() as s:
            inbox.visible_teams(s, caller)  # raises PermissionDenied for roles without the inbox
            return live.last_event_id(s, caller.tenant_id)

    newest = await run_in_threadpool(prepare)
    given = request.headers.get("last-event-id") or request.query_params.get("since") or ""
    start = int(given) if given.isdigit() and int(given) <= newest else newest
    raw_limit = request.query_params.get("timeout", "")
    limit = min(float(raw_limit), MAX_STREAM_SECONDS) if raw_limit.isdigit() else MAX_STREAM_SECONDS

    def fetch(after: int) -> tuple[int, list[tuple[int, int, str]]]:
        """The newest event id looked at, and the events this caller may see."""
        with ctx.db.read() as s:
            events = live.events_after(s, caller.tenant_id, after)
            if not events:
                return after, []
            # the inbox's own rule (teams, and unrouted ones only where the tenant allows it)
            allowed = scope.visible_conversation_ids(s, caller, {e.conversation_id for e in events})
            return events[-1].id, [
                (e.id, e.conversation_id, e.kind) for e in events if e.conversation_id in allowed
            ]

    async def stream() -> AsyncIterator[str]:
        last = start
        sub = live.HUB.subscribe(caller.tenant_id)
        began = ping = time.monotonic()
        try:
            yield f"retry: 2000\nid: {last}\n\n"
            while time.monotonic() - began < limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub[1].wait(), timeout=POLL_SECONDS)
                sub[1].clear()
                while True:  # drain everything that happened, 200 events at a time
                    seen, rows = await run_in_threadpool(fetch, last)
                    for event_id, conv_id, kind in rows:
                        payload = json.dumps({"conversation_id": conv_id, "kind": kind})
                        yield f"id: {event_id}\nevent: inbox\ndata: {payload}\n\n"
                    if seen == last:
                        break
                    last = seen
                if time.monotonic() - ping > KEEPALIVE_SECONDS:
                    ping = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            live.HUB.unsubscribe(caller.tenant_id, sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
