"""simulator_phones: each simulated phone bound to the browser that made it (CH1, S8);
privacy_proofs: a code sent to the contact's messenger before a self-service action;
messages.secret_sealed: the unredacted body of a message that carries such a link or code (D1, #13)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "simulator_phones",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("channel_account_id", _ID, nullable=False),
        sa.Column("address_index", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("channel_account_id", "address_index"),
    )
    op.create_table(
        "privacy_proofs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("contact_id", _ID, nullable=False, index=True),
        sa.Column("link_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expires_at", _TS, nullable=True),
        sa.Column("codes_sent", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("session_expires_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    with op.batch_alter_table("messages") as b:
        b.add_column(sa.Column("secret_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as b:
        b.drop_column("secret_sealed")
    op.drop_table("privacy_proofs")
    op.drop_table("simulator_phones")
