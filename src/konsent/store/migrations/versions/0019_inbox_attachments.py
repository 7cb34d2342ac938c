"""inbox: agents' attachments sealed at rest, and when an agent last looked at a conversation
(unread counts), and live events found per conversation (who is replying) (#17, M1, S1)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbox_attachments",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("contact_id", _ID, nullable=False, index=True),
        sa.Column("conversation_id", _ID, nullable=False, index=True),
        sa.Column("message_id", _ID, nullable=True, index=True),
        sa.Column("uploaded_by", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mime", sa.String(120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("data_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("agent_seen_at", _TS, nullable=True))
    op.create_index("ix_inbox_events_conversation", "inbox_events", ["tenant_id", "conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_events_conversation", table_name="inbox_events")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("agent_seen_at")
    op.drop_table("inbox_attachments")
