"""Issue 12 acceptance, on both emulators (real HTTP, the real SDKs, SQLite, a real SMTP server): a ledger with a
backlog of 60 overdue invoices (some 90 days late) over 20 customers is connected through OAuth.

Before the onboarding review is approved, sync-plan-execute turns change nothing a customer or the ledger sees:
no email, no fee invoice, no note, not one request that could write to the books. After approval the first
message to each customer is a friendly or firm first-contact step (never a final notice, never a hand-over),
no late fee is charged on the first day, and no email claims an earlier contact that never happened.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.domain.policy import Tone
from connector.review import approve, review_of
from tests.support.careful import (
    EARLIER_CONTACT,
    FEES,
    STEPS,
    TEMPLATES,
    address,
    done,
    ledger_changing_calls,
    mails,
    seed_backlog,
    set_now,
    step_tones,
    watch_handover,
)
from tests.support.pipeline import pipeline, rules

# A Wednesday that is a public holiday nowhere the emulators' companies are (US by default, NZ for Xero).
START = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
CUSTOMERS, PER_CUSTOMER = 20, 3
NOTHING_WRITTEN = {"notes": 0, "fee_invoices": 0, "credits": 0}


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_a_backlog_is_reviewed_first_then_contacted_gently_without_fees(provider: str, tmp_path: Path) -> None:
    rule_set = rules(STEPS, late_fees=FEES, templates=TEMPLATES)
    with pipeline(provider, tmp_path, rule_set, start=START) as world:
        set_now(world, START)
        stamps = watch_handover(world)
        tenant = world.kit.add_company("Backlog Ltd")
        backlog = seed_backlog(world, tenant, customers=CUSTOMERS, per_customer=PER_CUSTOMER, today=START.date())
        connection = world.connect(tenant, review=True)  # a new connection starts in review

        world.kit.clear_calls()
        for hour in range(3):  # what `nudge run` does each tick: sync, plan, execute
            set_now(world, START + timedelta(hours=hour))
            world.turn(connection)
        assert world.sink.received == []
        assert world.kit.ledger_writes(tenant) == NOTHING_WRITTEN
        assert ledger_changing_calls(world, tenant) == []
        review = review_of(world.services.store, connection)
        assert review.in_review
        assert review.waiting > 0  # the first plan waits for a person
        waiting_kinds = {group.kind.value for customer in review.customers for group in customer.groups}
        assert "late_fee" not in waiting_kinds  # no fee can be due: nobody was warned yet
        assert {row.state for row in world.actions(connection) if row.kind != "hold"} == {"awaiting_approval"}

        approve(world.services.store, connection, "owner@backlog.example", world.clock.now())
        for hour in range(3, 24 - START.hour):  # the rest of the first day (UTC, the connection's zone)
            set_now(world, START + timedelta(hours=hour))
            world.turn(connection)

        sent = mails(world, stamps)
        assert Counter(address(mail) for mail in sent) == Counter(backlog.emails)  # one each
        reminders = done(world, connection, "remind")
        assert len(reminders) == CUSTOMERS
        for reminder in reminders:
            tones = step_tones(world, reminder)
            assert tones, reminder.payload["step_id"]
            assert Tone.FINAL not in tones, reminder.payload["step_id"]
            assert reminder.payload["template"] != "final_notice"
        for mail in sent:
            words = f"{mail.subject}\n{mail.text}".lower()
            assert not [claim for claim in EARLIER_CONTACT if claim in words], (mail.subject, mail.text)
            assert "final notice" not in words
        assert done(world, connection, "escalate") == []
        assert done(world, connection, "late_fee") == []
        assert world.kit.ledger_writes(tenant)["fee_invoices"] == 0
