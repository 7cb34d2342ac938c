"""outbox.sending_at: a send about to go on the wire; early_statuses.ref: the provider's echo of
our opaque reference, to reconcile a send of unknown outcome instead of resending it (#14, M3, CH4)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as b:
        b.add_column(sa.Column("sending_at", _TS, nullable=True))
    with op.batch_alter_table("early_statuses") as b:
        b.add_column(sa.Column("ref", sa.String(64), nullable=True))
    op.create_index("ix_early_status_ref", "early_statuses", ["ref"])


def downgrade() -> None:
    op.drop_index("ix_early_status_ref", "early_statuses")
    with op.batch_alter_table("early_statuses") as b:
        b.drop_column("ref")
    with op.batch_alter_table("outbox") as b:
        b.drop_column("sending_at")
