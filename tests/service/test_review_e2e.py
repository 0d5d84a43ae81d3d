"""Onboarding review end to end (issue 12): a ledger with 60 overdue invoices (half of them 90 days late)
connected through the real OAuth flow sends and writes nothing, however many turns run, until the
review is approved; the review lists every customer; after approval each customer gets one message."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from connector.review import approve, review_of
from tests.support.pipeline import pipeline, rules
from tests.support.workers import add_overdue_customers

STEPS = [
    {"id": "first", "offset": 3, "remind": "firm"},
    {"id": "firm", "offset": 30, "remind": "firm", "note": "Overdue (Nudge)"},
    {"id": "call", "offset": 60, "call_task": "Phone about the overdue balance"},
]


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_nothing_goes_out_until_the_review_is_approved(provider: str, tmp_path: Path) -> None:
    with pipeline(provider, tmp_path, rules(STEPS, catch_up=None), start=datetime.now(UTC)) as world:
        tenant = world.kit.add_company("Backlog Ltd")
        add_overdue_customers(world.kit, tenant, 30, number="OLD", amount="250.00", days_late=90)
        add_overdue_customers(world.kit, tenant, 30, number="NEW", amount="120.00", days_late=10, first=30)
        connection = world.connect(tenant, review=True)
        for _ in range(3):  # the worker keeps syncing and planning while nobody looks
            world.turn(connection)
            world.clock.advance(timedelta(hours=8))
        assert world.sink.received == []
        assert world.kit.ledger_writes(tenant) == {"notes": 0, "fee_invoices": 0, "credits": 0}
        rows = world.actions(connection)
        assert rows
        assert {row.state for row in rows if row.kind != "hold"} == {"awaiting_approval"}
        review = review_of(world.services.store, connection)
        assert review.in_review
        assert review.synced
        assert len(review.customers) == 60
        assert review.waiting == len([row for row in rows if row.kind != "hold"])

        approve(world.services.store, connection, "owner@backlog.example", world.clock.now())
        world.turn(connection)
        recipients = Counter(str(message_from_bytes(raw, policy=policy.default)["To"]) for raw in world.sink.received)
        assert len(recipients) == 60  # every customer hears from Nudge once the review is approved
        assert set(recipients.values()) == {1}  # and only once that day
