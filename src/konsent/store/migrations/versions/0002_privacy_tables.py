"""privacy centre: suppression list, erasure notes, requests, exports, links, retention

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime()


def _id() -> sa.Column:
    return sa.Column("id", _ID, autoincrement=True, nullable=False, primary_key=True)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True)


def upgrade() -> None:
    op.create_table(
        "suppression_list",
        _id(),
        _tenant(),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "address_hash"),
    )
    op.create_table(
        "erasure_notes",
        _id(),
        _tenant(),
        sa.Column("erased_at", _TS, nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
    )
    op.create_table(
        "privacy_requests",
        _id(),
        _tenant(),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("confirm_until", _TS, nullable=True),
        sa.Column("handled_by", sa.String(120), nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
    )
    op.create_index("ix_privacy_requests_due", "privacy_requests", ["tenant_id", "state", "due_at"])
    op.create_table(
        "privacy_exports",
        _id(),
        _tenant(),
        sa.Column("contact_id", _ID, nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("content_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False, index=True),
        sa.Column("downloaded_at", _TS, nullable=True),
    )
    op.create_table(
        "privacy_links",
        _id(),
        _tenant(),
        sa.Column("contact_id", _ID, nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False, index=True),
        sa.Column("used_at", _TS, nullable=True),
    )
    op.create_table(
        "retention_rules",
        _id(),
        _tenant(),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "category"),
    )
    op.create_table(
        "retention_runs",
        _id(),
        _tenant(),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
    )
    op.create_index("ix_outbox_message", "outbox", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message", "outbox")
    for name in (
        "retention_runs",
        "retention_rules",
        "privacy_links",
        "privacy_exports",
        "privacy_requests",
        "erasure_notes",
        "suppression_list",
    ):
        op.drop_table(name)
