"""topics.position / archived_at (order and archive topics), consent_texts.author, and the
re-consent tables: one campaign per changed consent text, one request per contact (U5, C6)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("topics") as b:
        b.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("archived_at", _TS, nullable=True))
    with op.batch_alter_table("consent_texts") as b:
        b.add_column(sa.Column("author", sa.String(120), nullable=False, server_default=""))
    op.create_table(
        "reconsent_campaigns",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("consent_text_id", _ID, sa.ForeignKey("consent_texts.id"), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_table(
        "reconsent_requests",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("campaign_id", _ID, sa.ForeignKey("reconsent_campaigns.id"), nullable=False, index=True),
        sa.Column("contact_id", _ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("from_versions", sa.JSON(), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("confirmed_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("reconsent_requests")
    op.drop_table("reconsent_campaigns")
    with op.batch_alter_table("consent_texts") as b:
        b.drop_column("author")
    with op.batch_alter_table("topics") as b:
        b.drop_column("archived_at")
        b.drop_column("position")
