"""template lifecycle: message_templates.quality, template_events (status, quality and category
changes with their history), broadcasts.paused_reason (#16, T4, M1, M3)

Revision ID: 0014
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("message_templates") as batch:
        batch.add_column(sa.Column("quality", sa.String(16), nullable=False, server_default=""))
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("paused_reason", sa.String(300), nullable=False, server_default=""))
    op.create_table(
        "template_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("channel_account_id", _ID, sa.ForeignKey("channel_accounts.id"), nullable=False),
        sa.Column("template_id", _ID, nullable=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old", sa.String(40), nullable=False, server_default=""),
        sa.Column("new", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False, server_default=""),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_template_events_template", "template_events", ["tenant_id", "template_id"])


def downgrade() -> None:
    op.drop_index("ix_template_events_template", "template_events")
    op.drop_table("template_events")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("paused_reason")
    with op.batch_alter_table("message_templates") as batch:
        batch.drop_column("quality")
