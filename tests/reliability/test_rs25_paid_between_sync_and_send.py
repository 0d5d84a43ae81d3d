"""RS-25: the invoice is paid between sync and send; the executor's just-in-time re-read catches it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.pipeline import pipeline, rules
from tests.support.workers import customer_email

STEPS = [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue: reminder sent by Nudge", "late_fee": "pct"}]
RULES = rules(STEPS, late_fees={"pct": {"kind": "percent", "percent": 2, "warning_required": False}})


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs25_paid_after_sync_suppresses_reminder_note_and_fee(provider: str, tmp_path: Path) -> None:
    """Expected: the pre-send re-check suppresses the reminder and the late fee, and logs "skipped: paid".

    The design names that outcome `cancelled` (docs/design.md "Exactly-once effects": "re-checks the
    invoice just in time (`get_invoice`; cancel if paid/voided/changed)"), recorded as an
    `action.cancelled` activity whose reason says the invoice is paid; the test asserts that.
    """
    now = datetime.now(UTC)
    with pipeline(provider, tmp_path, RULES, start=now) as world:
        kit = world.kit
        tenant = kit.add_company("Paid Late Co")
        customer = kit.add_customer(tenant, "Prompt Payer", customer_email("Prompt Payer"))
        today = now.date()
        invoice = kit.add_invoice(
            tenant, customer, "PD-1", Decimal("500.00"), "", today - timedelta(days=40), today - timedelta(days=10)
        )
        connection = world.connect(tenant)

        world.sync_and_plan(connection)
        planned = {row.kind: row for row in world.actions(connection)}
        assert set(planned) == {"remind", "note", "late_fee"}
        assert all(row.state == "planned" for row in planned.values())

        kit.pay(tenant, invoice)  # the customer pays after the sync, before the send
        assert kit.balance(tenant, invoice) == Decimal("0")
        report = world.execute(connection)

        assert sorted(report.cancelled) == sorted(row.key for row in planned.values())
        assert report.done == []
        rows = world.actions(connection)
        assert {row.state for row in rows} == {"cancelled"}
        assert all("paid" in row.error for row in rows), [row.error for row in rows]
        cancelled = world.activities("action.cancelled")
        assert sorted(a.subject for a in cancelled) == sorted(row.key for row in rows)
        assert world.sink.received == []
        assert kit.ledger_writes(tenant) == {"notes": 0, "fee_invoices": 0, "credits": 0}
