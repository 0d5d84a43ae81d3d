"""Issue 12 acceptance, on both emulators (real HTTP, the real SDKs, SQLite, a real SMTP server): one ledger
(one emulator tenant) connected through OAuth from two organizations, an accountant's practice first, then the
business owner's own organization.

Ten simulated days of worker turns for both connections send one set of emails (one per customer and day) and
charge one set of fees; the second organization's connection plans nothing, cannot approve anything, and says
(review, `nudge connections`) which organization manages the ledger. Nudge's own fee invoices are never chased.
(SQLite for both providers; PostgreSQL once.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.review import ReviewError, approve, review_of
from tests.support.careful import FEES, STEPS, TEMPLATES, address, done, mails, seed_backlog, set_now, watch_handover
from tests.support.pipeline import pipeline, rules
from tests.support.workers import organization

NUDGE = str(Path(sys.executable).parent / "nudge")
START = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # a Wednesday, a public holiday nowhere the emulators' ledgers are
DAYS = 10  # long enough for a fee: first contact with its warning on day one, the fee a week later
ACCOUNTANTS = "Smith & Co"  # short: `nudge connections` cuts a long name to its column


@pytest.mark.parametrize(
    ("provider", "database"), [("quickbooks", "sqlite"), ("xero", "sqlite"), ("xero", "postgresql")]
)
def test_one_ledger_from_two_organizations_is_chased_once(provider: str, database: str, tmp_path: Path) -> None:
    rule_set = rules(STEPS, late_fees=FEES, templates=TEMPLATES)
    with pipeline(provider, tmp_path, rule_set, start=START, database=database) as world:
        set_now(world, START)
        stamps = watch_handover(world)
        tenant = world.kit.add_company("Shared Books Ltd")
        backlog = seed_backlog(world, tenant, customers=4, per_customer=2, today=START.date(), days_late=(20, 5))
        accountants = organization(world.services, ACCOUNTANTS)
        owner = organization(world.services, "Shared Books Ltd (owner)")
        first = world.connect(tenant, org=accountants)  # approves its review as a user would
        second = world.connect(tenant, org=owner, review=True)  # the owner signs up with the same ledger

        with world.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(second)
            assert row is not None
            assert (row.chasing, row.managed_by_organization_id) == ("managed_elsewhere", accountants)
        assert review_of(world.services.store, second).managed_by == ACCOUNTANTS
        with pytest.raises(ReviewError, match=ACCOUNTANTS):
            approve(world.services.store, second, "owner@shared.example", world.clock.now())
        listing = subprocess.run(
            [NUDGE, "--config", str(world.config), "connections"],
            env={k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listing.returncode == 0, listing.stdout + listing.stderr
        assert f"managed by {ACCOUNTANTS}" in listing.stdout

        for day in range(DAYS):
            for hour in (0, 6, 12):
                set_now(world, START + timedelta(days=day, hours=hour))
                world.turn(first)
                world.turn(second)

        assert world.actions(second) == []  # the second organization plans nothing, so it does nothing
        reminders = done(world, first, "remind")
        fees = done(world, first, "late_fee")
        sent = mails(world, stamps)
        assert len(sent) == len(reminders) > 0
        per_day = Counter((address(mail), mail.sent_at.astimezone(UTC).date()) for mail in sent)
        assert max(per_day.values()) == 1  # one set of emails: never two to a customer on a day
        assert fees  # a fee, a week after its warning
        assert world.kit.ledger_writes(tenant)["fee_invoices"] == len(fees)  # and charged once
        assert len({fee.payload["invoice_external_ids"][0] for fee in fees}) == len(fees)
        chased = {invoice for row in reminders for invoice in row.payload["invoice_external_ids"]}
        assert chased <= set(backlog.invoices)  # Nudge's fee invoices are never chased
