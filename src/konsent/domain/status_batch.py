"""The rules of a group commit of delivery statuses, as pure functions over plain data (CH4, invariant 6).

A batch is a list of `StatusItem`s (one per webhook request); the writers in `store/status_pg` and
`store/status_sqlite` run the SQL and call these rules between their statements:
`accounts_to_check` / `mark_stale` (a request verified against an account state that is gone stores
nothing), `dedupe_key` / `split_fresh` (which events are new), `fold` (how statuses move a message
forward, in arrival order; early statuses for messages not recorded yet).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from konsent.domain.events import StatusUpdate

STATUS_RANK = {"queued": 0, "retrying": 0, "sent": 1, "delivered": 2, "read": 3}


class HasStatus(Protocol):
    status: str
    status_reason: str
    updated_at: datetime


def apply_status(msg: HasStatus, status: str, reason: str, at: datetime) -> None:
    """Move a message forward; a late 'delivered' never undoes 'read' (CH4)."""
    if status == "failed":
        if msg.status not in ("delivered", "read"):
            msg.status, msg.status_reason = "failed", reason[:300]
    elif STATUS_RANK.get(status, -1) > STATUS_RANK.get(msg.status, -1):
        msg.status = status
    msg.updated_at = max(msg.updated_at, at)


def hashed_key(secret: bytes, raw: str) -> str:
    """`raw` ("msg:<provider id>", "st:<id>:<status>" …) as "<kind>:<keyed hash>"; "" stays ""."""
    if not raw:
        return ""
    kind = raw.split(":", 1)[0][:20]
    digest = hmac.new(secret, b"dedupe:" + raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{kind}:{digest}"


class AccountState(Protocol):
    """The state of a channel account a request was verified against."""

    @property
    def secrets_sealed(self) -> bytes | None: ...

    @property
    def settings(self) -> dict[str, object]: ...


@dataclass
class StatusItem:
    """The statuses of one webhook request, waiting for the next group commit."""

    account_id: int
    tenant_id: int
    events: Sequence[StatusUpdate]
    expect: AccountState | None = (
        None  # verified against this state of the account: re-checked before storing
    )
    stale: bool = False
    done: bool = False
    handled: int = 0
    duplicates: int = 0
    error: BaseException | None = None
    secret: bytes = b""  # the tenant's dedupe key (flows.inbound.dedupe)


@dataclass
class StatusState:
    """The status columns of one message, changed in memory and written back in one statement."""

    id: int
    status: str
    status_reason: str
    updated_at: datetime
    purpose: str = ""


CHARGE_COLUMNS = (
    "tenant_id", "channel_account_id", "message_ref", "purpose", "country", "category", "pricing_type",
    "pricing_model", "billable", "month", "at",
)  # fmt: skip


def charge_rows(
    todo: list[tuple[StatusItem, StatusUpdate]], found: dict[tuple[int, str], tuple[int, StatusState]]
) -> list[dict[str, object]]:
    """A `message_charges` row for each message whose status carried a pricing block (CH6).

    Written in the same transaction as the statuses (ON CONFLICT DO NOTHING: the first status
    that carries it wins; `sent` and `delivered` both do). A status whose message is not
    recorded yet keeps no pricing: the message's next status carries the same block."""
    rows: dict[int, dict[str, object]] = {}
    for item, ev in todo:
        p = ev.pricing
        if p is None:
            continue
        hit = found.get((item.account_id, ev.provider_id))
        if hit is None or hit[0] != item.tenant_id or hit[1].id in rows:
            continue
        rows[hit[1].id] = {
            "tenant_id": item.tenant_id, "channel_account_id": item.account_id, "message_ref": hit[1].id,
            "purpose": hit[1].purpose[:80], "country": ev.country[:2], "category": p.category,
            "pricing_type": p.pricing_type, "pricing_model": p.pricing_model, "billable": p.billable,
            "month": ev.at.strftime("%Y-%m"), "at": ev.at,
        }  # fmt: skip
    return list(rows.values())


def dedupe_key(item: StatusItem, ev: StatusUpdate) -> str:
    """The idempotency key of a status event: a keyed hash, no provider id in clear (invariant 6, D2)."""
    return hashed_key(item.secret, f"st:{ev.provider_id}:{ev.status}")


def early_row(item: StatusItem, ev: StatusUpdate, reason: str) -> dict[str, Any]:
    """An `EarlyStatus` row for a status whose message is not recorded yet."""
    return {
        "tenant_id": item.tenant_id,
        "channel_account_id": item.account_id,
        "provider_id": ev.provider_id[:200],
        "status": ev.status[:16],
        "reason": reason[:300],
        "at": ev.at,
        "ref": (ev.ref or None) and ev.ref[:64],
    }


def split_fresh(
    batch: list[StatusItem], fresh: set[tuple[int, str]]
) -> tuple[list[tuple[int, int]], list[tuple[StatusItem, StatusUpdate]]]:
    """(handled, duplicates) per request, and the events to apply: those whose dedupe key was new."""
    todo: list[tuple[StatusItem, StatusUpdate]] = []
    results: list[tuple[int, int]] = []
    for item in batch:
        handled = dups = 0
        for ev in [] if item.stale else item.events:
            k = (item.account_id, dedupe_key(item, ev))
            if k in fresh:
                fresh.discard(k)  # a second copy in the same batch is a duplicate
                handled += 1
                todo.append((item, ev))
            else:
                dups += 1
        results.append((handled, dups))
    return results, todo


def accounts_to_check(batch: list[StatusItem]) -> list[int]:
    """The accounts whose remembered state some request of the batch was verified against."""
    return sorted({item.account_id for item in batch if item.expect is not None and not item.stale})


def mark_stale(
    batch: list[StatusItem], accounts: dict[int, tuple[bool, bytes | None, dict[str, object]]]
) -> bool:
    """Mark requests verified against an account state that is gone (inactive, new secrets or
    settings); `accounts` is (active, sealed secrets, settings) as read now. True if any."""
    stale = False
    for item in batch:
        e = item.expect
        if e is None or item.stale:
            continue
        state = accounts.get(item.account_id)
        if state is None or not state[0] or state[1] != e.secrets_sealed or state[2] != e.settings:
            item.stale = stale = True
    return stale


def fold(
    todo: list[tuple[StatusItem, StatusUpdate]], found: dict[tuple[int, str], tuple[int, StatusState]]
) -> tuple[list[StatusState], list[dict[str, Any]]]:
    """Apply the status rules in arrival order to the messages found by (account, provider id);
    the changed states, and early-status rows for statuses whose message is not recorded yet."""
    changed: dict[int, StatusState] = {}
    early: list[dict[str, Any]] = []
    for item, ev in todo:
        hit = found.get((item.account_id, ev.provider_id))
        reason = f"{ev.error_code or ''} {ev.error_title or ''}".strip()
        if hit is None:
            early.append(early_row(item, ev, reason))
        elif hit[0] == item.tenant_id:  # another tenant's message is never touched
            apply_status(hit[1], ev.status, reason, ev.at)
            changed[hit[1].id] = hit[1]
    return list(changed.values()), early
