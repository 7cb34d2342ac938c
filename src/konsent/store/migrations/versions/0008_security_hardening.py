"""simulator_phones: each simulated phone bound to the browser that made it (CH1, S8, #13)

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "simulator_phones",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("channel_account_id", _ID, nullable=False),
        sa.Column("address_index", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("channel_account_id", "address_index"),
    )


def downgrade() -> None:
    op.drop_table("simulator_phones")
