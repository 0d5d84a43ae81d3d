"""users: external identity (auth_provider, auth_subject) for "Sign up with Xero"

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add a constraint in place (the table is copied); PostgreSQL ALTERs.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_provider", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("auth_subject", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_users_auth_provider"), ["auth_provider", "auth_subject"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_users_auth_provider"), type_="unique")
        batch_op.drop_column("auth_subject")
        batch_op.drop_column("auth_provider")
