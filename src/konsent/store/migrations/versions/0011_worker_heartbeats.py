"""worker_heartbeats: each delivery worker's last sign of life, for /readyz, /metrics and `konsent doctor` (U6)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(120), primary_key=True, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("beat_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
