"""Broadcasts: a newsletter to everyone with valid consent for one topic (M3, C5, C6).

The life of a broadcast, as a resumable state machine (the listmonk idea of
campaign checkpoints):

    draft ─▶ scheduled ─▶ queuing ─▶ sending ─▶ done
                 │           │          │
                 └──────▶ paused ◀──────┘        (resume returns where it was)
    any state but done ─▶ cancelled

Queuing walks the audience in contact-id order, a batch per transaction; the
batch's messages and the new checkpoint commit together, so a crash resumes
after the last committed batch and nobody is queued twice. Every contact
passes `may_send` when queued (through `enqueue_many`) and again when a
worker claims the message (delivery.outbox).
"""

from __future__ import annotations

from collections import Counter as Tally
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain.errors import Conflict, InvalidInput
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.outbound import broadcast_compose, broadcast_stats, budget, personalise, segments
from konsent.flows.outbound.messaging import Draft, enqueue_many
from konsent.flows.webhooks.events import emit
from konsent.store.tables import (
    Broadcast,
    Consent,
    Contact,
    ContactIdentity,
    Message,
    OutboxRow,
)
from konsent.store.types import utcnow

STATES = ("draft", "scheduled", "queuing", "sending", "paused", "cancelled", "done")
ACTIVE = ("scheduled", "queuing", "sending")
FINAL = ("cancelled", "done")


# Composing (create, get, list) lives in broadcast_compose; re-exported here, where callers find it.
create_broadcast = broadcast_compose.create_broadcast
get_broadcast = broadcast_compose.get_broadcast
list_broadcasts = broadcast_compose.list_broadcasts
_content_values = broadcast_compose.content_values


# ---------------------------------------------------------------- audience


def _audience(s: Session, b: Broadcast, now: datetime, ctx: Konsent | None = None) -> Any:
    """Active consent for the topic, narrowed by the broadcast's segment (C5, C6, M5)."""
    return segments.audience_query(s, segments.Audience.of(b), now, ctx)


def preview_count(s: Session, b: Broadcast, now: datetime | None = None, ctx: Konsent | None = None) -> int:
    """How many contacts the broadcast would reach now, before anything is queued (M3)."""
    q = _audience(s, b, now or utcnow(), ctx).with_only_columns(func.count(Contact.id))
    return int(s.scalar(q) or 0)


# ---------------------------------------------------------------- state changes


def _transition(s: Session, b: Broadcast, action: str, actor: str, **details: Any) -> None:
    audit.record(s, b.tenant_id, actor or "system", f"broadcast.{action}", f"broadcast:{b.id}", **details)


def schedule(s: Session, b: Broadcast, at: datetime | None, actor: str = "") -> Broadcast:
    """Send at `at`, or now when `at` is None; the scheduler starts queuing when due (M3)."""
    if b.state not in ("draft", "scheduled"):
        raise Conflict("a broadcast in state {state} cannot be scheduled", state=b.state)
    now = utcnow()
    if at is not None and at.tzinfo is None:
        raise InvalidInput(detail="the send time needs a time zone")
    b.scheduled_at = at or now
    if b.scheduled_at <= now:
        b.state, b.started_at = "queuing", now
    else:
        b.state = "scheduled"
    _transition(s, b, "schedule", actor, at=b.scheduled_at.isoformat())
    return b


def pause(s: Session, b: Broadcast, actor: str = "") -> Broadcast:
    """Stop handing this broadcast's messages to workers; survives restarts (M3)."""
    if b.state not in ACTIVE:
        raise Conflict("a broadcast in state {state} cannot be paused", state=b.state)
    b.state = "paused"
    _set_rows(s, b, "available", "paused")
    _transition(s, b, "pause", actor)
    return b


def resume(s: Session, b: Broadcast, actor: str = "") -> Broadcast:
    """Continue where the broadcast stopped: scheduled, queuing or sending."""
    if b.state != "paused":
        raise Conflict("a broadcast in state {state} cannot be resumed", state=b.state)
    if b.started_at is None:
        b.state = "scheduled"
    else:
        b.state = "sending" if b.queued_at is not None else "queuing"
    _set_rows(s, b, "paused", "available")
    _transition(s, b, "resume", actor)
    return b


def cancel(s: Session, b: Broadcast, actor: str = "") -> Broadcast:
    """Cancel every message not yet handed to the provider; what went out stays recorded (M3)."""
    if b.state in FINAL:
        raise Conflict("a broadcast in state {state} cannot be cancelled", state=b.state)
    now = utcnow()
    b.state, b.finished_at = "cancelled", now
    ids = (
        s.execute(
            update(OutboxRow)
            # "held": waiting for its switched-off channel account (#12)
            .where(OutboxRow.broadcast_id == b.id, OutboxRow.state.in_(("available", "paused", "held")))
            .values(state="cancelled", finished_at=now, last_error="broadcast cancelled")
            .returning(OutboxRow.message_id)
        )
        .scalars()
        .all()
    )
    for i in range(0, len(ids), 5000):
        s.execute(
            update(Message)
            .where(Message.tenant_id == b.tenant_id, Message.id.in_(ids[i : i + 5000]))
            .values(status="cancelled", status_reason="broadcast cancelled", updated_at=now)
        )
    _transition(s, b, "cancel", actor, cancelled=len(ids))
    return b


def _set_rows(s: Session, b: Broadcast, old: str, new: str) -> None:
    s.execute(
        update(OutboxRow)
        .where(OutboxRow.broadcast_id == b.id, OutboxRow.state == old)
        .values(state=new)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- queuing


def _personalise(b: Broadcast, contact: Any, fields: dict[str, str]) -> tuple[OutboundContent, ...]:
    c = b.content
    render = personalise.render
    template = None
    if c.get("template"):
        template = OutboundContent(
            template=c["template"],
            template_language=c.get("template_language") or (contact.locale if contact else None),
            template_params=tuple(render(p, fields) for p in c.get("template_params") or []),
        )
    if c.get("text") or c.get("media_url"):
        choices_of = OutboundContent.from_dict({"buttons": c.get("buttons") or [], "link": c.get("link")})
        main = OutboundContent(
            text=render(c.get("text") or "", fields),
            media_url=c.get("media_url"),
            media_kind=c.get("media_kind"),
            media_filename=c.get("media_filename"),
            buttons=choices_of.buttons,
            link=choices_of.link,
        )
        return (main, *((template,) if template else ()))
    assert template is not None
    return (template,)


class _Superseded(Exception):
    """The broadcast moved on (paused, cancelled, or an earlier page failed): roll this page back."""


def queue_batch(ctx: Konsent, tenant_id: int, broadcast_id: int, size: int = 2000) -> bool:
    """Queue the next batch after the checkpoint, in one transaction; False when nothing is left."""
    with ctx.db.read() as s:
        b = get_broadcast(s, tenant_id, broadcast_id)
        if b.state != "queuing":
            return False
        after = b.checkpoint
    try:
        return _queue_page(ctx, tenant_id, broadcast_id, after, None, size)
    except _Superseded:
        return True  # paused, cancelled or advanced by another queuer meanwhile: the next call looks again


def _queue_page(
    ctx: Konsent,
    tenant_id: int,
    broadcast_id: int,
    after: int,
    upto: int | None,
    size: int,
    before: Future[bool] | None = None,
) -> bool:
    """Queue the audience in (after, upto] (at most `size`), in one transaction; False when it was the last.

    The broadcast row is locked at the end, after the previous page (`before`) has finished:
    its checkpoint must then be `after`, so pages commit one after the other in order, and a
    page whose predecessor failed, or a broadcast paused or cancelled meanwhile, rolls back whole.
    """
    now = utcnow()
    with ctx.db.write() as s:
        b = get_broadcast(s, tenant_id, broadcast_id)
        q = _audience(s, b, now, ctx).where(Consent.contact_id > after).order_by(Consent.contact_id)
        # A bounded page takes its whole range: someone who consented since the bound was read is in
        # it too, as the checkpoint moves past the range.
        rows = s.execute(q.where(Consent.contact_id <= upto) if upto is not None else q.limit(size)).all()
        missing = [r.id for r in rows if r.consent_account is None and b.channel_account_id is None]
        fallback: dict[int, int] = {}
        if missing:
            for cid, acc_id in s.execute(
                select(ContactIdentity.contact_id, func.min(ContactIdentity.channel_account_id))
                .where(ContactIdentity.tenant_id == tenant_id, ContactIdentity.contact_id.in_(missing))
                .group_by(ContactIdentity.contact_id)
            ):
                fallback[cid] = acc_id
        drafts: list[Draft] = []
        skipped: Tally[str] = Tally()
        wanted = personalise.variables_in(_content_values(b.content))
        same_for_all = not wanted and (not b.content.get("template") or b.content.get("template_language"))
        plain = _personalise(b, None, {}) if same_for_all else None
        values: dict[int, dict[str, str]] = {}
        if plain is None:
            ctx.keys.preload(s, rows)  # values are opened per contact: one key-store query for the page
            values = personalise.load_fields(ctx, s, rows, wanted)
        for contact in rows:
            account_id = b.channel_account_id or contact.consent_account or fallback.get(contact.id)
            if account_id is None:
                skipped["no_identity"] += 1
                continue
            contents = plain or _personalise(b, contact, values.get(contact.id, {}))
            drafts.append(Draft(contact, contents[0], account_id, contents[1] if len(contents) > 1 else None))
        admitted = budget.admit(s, b, drafts, now)  # CH6: nothing over a budget is queued, so none sent
        if admitted.held_from is not None:
            drafts, rows = admitted.drafts, budget.rows_before_hold(rows, drafts, admitted, skipped)
        result = enqueue_many(
            ctx,
            s,
            drafts,
            b.purpose,
            author=f"broadcast:{b.id}",
            min_text_version=b.min_text_version,
            broadcast_id=b.id,
            at=now,
            shared=plain is not None,  # the same words for everyone: sealed once per batch
        )
        skipped.update(result.skipped.values())
        if before is not None:
            before.exception()  # the previous page commits (or fails) first
        s.refresh(b, with_for_update=True)
        if b.state != "queuing" or b.checkpoint != after or not budget.reserve(s, b, admitted, now):
            raise _Superseded()
        if rows:
            b.checkpoint = rows[-1].id if upto is None or admitted.held_from is not None else upto
        b.audience += len(rows)
        b.queued += len(result.queued)
        if skipped:
            merged = Tally(b.skipped or {})
            merged.update(skipped)
            b.skipped = dict(merged)
        if admitted.held_from is not None:
            budget.pause_over_budget(s, b, admitted)
            return False
        if upto is None and len(rows) < size:
            b.state, b.queued_at = "sending", now
            return False
        return True


def _page_end(ctx: Konsent, tenant_id: int, broadcast_id: int, after: int, size: int) -> int | None:
    """The contact id that ends the next page of `size` after `after`; None if fewer are left."""
    with ctx.db.read() as s:
        b = get_broadcast(s, tenant_id, broadcast_id)
        q = _audience(s, b, utcnow(), ctx).where(Consent.contact_id > after).order_by(Consent.contact_id)
        return s.scalar(q.with_only_columns(Consent.contact_id).offset(size - 1).limit(1))


def queue_all(
    ctx: Konsent, tenant_id: int, broadcast_id: int, size: int = 2000, budget_s: float = 1e9
) -> bool:
    """Queue batches until the audience is exhausted or the time budget is spent; True when finished.

    On PostgreSQL two pages are in flight at once: while one is written, the next is read,
    checked and sealed in a second transaction (they still commit in order, see _queue_page).
    """
    import time

    deadline = time.monotonic() + budget_s
    if not ctx.db.is_postgres:  # one writer at a time anyway
        while time.monotonic() < deadline:
            if not queue_batch(ctx, tenant_id, broadcast_id, size):
                return True
        return False
    with ctx.db.read() as s:
        b = get_broadcast(s, tenant_id, broadcast_id)
        if b.state != "queuing":
            return True
        after = b.checkpoint
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="queue") as pool:
        inflight: list[Future[bool]] = []
        results: list[bool] = []
        try:
            while time.monotonic() < deadline:
                upto = _page_end(ctx, tenant_id, broadcast_id, after, size)
                prev = inflight[-1] if inflight else None
                inflight.append(
                    pool.submit(_queue_page, ctx, tenant_id, broadcast_id, after, upto, size, prev)
                )
                if upto is None:
                    break
                after = upto
                if len(inflight) >= 2:
                    results.append(inflight.pop(0).result())
            results += [f.result() for f in inflight]
        except _Superseded:
            for f in inflight:  # later pages roll back on their own: their checkpoint no longer matches
                f.exception()
            with ctx.db.read() as s:
                return get_broadcast(s, tenant_id, broadcast_id).state != "queuing"
    return False in results  # only the last page answers False


def run_due(ctx: Konsent, now: datetime | None = None, budget_s: float = 5.0) -> int:
    """The scheduler's job: start due broadcasts, continue queuing ones, close finished ones."""
    import time

    now = now or utcnow()
    with ctx.db.write() as s:
        s.execute(
            update(Broadcast)
            .where(Broadcast.state == "scheduled", Broadcast.scheduled_at <= now)
            .values(state="queuing", started_at=now)
        )
        queuing = s.execute(
            select(Broadcast.tenant_id, Broadcast.id).where(Broadcast.state == "queuing")
        ).all()
    deadline = time.monotonic() + budget_s
    for tenant_id, bid in queuing:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        queue_all(ctx, tenant_id, bid, budget_s=left)
    return len(queuing) + finish_sent(ctx, now)


def finish_sent(ctx: Konsent, now: datetime) -> int:
    """Mark `sending` broadcasts with nothing left in the outbox as done."""
    with ctx.db.write() as s:
        open_rows = (
            select(OutboxRow.id)
            .where(
                OutboxRow.broadcast_id == Broadcast.id,
                # held: its channel is off (#12); unconfirmed: waiting for the provider's echo (#14)
                OutboxRow.state.in_(("available", "running", "unconfirmed", "held")),
            )
            .exists()
        )
        done = s.execute(
            update(Broadcast)
            .where(Broadcast.state == "sending", ~open_rows)
            .values(state="done", finished_at=now)
            .returning(Broadcast.id, Broadcast.tenant_id)
            .execution_options(synchronize_session=False)
        ).all()
        for broadcast_id, tenant_id in done:
            data = {"broadcast_id": broadcast_id, "state": "done", "finished_at": now.isoformat()}
            emit(s, tenant_id, "broadcast.finished", data, at=now)
        return len(done)


ACTIONS = ("send", "pause", "resume", "cancel")


def act(
    ctx: Konsent, tenant_id: int, broadcast_id: int, action: str, actor: str, at: datetime | None = None
) -> Broadcast:
    """One state change as its own transaction, under the broadcast's row lock (web and CLI)."""
    if action not in ACTIONS:
        raise InvalidInput("unknown action {action}", action=repr(action))
    with ctx.db.write() as s:
        b = get_broadcast(s, tenant_id, broadcast_id, lock=True)
        if action == "send":
            return schedule(s, b, at, actor)
        if action == "pause":
            return pause(s, b, actor)
        if action == "resume":
            return resume(s, b, actor)
        return cancel(s, b, actor)


def progress(ctx: Konsent, tenant_id: int, broadcast_id: int) -> dict[str, Any]:
    """Live progress for the admin page and the CLI: the broadcast and its funnel."""
    with ctx.db.read() as s:
        b = get_broadcast(s, tenant_id, broadcast_id)
        st = broadcast_stats.stats(s, b)
        handled = st.sent + st.failed + st.refused + st.cancelled + st.contact_pressure
        return {
            **broadcast_stats.describe(b),
            "stats": st.as_dict(),
            "total": b.queued,
            "handled": handled,
            "queuing_done": b.queued_at is not None,
        }
