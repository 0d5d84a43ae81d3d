"""vault: the canary row (a known text sealed with the active key, opened at start-up)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.storage.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_canary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", connector.storage.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_canary")),
    )


def downgrade() -> None:
    op.drop_table("vault_canary")
