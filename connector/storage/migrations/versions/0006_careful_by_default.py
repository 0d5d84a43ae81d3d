"""careful by default (issue 12): onboarding review and one chaser per ledger on connections, the ledger's
holiday calendar, Nudge's marker on synced invoices, tasks for people, access requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chasing", sa.String(length=20), server_default="active", nullable=False))
        batch_op.add_column(sa.Column("chasing_since", connector.storage.tables.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("managed_by_organization_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("holiday_country", sa.String(length=2), server_default="", nullable=False))
        batch_op.add_column(sa.Column("holiday_subdiv", sa.String(length=10), server_default="", nullable=False))
        batch_op.create_foreign_key(
            batch_op.f("fk_connections_managed_by_organization_id_organizations"),
            "organizations",
            ["managed_by_organization_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_nudge", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("action_key", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("customer_external_id", sa.String(length=100), nullable=False),
        sa.Column("customer_name", sa.String(length=300), nullable=False),
        sa.Column("invoice_external_ids", sa.JSON(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("assignee_user_id", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("record_in_ledger", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("completed_by", sa.String(length=200), nullable=False),
        sa.Column("completed_at", connector.storage.tables.UtcDateTime(), nullable=True),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tasks_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_tasks_connection_id_connections"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["assignee_user_id"], ["users.id"], name=op.f("fk_tasks_assignee_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("action_key", name=op.f("uq_tasks_action_key")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_org_state", ["organization_id", "state", "due_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_connection_id"), ["connection_id"], unique=False)
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("requesting_organization_id", sa.Integer(), nullable=False),
        sa.Column("managing_organization_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(), nullable=False),
        sa.Column("decided_at", connector.storage.tables.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_access_requests_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requesting_organization_id"],
            ["organizations.id"],
            name=op.f("fk_access_requests_requesting_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["managing_organization_id"],
            ["organizations.id"],
            name=op.f("fk_access_requests_managing_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_requests_connection_id"), ["connection_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_requests_connection_id"))
    op.drop_table("access_requests")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_connection_id"))
        batch_op.drop_index("ix_tasks_org_state")
    op.drop_table("tasks")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("created_by_nudge")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_connections_managed_by_organization_id_organizations"), type_="foreignkey"
        )
        batch_op.drop_column("holiday_subdiv")
        batch_op.drop_column("holiday_country")
        batch_op.drop_column("managed_by_organization_id")
        batch_op.drop_column("chasing_since")
        batch_op.drop_column("chasing")
