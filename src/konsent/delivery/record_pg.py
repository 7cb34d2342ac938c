"""The group commit's two hot statements on PostgreSQL: one constant statement each (#14, M3).

The recorder (`delivery.recorder`) writes an "about to send" mark before every request and
the outcome after it. Through the ORM a mark was two statements (lock the current rows, then
update them) and a successful send four (lock, fence-update the outbox rows, one UPDATE of a
message per row, …), each built, compiled and bound by SQLAlchemy: in session 4 that was
most of the worker's CPU per message (docs/PERFORMANCE.md, "Session 5"). Here each is one
constant statement over arrays, run on the psycopg connection of the caller's transaction
(so it commits or rolls back with the rest of the batch); psycopg prepares it once per
connection.

The rules are those of `outbox.mark_sending`, `outbox.lock_current` and
`outbox._complete_sent`, which SQLite still uses:

- only the claim that is still current is touched: `(id, attempt)` match and the row is
  `running` (a worker whose lease ran out is fenced out);
- a row locked by someone else right now is skipped, never waited for (`SKIP LOCKED`): it may
  be in a withdrawal that waits for this worker's send guard, which waits for this commit;
  the caller tries its outcome again in the next commit, and a mark not given means the
  request is not sent;
- a sent message keeps no clear secret copy and moves to `sent` unless a status already moved
  it further (a status webhook may have overtaken the send).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from konsent.channels.base import SendResult
from konsent.delivery.outbox import Job

_MARK = (
    "UPDATE outbox SET sending_at = %(now)s, lease_until = %(lease_until)s "
    "WHERE id IN (SELECT x.id FROM outbox AS x "
    "JOIN unnest(%(ids)s::bigint[], %(attempts)s::int[]) AS u(id, attempt) "
    "ON x.id = u.id AND x.attempt = u.attempt "
    "WHERE x.state = 'running' FOR UPDATE OF x SKIP LOCKED) RETURNING id, attempt"
)
_SENT = (
    "WITH p AS (SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(pids)s::text[], "
    "%(accounts)s::bigint[]) AS p(id, attempt, pid, acc)), "
    "done AS (UPDATE outbox SET state = 'done', finished_at = %(now)s, lease_until = NULL "
    "WHERE id IN (SELECT x.id FROM outbox AS x "
    "JOIN unnest(%(ids)s::bigint[], %(attempts)s::int[]) AS u(id, attempt) "
    "ON x.id = u.id AND x.attempt = u.attempt "
    "WHERE x.state = 'running' FOR UPDATE OF x SKIP LOCKED) RETURNING id, attempt, message_id), "
    "msg AS (UPDATE messages AS m SET provider_id = p.pid, secret_sealed = NULL, "
    "status = CASE WHEN m.status IN ('queued', 'retrying') THEN 'sent' ELSE m.status END, "
    "updated_at = %(now)s "
    "FROM done JOIN p ON p.id = done.id AND p.attempt = done.attempt WHERE m.id = done.message_id) "
    "SELECT id, attempt, EXISTS (SELECT 1 FROM early_statuses AS e JOIN p "
    "ON e.channel_account_id = p.acc AND e.provider_id = p.pid) FROM done"
)


def _driver(s: Session) -> Any:
    """The psycopg connection under the session's transaction."""
    return s.connection().connection.driver_connection


def mark_sending(
    s: Session, jobs: Sequence[Job], now: datetime, lease_until: datetime
) -> set[tuple[int, int]]:
    """`outbox.mark_sending` in one statement: the (id, attempt) claims that may be sent now."""
    if not jobs:
        return set()
    params = {
        "ids": [j.outbox_id for j in jobs],
        "attempts": [j.attempt for j in jobs],
        "now": now,
        "lease_until": lease_until,
    }
    return {(row[0], row[1]) for row in _driver(s).execute(_MARK, params).fetchall()}


def complete_sent(
    s: Session, sent: Sequence[tuple[Job, SendResult]], now: datetime
) -> tuple[set[tuple[int, int]], bool]:
    """Accepted sends: outbox rows done and messages sent, in one statement.

    Returns the (id, attempt) claims recorded (one not returned was not: its claim is gone — a
    stale job of a row taken over by a newer attempt —, or its row is locked elsewhere) and
    whether a status webhook overtook any of these sends (then the caller applies the early
    statuses, `outbox.apply_early_statuses`; most batches have none).
    """
    if not sent:
        return set(), False
    params = {
        "ids": [j.outbox_id for j, _ in sent],
        "attempts": [j.attempt for j, _ in sent],
        "pids": [r.provider_id for _, r in sent],
        "accounts": [j.account.id for j, _ in sent],
        "now": now,
    }
    rows = _driver(s).execute(_SENT, params).fetchall()
    return {(row[0], row[1]) for row in rows}, any(row[2] for row in rows)
