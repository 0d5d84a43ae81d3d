"""inbound replies (issue 17): emails received at the reply address, matched to their customer and thread

Revision ID: 0013_inbound_replies
Revises: 0009_page_indexes
Create Date: 2026-12-01 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0013_inbound_replies"
down_revision = "0012_account_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("customer_external_id", sa.String(length=100), nullable=False),
        sa.Column("sent_message_id", sa.Integer(), nullable=True),
        sa.Column("thread_hash", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("received_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("handled_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_inbound_messages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_inbound_messages_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sent_message_id"],
            ["sent_messages.id"],
            name=op.f("fk_inbound_messages_sent_message_id_sent_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_inbound_messages_fingerprint")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_messages_org_kind_handled", ["organization_id", "kind", "handled"], unique=False
        )
        batch_op.create_index("ix_inbound_messages_customer", ["connection_id", "customer_external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_customer")
        batch_op.drop_index("ix_inbound_messages_org_kind_handled")
    op.drop_table("inbound_messages")
