"""staff invitations and per-staff time zone; API token expiry, owner and revocation; channel
health columns (#12: S3, U5)

Revision ID: 0010
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("time_zone", sa.String(64), nullable=True))
    op.add_column("staff_users", sa.Column("last_login_at", _TS, nullable=True))
    op.add_column("api_tokens", sa.Column("user_id", _ID, nullable=True))
    op.add_column("api_tokens", sa.Column("created_by", sa.String(120), nullable=False, server_default=""))
    op.add_column("api_tokens", sa.Column("expires_at", _TS, nullable=True))
    op.add_column("api_tokens", sa.Column("revoked_at", _TS, nullable=True))
    op.create_index("ix_api_tokens_user", "api_tokens", ["tenant_id", "user_id"])
    op.create_table(
        "staff_invites",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("user_id", _ID, sa.ForeignKey("staff_users.id"), nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
    )
    op.add_column("channel_accounts", sa.Column("last_inbound_at", _TS, nullable=True))
    op.add_column("channel_accounts", sa.Column("last_sent_at", _TS, nullable=True))
    op.add_column("channel_accounts", sa.Column("last_error_at", _TS, nullable=True))
    op.add_column(
        "channel_accounts", sa.Column("last_error", sa.String(300), nullable=False, server_default="")
    )
    op.add_column(
        "channel_accounts", sa.Column("failing_sends", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    for col in ("failing_sends", "last_error", "last_error_at", "last_sent_at", "last_inbound_at"):
        with op.batch_alter_table("channel_accounts") as b:
            b.drop_column(col)
    op.drop_table("staff_invites")
    op.drop_index("ix_api_tokens_user", "api_tokens")
    with op.batch_alter_table("api_tokens") as b:
        for col in ("revoked_at", "expires_at", "created_by", "user_id"):
            b.drop_column(col)
    with op.batch_alter_table("staff_users") as b:
        b.drop_column("last_login_at")
        b.drop_column("time_zone")
