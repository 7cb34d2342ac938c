"""costs: pricing per message, imported price lists, budget caps, identity countries (#16 item 4, CH6)

Revision ID: 0018
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "message_charges",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("channel_account_id", _ID, nullable=False),
        sa.Column("message_ref", _ID, nullable=False),
        sa.Column("purpose", sa.String(80), nullable=False, server_default=""),
        sa.Column("country", sa.String(2), nullable=False, server_default=""),
        sa.Column("category", sa.String(32), nullable=False, server_default=""),
        sa.Column("pricing_type", sa.String(32), nullable=False, server_default=""),
        sa.Column("pricing_model", sa.String(8), nullable=False, server_default=""),
        sa.Column("billable", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "message_ref", name="uq_message_charge"),
    )
    op.create_index("ix_message_charges_month", "message_charges", ["tenant_id", "month"])
    op.create_table(
        "price_lists",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("valid_from", _TS, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False, server_default="EUR"),
        sa.Column("source", sa.String(200), nullable=False, server_default=""),
        sa.Column("imported_by", sa.String(120), nullable=False, server_default=""),
        sa.Column("imported_at", _TS, nullable=False),
    )
    op.create_index("ix_price_lists_valid", "price_lists", ["tenant_id", "valid_from"])
    op.create_table(
        "prices",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("price_list_id", _ID, sa.ForeignKey("price_lists.id", ondelete="CASCADE"), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("price_list_id", "country", "category", name="uq_price"),
    )
    with op.batch_alter_table("broadcasts") as b:
        b.add_column(sa.Column("budget_micros", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("cost_reserved_micros", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("contact_identities") as b:
        b.add_column(sa.Column("country", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_identities") as b:
        b.drop_column("country")
    with op.batch_alter_table("broadcasts") as b:
        b.drop_column("cost_reserved_micros")
        b.drop_column("budget_micros")
    op.drop_table("prices")
    op.drop_index("ix_price_lists_valid", table_name="price_lists")
    op.drop_table("price_lists")
    op.drop_index("ix_message_charges_month", table_name="message_charges")
    op.drop_table("message_charges")
