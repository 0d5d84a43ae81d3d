"""Issue 13: what a connection costs in provider reads when nothing happens, and the open credit read before acting.

The shipped schedule (a safety-net poll every 6 hours, a daily reconcile) over the real worker turn, one
emulator and a fake clock: an idle incremental sweep is one call; a day at rest is three polls and one
reconcile (5 reads on either provider); the open credit (Xero: three listings) is read only on a day
something would go out, before planning, so an overpayment holds the reminder it would otherwise send.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connector.domain.actions import ActionKind, HoldReason
from connector.outbox.codec import action_from_json
from connector.sync.invoices import sync_connection
from connector.worker.turn import adapter_for
from tests.support.pipeline import Pipeline, pipeline, rules

PROVIDERS = ["quickbooks", "xero"]
CURRENCY = {"quickbooks": "USD", "xero": "NZD"}
SHIPPED_SCHEDULE = {
    "lease_seconds": 60,
    "concurrency": 1,
    "tick_seconds": 1,
    "jitter_seconds": 1,
    "sync_interval_minutes": 360,
    "full_reconcile_hours": 24,
}
NOTHING_DUE = [{"id": "much-later", "offset": 365, "remind": "firm"}]
DUE_TODAY = [{"id": "due", "offset": 0, "remind": "firm"}, {"id": "next-day", "offset": 1, "remind": "firm"}]
# The reconcile's reads: QuickBooks one batch (counts, customers, open credits) and one page of invoices;
# Xero its contacts and one page of open invoices. A safety-net poll: one CDC call / one Invoices call.
RECONCILE = {"quickbooks": Counter({"batch": 1, "query": 1}), "xero": Counter({"Contacts": 1, "Invoices": 1})}
POLL = {"quickbooks": "cdc", "xero": "Invoices"}
OPEN_CREDIT_LISTINGS = {"Overpayments", "Prepayments", "CreditNotes"}


def _data_paths(p: Pipeline) -> Counter[str]:
    return Counter(str(call["path"]).rsplit("/", 1)[1] for call in p.kit.calls() if call["category"] == "data")


def _ledger_due_today(p: Pipeline, provider: str) -> tuple[str, str]:
    """A ledger with one customer and one invoice due on the clock's date; (tenant, customer)."""
    tenant = p.kit.add_company("Rest Co", CURRENCY[provider])
    customer = p.kit.add_customer(tenant, "Payer Ltd", "ap@payer.example")
    today = p.clock.now().date()
    p.kit.add_invoice(tenant, customer, "R-1", Decimal("120.00"), CURRENCY[provider], today - timedelta(days=30), today)
    return tenant, customer


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_idle_incremental_sync_is_one_call(tmp_path: Path, provider: str) -> None:
    with pipeline(provider, tmp_path, rules(NOTHING_DUE), scheduler=SHIPPED_SCHEDULE) as p:
        tenant = p.kit.seed_company("Idle Co", customers=3, invoices=6)
        connection_id = p.connect(tenant)
        p.turn(connection_id)
        p.kit.clear_calls()
        p.clock.advance(timedelta(minutes=5))
        with p.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            adapter = adapter_for(p.services, row)

        report = sync_connection(p.services.store, adapter, connection_id, p.clock.now)

        assert (report.full, report.calls, report.changed) == (False, 1, 0)
        assert _data_paths(p) == Counter({POLL[provider]: 1})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_day_at_rest_is_three_polls_and_one_reconcile(tmp_path: Path, provider: str) -> None:
    with pipeline(provider, tmp_path, rules(NOTHING_DUE), scheduler=SHIPPED_SCHEDULE) as p:
        tenant = p.kit.seed_company("Quiet Co", customers=3, invoices=6)
        connection_id = p.connect(tenant)
        worker = p.worker()
        assert worker.tick().succeeded == [connection_id]  # the first sync (not counted)
        p.kit.clear_calls()

        swept = 0
        for _ in range(24 * 6 + 5):  # a day and 50 minutes, in 10-minute ticks
            p.clock.advance(timedelta(minutes=10))
            swept += len(worker.tick().succeeded)

        assert swept == 4  # at about 6, 12, 18 and 24 hours: the last one is the day's reconcile
        reads = _data_paths(p)
        assert reads == RECONCILE[provider] + Counter({POLL[provider]: 3})
        assert sum(reads.values()) == 5  # issue 13: at most 6 reads a day at rest
        assert not OPEN_CREDIT_LISTINGS & set(reads)  # nothing would go out: no read before acting


def _first_turn_with_credit_waiting(p: Pipeline, provider: str) -> tuple[int, Counter[str]]:
    """A customer whose overpayment covers the invoice due today, connected and turned once: (connection id,
    the turn's reads). The reminder is held for the credit, and nothing reaches the customer."""
    tenant, customer = _ledger_due_today(p, provider)
    p.kit.overpay(tenant, customer, Decimal("150.00"))  # covers the 120.00 due
    connection_id = p.connect(tenant)
    p.kit.clear_calls()
    p.turn(connection_id)
    assert p.sink.received == []
    holds = [action_from_json(a.payload) for a in p.actions(connection_id) if a.kind == ActionKind.HOLD.value]
    assert [h.hold_reason for h in holds] == [HoldReason.UNAPPLIED_CREDIT]
    return connection_id, _data_paths(p)


def test_xero_reads_the_open_credit_before_acting_and_it_holds_the_reminder(tmp_path: Path) -> None:
    with pipeline("xero", tmp_path, rules(DUE_TODAY), scheduler=SHIPPED_SCHEDULE) as p:
        connection_id, reads = _first_turn_with_credit_waiting(p, "xero")
        assert {name: reads[name] for name in OPEN_CREDIT_LISTINGS} == dict.fromkeys(OPEN_CREDIT_LISTINGS, 1)

        p.kit.clear_calls()
        p.clock.advance(timedelta(hours=1))
        p.turn(connection_id)  # read within the day: not again
        assert not OPEN_CREDIT_LISTINGS & set(_data_paths(p))

        p.kit.clear_calls()
        p.clock.advance(timedelta(hours=24))
        p.turn(connection_id)  # a day later the next step would go out: the credit is read again first
        assert {name for name in _data_paths(p) if name in OPEN_CREDIT_LISTINGS} == OPEN_CREDIT_LISTINGS


def test_quickbooks_reconcile_carries_the_open_credit_at_no_extra_call(tmp_path: Path) -> None:
    with pipeline("quickbooks", tmp_path, rules(DUE_TODAY), scheduler=SHIPPED_SCHEDULE) as p:
        _, reads = _first_turn_with_credit_waiting(p, "quickbooks")
        assert reads == RECONCILE["quickbooks"]  # the first sync's batch brought the credit
