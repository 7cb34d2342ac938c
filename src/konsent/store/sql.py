"""SQL building blocks shared by the batch paths (queuing, claiming, recording)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam
from sqlalchemy.dialects import postgresql


def among(col: Any, ids: Iterable[int], *, postgres: bool, superset_ok: bool = False) -> Any:
    """`col IN ids`, written the cheapest way for a batch of ids.

    - `superset_ok`: the caller looks its rows up by id, so extra rows do no harm; a dense
      batch (a broadcast walks contacts in id order) becomes BETWEEN, which spares the
      database parsing thousands of parameters;
    - on PostgreSQL `col = ANY(array)`: one parameter, one cached statement for any size;
    - otherwise a plain IN.
    """
    values = sorted(set(ids))
    if superset_ok and values and values[-1] - values[0] < 2 * len(values):
        return col.between(values[0], values[-1])
    if postgres:
        return col == any_(bindparam(None, values, type_=postgresql.ARRAY(BigInteger)))
    return col.in_(values)


# message.status webhook rows written by the status writers (`store.status_pg`, `store.status_sqlite`)
ENDPOINTS_SQL = (
    "SELECT id, tenant_id, events FROM webhook_endpoints WHERE active = {true} AND tenant_id IN ({marks})"
)
INSERT_COLUMNS = (
    "tenant_id", "endpoint_id", "event_id", "event_type", "payload", "state", "attempt", "run_at",
    "last_error", "created_at",
)  # fmt: skip
INSERT_SQL = (
    "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload, state, attempt, "
    "run_at, last_error, created_at) VALUES ({marks})"
)
