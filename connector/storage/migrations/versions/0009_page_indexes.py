"""page indexes (issue 15): the overview's reads of recent sales and payments per client

Revision ID: 0009_page_indexes
Revises: 0008_sent_messages
Create Date: 2026-12-01 04:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0009_page_indexes"
down_revision = "0008_sent_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The overview and client pages read each client's invoices issued and payments received in a recent window
    # (DSO and its trend, collected per week): a range on the date within one connection.
    op.create_index("ix_invoices_issued", "invoices", ["connection_id", "issue_date"])
    op.create_index("ix_payments_paid_on", "payments", ["connection_id", "paid_on"])


def downgrade() -> None:
    op.drop_index("ix_payments_paid_on", table_name="payments")
    op.drop_index("ix_invoices_issued", table_name="invoices")
