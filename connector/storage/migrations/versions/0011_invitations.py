"""invitations and membership requests (issue 16): teams across organizations

Revision ID: 0011_invitations
Revises: 0009_page_indexes
Create Date: 2026-12-01 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0011_invitations"
down_revision = "0009_page_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("client_limited", sa.Boolean(), nullable=False),
        sa.Column("connection_ids", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invitations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_user_id"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by_user_id"],
            ["users.id"],
            name=op.f("fk_invitations_accepted_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invitations_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "membership_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requesting_organization_id", sa.Integer(), nullable=False),
        sa.Column("requesting_user_id", sa.Integer(), nullable=False),
        sa.Column("requesting_connection_id", sa.Integer(), nullable=False),
        sa.Column("managing_organization_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["requesting_organization_id"],
            ["organizations.id"],
            name=op.f("fk_membership_requests_requesting_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requesting_user_id"],
            ["users.id"],
            name=op.f("fk_membership_requests_requesting_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requesting_connection_id"],
            ["connections.id"],
            name=op.f("fk_membership_requests_requesting_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["managing_organization_id"],
            ["organizations.id"],
            name=op.f("fk_membership_requests_managing_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_membership_requests_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_user_id"],
            ["users.id"],
            name=op.f("fk_membership_requests_decided_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_requests")),
    )
    with op.batch_alter_table("membership_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_membership_requests_managing_organization_id"), ["managing_organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("membership_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membership_requests_managing_organization_id"))
    op.drop_table("membership_requests")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitations_organization_id"))
    op.drop_table("invitations")
