"""customer page (issue 17): what customers ask or tell on their page, and a client's choice of ledger notes for it

Revision ID: 0015_customer_page
Revises: 0014_handoff
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0015_customer_page"
down_revision = "0014_handoff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("customer_external_id", sa.String(length=100), nullable=False),
        sa.Column("invoice_external_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("hold_until", sa.Date(), nullable=True),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_customer_requests_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_customer_requests_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_requests_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_requests")),
    )
    with op.batch_alter_table("customer_requests", schema=None) as batch_op:
        batch_op.create_index("ix_customer_requests_org_state", ["organization_id", "state"], unique=False)
        batch_op.create_index("ix_customer_requests_customer", ["customer_id", "created_at"], unique=False)
    with op.batch_alter_table("client_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_page_ledger_notes", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("client_settings", schema=None) as batch_op:
        batch_op.drop_column("customer_page_ledger_notes")
    with op.batch_alter_table("customer_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_requests_customer")
        batch_op.drop_index("ix_customer_requests_org_state")
    op.drop_table("customer_requests")
