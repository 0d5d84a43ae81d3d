"""payments: the ledgers' money movements per invoice (issue 11, core); payment_plans.policy

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("invoice_external_id", sa.String(length=100), nullable=False),
        sa.Column("customer_external_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.Column("updated_at", connector.storage.tables.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_payments_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "connection_id", "kind", "external_id", "invoice_external_id", name=op.f("uq_payments_connection_id")
        ),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_customer", ["connection_id", "customer_external_id"], unique=False)
        batch_op.create_index("ix_payments_invoice", ["connection_id", "invoice_external_id"], unique=False)
    with op.batch_alter_table("payment_plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.String(length=100), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("payment_plans", schema=None) as batch_op:
        batch_op.drop_column("policy")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_invoice")
        batch_op.drop_index("ix_payments_customer")
    op.drop_table("payments")
