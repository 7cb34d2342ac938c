"""csat_ratings: customer satisfaction asked after a conversation is resolved, per team (#17, M1, S5)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "csat_ratings",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("conversation_id", _ID, nullable=False, unique=True),
        sa.Column("contact_id", _ID, nullable=False, index=True),
        sa.Column("team_id", _ID, nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("asked_at", _TS, nullable=False),
        sa.Column("rated_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("csat_ratings")
