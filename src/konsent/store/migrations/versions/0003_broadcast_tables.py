"""broadcasts, early statuses, outbox.broadcast_id (M3, CH4)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(80), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("min_text_version", sa.Integer(), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("channel_account_id", _ID, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("scheduled_at", _TS, nullable=True),
        sa.Column("checkpoint", _ID, nullable=False),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("queued_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_broadcasts_tenant_id", "broadcasts", ["tenant_id"])
    op.create_index("ix_broadcast_due", "broadcasts", ["state", "scheduled_at"])
    op.create_table(
        "early_statuses",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("channel_account_id", _ID, nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_early_statuses_tenant_id", "early_statuses", ["tenant_id"])
    op.create_index("ix_early_status", "early_statuses", ["channel_account_id", "provider_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("broadcast_id", _ID, nullable=True))
    op.create_index("ix_outbox_broadcast", "outbox", ["broadcast_id", "state"])
    op.create_index("ix_outbox_account_claim", "outbox", ["channel_account_id", "state", "run_at"])
    op.create_index("ix_consent_audience", "consents", ["tenant_id", "purpose", "status", "contact_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_audience", table_name="consents")
    op.drop_index("ix_outbox_account_claim", table_name="outbox")
    op.drop_index("ix_outbox_broadcast", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("broadcast_id")
    op.drop_table("early_statuses")
    op.drop_table("broadcasts")
