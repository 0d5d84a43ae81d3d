"""sign in with Intuit: user identities (several per user) and single-use OpenID Connect nonces

Revision ID: 0010_oidc_nonces
Revises: 0009_page_indexes
Create Date: 2026-12-01 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.storage.tables import UtcDateTime

revision = "0010_oidc_nonces"
down_revision = "0009_page_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("provider", "subject"),
    )
    op.create_index("ix_user_identities_user_id", "user_identities", ["user_id"])
    # Every identity a user already signed up with is also a row here (lookups read this table).
    op.execute(
        "INSERT INTO user_identities (user_id, provider, subject, email, created_at) "
        "SELECT id, auth_provider, auth_subject, email, created_at FROM users "
        "WHERE auth_provider IS NOT NULL AND auth_subject IS NOT NULL"
    )
    op.create_table(
        "oidc_nonces",
        sa.Column("nonce_hash", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_oidc_nonces_expires_at", "oidc_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_nonces_expires_at", table_name="oidc_nonces")
    op.drop_table("oidc_nonces")
    op.drop_index("ix_user_identities_user_id", table_name="user_identities")
    op.drop_table("user_identities")
