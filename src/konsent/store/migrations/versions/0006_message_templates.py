"""message_templates: the per-tenant registry of provider-approved templates per channel account;
messages.template_id / template_version record which one an agent sent (M1, CH3)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("channel_account_id", _ID, sa.ForeignKey("channel_accounts.id"), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("header", sa.String(200), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("variables", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "channel_account_id", "name", "language"),
    )
    with op.batch_alter_table("messages") as b:
        b.add_column(sa.Column("template_id", _ID, nullable=True))
        b.add_column(sa.Column("template_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as b:
        b.drop_column("template_version")
        b.drop_column("template_id")
    op.drop_table("message_templates")
