"""contact labels, typed attributes and the search index (#17 item 2, M5, S1, L1)

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

import konsent.store.types

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = konsent.store.types.UTCDateTime(timezone=True)


def _pk() -> sa.Column:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True, nullable=False)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False, index=True)


def upgrade() -> None:
    op.create_table(
        "label_definitions",
        _pk(),
        _tenant(),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_label_definitions_name"),
    )
    op.create_table(
        "contact_labels",
        _pk(),
        _tenant(),
        sa.Column("contact_id", _ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
        sa.Column("label_id", _ID, sa.ForeignKey("label_definitions.id"), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("contact_id", "label_id", name="uq_contact_labels"),
    )
    op.create_index("ix_contact_labels_label", "contact_labels", ["tenant_id", "label_id", "contact_id"])
    op.create_table(
        "attribute_definitions",
        _pk(),
        _tenant(),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("retention", sa.String(24), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "key", name="uq_attribute_definitions_key"),
    )
    op.create_table(
        "contact_attributes",
        _pk(),
        _tenant(),
        sa.Column("contact_id", _ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
        sa.Column("attribute_id", _ID, sa.ForeignKey("attribute_definitions.id"), nullable=False),
        sa.Column("value_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("value_index", sa.String(64), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("contact_id", "attribute_id", name="uq_contact_attributes"),
    )
    op.create_index(
        "ix_contact_attributes_value", "contact_attributes", ["tenant_id", "attribute_id", "value_index"]
    )
    op.create_index("ix_contact_attributes_index", "contact_attributes", ["tenant_id", "value_index"])
    op.create_table(
        "contact_search_grams",
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), primary_key=True, nullable=False),
        sa.Column("gram", sa.String(16), primary_key=True, nullable=False),
        sa.Column("contact_id", _ID, sa.ForeignKey("contacts.id"), primary_key=True, nullable=False),
    )
    op.create_index("ix_contact_search_grams_contact_id", "contact_search_grams", ["contact_id"])


def downgrade() -> None:
    op.drop_table("contact_search_grams")
    op.drop_table("contact_attributes")
    op.drop_table("attribute_definitions")
    op.drop_table("contact_labels")
    op.drop_table("label_definitions")
