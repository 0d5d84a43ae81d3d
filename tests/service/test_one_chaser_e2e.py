"""One ledger, one chaser end to end (issue 12): the same company connected through the real OAuth flow
from two organizations (an accountant, then the owner) gets one set of reminders and ledger notes, and
the second organization is told who manages it. Each emulator, in this process, with an SMTP sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.review import review_of
from connector.storage.tables import Activity
from tests.support.pipeline import pipeline, rules
from tests.support.workers import add_overdue_customers, organization

CUSTOMERS = 3
STEPS = [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue (Nudge)"}]


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_two_organizations_connecting_one_ledger_send_one_set_of_reminders(provider: str, tmp_path: Path) -> None:
    with pipeline(provider, tmp_path, rules(STEPS), start=datetime.now(UTC)) as world:
        tenant = world.kit.add_company("Acme Ledger")
        add_overdue_customers(world.kit, tenant, CUSTOMERS, number="AC", amount="400.00", days_late=10)
        accountant = organization(world.services, "Smith & Co Accountants")
        owner = organization(world.services, "Acme Ltd")
        managing = world.connect(tenant, org=accountant)  # in review, approved by the accountant at once
        second = world.connect(tenant, org=owner)  # five minutes later the owner signs up and connects it too
        for _ in range(2):  # two turns each, the second a day later
            world.turn(managing)
            world.turn(second)
            world.clock.advance(timedelta(days=1))

        assert len(world.sink.received) == CUSTOMERS  # one reminder per customer, not two
        assert world.kit.ledger_writes(tenant)["notes"] == CUSTOMERS
        assert world.actions(second) == []  # the owner's connection planned nothing
        done = [row for row in world.actions(managing) if row.state == "done"]
        assert sorted(row.kind for row in done) == ["note"] * CUSTOMERS + ["remind"] * CUSTOMERS
        review = review_of(world.services.store, second)
        assert (review.chasing, review.managed_by) == ("managed_elsewhere", "Smith & Co Accountants")
        assert review.synced  # it syncs, so the owner sees the ledger
        with world.services.store.unit_of_work() as uow:
            [told] = uow.session.scalars(select(Activity).where(Activity.kind == "connection.managed_elsewhere"))
            assert (told.organization_id, told.detail["managed_by"]) == (owner, "Smith & Co Accountants")
