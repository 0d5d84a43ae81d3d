"""per-client configuration (issue 14): the versioned library, client settings, customer and invoice overrides,
the audit log, API tokens, client-limited memberships and the library version each action was planned by

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 21:05:46.000972
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_tokens_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "library_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("current_version_id", sa.Integer(), nullable=True),
        sa.Column("deleted_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_library_items_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_items")),
    )
    with op.batch_alter_table("library_items", schema=None) as batch_op:
        batch_op.create_index("ix_library_items_org_kind", ["organization_id", "kind"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_audit_log_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_log_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_connection_at", ["connection_id", "at"], unique=False)
        batch_op.create_index("ix_audit_log_org_at", ["organization_id", "at"], unique=False)

    op.create_table(
        "client_settings",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("cadence_id", sa.Integer(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("holiday_calendar", sa.String(length=20), nullable=False),
        sa.Column("send_window", sa.JSON(), nullable=True),
        sa.Column("approval", sa.String(length=10), nullable=False),
        sa.Column("minimum_amounts", sa.JSON(), nullable=False),
        sa.Column("locale", sa.String(length=20), nullable=False),
        sa.Column("business_name", sa.String(length=200), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=False),
        sa.Column("updated_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cadence_id"], ["library_items.id"], name=op.f("fk_client_settings_cadence_id_library_items")
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_client_settings_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_client_settings")),
    )
    op.create_table(
        "invoice_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("invoice_external_id", sa.String(length=100), nullable=False),
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("dispute", sa.Boolean(), nullable=False),
        sa.Column("dispute_reason", sa.Text(), nullable=False),
        sa.Column("agreed_due_date", sa.Date(), nullable=True),
        sa.Column("updated_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_invoice_overrides_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_overrides")),
        sa.UniqueConstraint("connection_id", "invoice_external_id", name=op.f("uq_invoice_overrides_connection_id")),
    )
    op.create_table(
        "library_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["library_items.id"],
            name=op.f("fk_library_versions_item_id_library_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_versions")),
        sa.UniqueConstraint("item_id", "number", name=op.f("uq_library_versions_item_id")),
    )
    with op.batch_alter_table("library_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_library_versions_item_id"), ["item_id"], unique=False)

    op.create_table(
        "membership_clients",
        sa.Column("membership_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_membership_clients_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_membership_clients_membership_id_memberships"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("membership_id", "connection_id", name=op.f("pk_membership_clients")),
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("library_version_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_actions_library_version_id"), ["library_version_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_actions_library_version_id_library_versions"),
            "library_versions",
            ["library_version_id"],
            ["id"],
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispute_reason", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("promise_amount", sa.Numeric(precision=20, scale=4), nullable=True))
        batch_op.add_column(sa.Column("promise_currency", sa.String(length=3), server_default="", nullable=False))
        batch_op.add_column(sa.Column("promise_grace_days", sa.Integer(), server_default="3", nullable=False))
        batch_op.add_column(sa.Column("cadence_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recipients_to", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("recipients_cc", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_customers_cadence_id_library_items"), "library_items", ["cadence_id"], ["id"]
        )

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_limited", sa.Boolean(), server_default="0", nullable=False))

    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limit_waits", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("limit_wait_seconds", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("limit_wait_seconds")
        batch_op.drop_column("limit_waits")

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("client_limited")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_customers_cadence_id_library_items"), type_="foreignkey")
        batch_op.drop_column("recipients_cc")
        batch_op.drop_column("recipients_to")
        batch_op.drop_column("cadence_id")
        batch_op.drop_column("promise_grace_days")
        batch_op.drop_column("promise_currency")
        batch_op.drop_column("promise_amount")
        batch_op.drop_column("dispute_reason")

    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_actions_library_version_id_library_versions"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_actions_library_version_id"))
        batch_op.drop_column("library_version_id")

    op.drop_table("membership_clients")
    with op.batch_alter_table("library_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_library_versions_item_id"))

    op.drop_table("library_versions")
    op.drop_table("invoice_overrides")
    op.drop_table("client_settings")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_org_at")
        batch_op.drop_index("ix_audit_log_connection_at")

    op.drop_table("audit_log")
    with op.batch_alter_table("library_items", schema=None) as batch_op:
        batch_op.drop_index("ix_library_items_org_kind")

    op.drop_table("library_items")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_organization_id"))

    op.drop_table("api_tokens")
