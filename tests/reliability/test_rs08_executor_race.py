"""RS-08: two executors race for the same due reminder; a lease left by a SIGKILL is taken over.

- The race: two executors (two lease owners, each with its own database connections) carry out the same
  connection's due reminders at the same moment, on SQLite and on PostgreSQL. Each action is claimed by a
  conditional UPDATE (planned → running under a lease), so exactly one of them sends it; SQLite's writers
  queue on the busy timeout instead of failing with "database is locked". The sender is a counting
  stand-in: what is under test is the claim, not SMTP.
- The takeover: a real `nudge run` is SIGKILLed inside its just-in-time read of the invoice (an emulator
  delay), holding the action's lease; once the lease expires the next `nudge run` takes it over and sends
  the reminder once, to a real SMTP sink.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.executor import ExecutionReport, Executor
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from providers._emulator import Fault
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices
from tests.support.pipeline import rules as rs_rules
from tests.support.workers import (
    actions,
    connect,
    customer_email,
    kill,
    nudge,
    nudge_database,
    organization,
    services_for,
    smtp_sink,
    wait_for,
    write_config,
)

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
CUSTOMERS = 12
RULES = policy_from_dict(
    {"cadences": {"plain": {"time_zone": "UTC", "steps": [{"id": "late", "offset": 3, "remind": "firm"}]}}}
)


class CountingSender:
    """Counts sends per action key; slow enough that both executors are inside the pass together."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.lock = threading.Lock()

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        time.sleep(0.01)
        with self.lock:
            self.sent[action.key] += 1
        return f"<{action.key}@rs08.test>"


def _snapshot(n: int) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        external_id=str(n),
        number=f"INV-{n}",
        customer_external_id=f"c{n}",
        customer_name=f"Customer {n}",
        currency="USD",
        total=Money.of("100.00", "USD"),
        balance=Money.of("100.00", "USD"),
        issue_date=DUE - timedelta(days=30),
        due_date=DUE,
        status=InvoiceStatus.OPEN,
        updated_at=NOW - timedelta(days=20),
        emails=(f"ap{n}@customer.example",),
    )


def _seed(store: Store, invoices: list[InvoiceSnapshot]) -> int:
    return connection_with_invoices(
        store, invoices, first_seen_at=NOW - timedelta(days=20), organization="Race", cadence="plain", time_zone="UTC"
    )


def test_rs08_two_executors_racing_send_each_due_reminder_exactly_once(store: Store) -> None:
    """RS-08: exactly one send per due reminder; no "database is locked" crash (SQLite and PostgreSQL)."""
    invoices = [_snapshot(n) for n in range(CUSTOMERS)]
    cid = _seed(store, invoices)
    assert plan_connection(store, cid, RULES, NOW).planned == CUSTOMERS
    sender = CountingSender()
    barrier = threading.Barrier(2, timeout=30)
    reports: dict[str, ExecutionReport] = {}
    errors: list[BaseException] = []

    def race(owner: str) -> None:
        executor = Executor(store, FakeLedger(invoices), sender, lambda: NOW, owner)
        barrier.wait()
        try:
            reports[owner] = executor.run_due(cid)
        except Exception as exc:  # a "database is locked" StorageError would surface here
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(owner,)) for owner in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(sender.sent.values()) == CUSTOMERS
    assert set(sender.sent.values()) == {1}  # exactly one send per reminder
    done = reports["w1"].done + reports["w2"].done
    assert sorted(done) == sorted(set(done))
    assert len(done) == CUSTOMERS
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(ActionRow)))
    assert {row.state for row in rows} == {"done"}
    assert all(row.attempts == 1 for row in rows)  # nobody claimed an action twice


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs08_a_lease_left_by_sigkill_is_taken_over_and_finished_once(tmp_path: Path, database: str) -> None:
    """RS-08: a lease that expires after a SIGKILL is taken over and finished once."""
    # Every hour of every day is a send hour: the test runs on the wall clock, whatever time CI starts it.
    rules = rs_rules([{"id": "late", "offset": 3, "remind": "firm"}], cadence="plain", catch_up=None)
    with QuickBooksKit() as emulator, smtp_sink() as sink, nudge_database(database, tmp_path) as url:
        today = datetime.now(UTC).date()
        realm = emulator.add_company("Killed Co", "USD")
        customer = emulator.add_customer(realm, "Late Payer", customer_email("Late Payer"))
        due = today - timedelta(days=8)
        emulator.add_invoice(realm, customer, "K-1", Decimal("500.00"), "", due - timedelta(days=30), due)
        config = write_config(tmp_path, url, emulator, sink.port, rules, scheduler={"lease_seconds": 1})
        services = services_for(config)
        try:
            connect(services, emulator, realm, organization(services), "plain")
            fault = Fault("delay", method="GET", path="/invoice/", seconds=30)  # the just-in-time read
            emulator.core.add_fault(fault)
            first = nudge(config, "run")
            wait_for(lambda: fault.times == 0, 60, "the worker inside its just-in-time read")
            time.sleep(0.2)
            kill(first)  # SIGKILL: the action's lease (and the connection's) is left behind
            [held] = actions(services)
            assert held.state == "running"
            assert held.lease_owner != ""
            time.sleep(1.3)  # the 1 s leases expire
            second = nudge(config, "run")
            _, err = second.communicate(timeout=120)
            assert second.returncode == 0, err[-2000:]
            [row] = actions(services)
            assert row.state == "done"
            assert row.lease_owner == ""
            assert row.attempts == 2  # taken over once
            assert sink.message_ids() == [row.external_ref]  # finished once: one email
        finally:
            services.store.dispose()
