"""inbox and chatbot: teams, labels, notes, canned replies, live events, bot flows and sessions,
contact fields, staff TOTP; conversation routing columns (M1, M2, S3)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def _pk() -> sa.Column:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as b:
        b.add_column(sa.Column("team_id", _ID, nullable=True))
        b.add_column(sa.Column("assignee_id", _ID, nullable=True))
        b.add_column(sa.Column("snoozed_until", _TS, nullable=True))
        b.add_column(sa.Column("first_response_at", _TS, nullable=True))
        b.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_conv_recent", "conversations", ["tenant_id", "last_message_at"])
    op.create_index("ix_conv_team", "conversations", ["tenant_id", "team_id", "last_message_at"])
    op.create_table(
        "teams",
        _pk(),
        _tenant(),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "slug"),
    )
    op.create_table(
        "team_members",
        _pk(),
        _tenant(),
        sa.Column("team_id", _ID, sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("user_id", _ID, sa.ForeignKey("staff_users.id"), nullable=False, index=True),
        sa.UniqueConstraint("team_id", "user_id"),
    )
    op.create_table(
        "conversation_labels",
        _pk(),
        _tenant(),
        sa.Column("conversation_id", _ID, sa.ForeignKey("conversations.id"), nullable=False, index=True),
        sa.Column("label", sa.String(40), nullable=False),
        sa.UniqueConstraint("conversation_id", "label"),
        sa.Index("ix_conv_label", "tenant_id", "label"),
    )
    op.create_table(
        "conversation_notes",
        _pk(),
        _tenant(),
        sa.Column("conversation_id", _ID, sa.ForeignKey("conversations.id"), nullable=False, index=True),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("body_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "canned_replies",
        _pk(),
        _tenant(),
        sa.Column("shortcut", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "shortcut"),
    )
    op.create_table(
        "inbox_events",
        _pk(),
        _tenant(),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "bot_flows",
        _pk(),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "bot_sessions",
        _pk(),
        _tenant(),
        sa.Column("conversation_id", _ID, sa.ForeignKey("conversations.id"), nullable=False, unique=True),
        sa.Column("flow_id", _ID, sa.ForeignKey("bot_flows.id"), nullable=False),
        sa.Column("step", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("vars", sa.JSON(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "contact_fields",
        _pk(),
        _tenant(),
        sa.Column("contact_id", _ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("value_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "contact_id", "name"),
    )
    op.create_table(
        "staff_totp",
        sa.Column("user_id", _ID, sa.ForeignKey("staff_users.id"), primary_key=True, nullable=False),
        _tenant(),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed_at", _TS, nullable=True),
        sa.Column("last_step", _ID, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "staff_totp",
        "contact_fields",
        "bot_sessions",
        "bot_flows",
        "inbox_events",
        "canned_replies",
        "conversation_notes",
        "conversation_labels",
        "team_members",
        "teams",
    ):
        op.drop_table(name)
    op.drop_index("ix_conv_team", "conversations")
    op.drop_index("ix_conv_recent", "conversations")
    with op.batch_alter_table("conversations") as b:
        for col in ("version", "first_response_at", "snoozed_until", "assignee_id", "team_id"):
            b.drop_column(col)
