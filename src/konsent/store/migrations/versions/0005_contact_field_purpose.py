"""contact_fields.purpose: the data consent a bot-collected field was kept under (M2)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_fields") as b:
        b.add_column(sa.Column("purpose", sa.String(80), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("contact_fields") as b:
        b.drop_column("purpose")
