"""hand-off packs (issue 17): the letter, evidence ZIP and agency placement file of invoices handed over

Revision ID: 0014_handoff
Revises: 0013_inbound_replies
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0014_handoff"
down_revision = "0013_inbound_replies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_packs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pack_key", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("action_key", sa.String(length=64), nullable=False),
        sa.Column("customer_external_id", sa.String(length=100), nullable=False),
        sa.Column("customer_name", sa.String(length=300), nullable=False),
        sa.Column("invoice_external_ids", sa.JSON(), nullable=False),
        sa.Column("invoice_numbers", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("letter_date", sa.Date(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("letter_pdf", sa.LargeBinary(), nullable=False),
        sa.Column("evidence_zip", sa.LargeBinary(), nullable=False),
        sa.Column("placement_csv", sa.LargeBinary(), nullable=False),
        sa.Column("missing_pdfs", sa.JSON(), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_handoff_packs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_handoff_packs_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_packs")),
        sa.UniqueConstraint("pack_key", name=op.f("uq_handoff_packs_pack_key")),
    )
    with op.batch_alter_table("handoff_packs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handoff_packs_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index("ix_handoff_packs_customer", ["connection_id", "customer_external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handoff_packs", schema=None) as batch_op:
        batch_op.drop_index("ix_handoff_packs_customer")
        batch_op.drop_index(batch_op.f("ix_handoff_packs_organization_id"))
    op.drop_table("handoff_packs")
