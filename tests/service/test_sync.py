"""sync_connection against an in-memory ledger: pages, cursors, closing, quarantine, resume."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import Transient
from connector.ports import Quarantined
from connector.storage import Store
from connector.storage.tables import Action, Activity, Invoice, SyncCursor, SyncRun
from connector.sync.invoices import sync_connection
from tests.support.ledger import FakeLedger

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def snapshot(n: int, *, balance: str = "100.00", status: str = "open", at: datetime = T0) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        external_id=str(n),
        number=f"INV-{n}",
        customer_external_id=f"c{n % 3}",
        customer_name=f"Customer {n % 3}",
        currency="USD",
        total=Money.of("100.00", "USD"),
        balance=Money.of(balance, "USD"),
        issue_date=date(2026, 10, 1),
        due_date=date(2026, 10, 31),
        status=InvoiceStatus(status),
        updated_at=at,
        emails=(f"c{n % 3}@example.com",),
    )


def _connection(store: Store) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connection_id = uow.connections.add(org.id, "quickbooks", "1", "Books").id
        uow.commit()
        return connection_id


def _statuses(store: Store) -> dict[str, tuple[str, Decimal]]:
    with store.unit_of_work() as uow:
        return {row.external_id: (row.status, row.balance) for row in uow.session.scalars(select(Invoice))}


def test_full_then_incremental_sync(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(n) for n in range(5)])
    report = sync_connection(store, ledger, cid, lambda: T0)
    assert (report.full, report.pages, report.changed) == (True, 3, 5)
    assert set(_statuses(store)) == {"0", "1", "2", "3", "4"}

    ledger.changes = [snapshot(1, balance="40.00", at=T0 + timedelta(hours=1)), snapshot(7, at=T0 + timedelta(hours=1))]
    report = sync_connection(store, ledger, cid, lambda: T0 + timedelta(hours=2))
    assert report.full is False
    assert report.changed == 2
    assert ledger.cursors[-1] == "cursor-1-4"  # resumed from the last page's cursor
    assert _statuses(store)["1"] == ("open", Decimal("40.0000"))
    with store.unit_of_work() as uow:
        runs = uow.session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        assert [(r.outcome, r.changes) for r in runs] == [("ok", 5), ("ok", 2)]


def test_paid_invoice_cancels_its_pending_actions(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(1), snapshot(2)])
    sync_connection(store, ledger, cid, lambda: T0)
    with store.unit_of_work() as uow:
        for key, invoice, state in (("k1", "1", "planned"), ("k2", "1", "done"), ("k3", "2", "planned")):
            uow.session.add(
                Action(
                    key=key, connection_id=cid, kind="remind", invoice_external_id=invoice, state=state, scheduled_at=T0
                )
            )
        uow.commit()
    ledger.changes = [snapshot(1, balance="0", status="paid", at=T0 + timedelta(hours=1))]
    report = sync_connection(store, ledger, cid, lambda: T0 + timedelta(hours=1))
    assert (report.closed, report.cancelled_actions) == (1, 1)
    with store.unit_of_work() as uow:
        states = {a.key: a.state for a in uow.session.scalars(select(Action))}
    assert states == {"k1": "cancelled", "k2": "done", "k3": "planned"}


def test_interrupted_sync_keeps_stored_pages_and_resumes(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(n) for n in range(6)])
    ledger.fail_after_pages = 1
    with pytest.raises(Transient):
        sync_connection(store, ledger, cid, lambda: T0)
    assert set(_statuses(store)) == {"0", "1"}  # the first page committed with its cursor
    with store.unit_of_work() as uow:
        assert uow.session.get(SyncCursor, (cid, "invoice")).cursor == "cursor-1-0"  # type: ignore[union-attr]
        assert uow.session.scalars(select(SyncRun)).one().outcome == "failed"
    ledger.fail_after_pages = None
    report = sync_connection(store, ledger, cid, lambda: T0 + timedelta(minutes=5))
    assert report.full is True  # the full reconcile never finished, so it runs again
    assert set(_statuses(store)) == {str(n) for n in range(6)}


def test_older_copy_never_overwrites_newer(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(1, balance="10.00", at=T0 + timedelta(hours=3))])
    sync_connection(store, ledger, cid, lambda: T0)
    ledger.changes = [snapshot(1, balance="99.00", at=T0)]
    sync_connection(store, ledger, cid, lambda: T0 + timedelta(hours=4))
    assert _statuses(store)["1"] == ("open", Decimal("10.0000"))


def test_full_reconcile_rereads_invoices_that_vanished_from_the_open_list(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(1), snapshot(2), snapshot(3)])
    sync_connection(store, ledger, cid, lambda: T0)
    ledger.invoices["2"] = snapshot(2, balance="0", status="paid", at=T0 + timedelta(hours=1))  # webhook missed
    del ledger.invoices["3"]  # deleted in the ledger
    report = sync_connection(store, ledger, cid, lambda: T0 + timedelta(days=2))
    assert report.full is True
    assert report.closed == 2
    statuses = _statuses(store)
    assert statuses["2"][0] == "paid"
    assert statuses["3"][0] == "deleted"
    assert statuses["1"][0] == "open"


def test_quarantined_records_are_logged_and_the_rest_commits(store: Store) -> None:
    cid = _connection(store)
    ledger = FakeLedger([snapshot(1)], page_size=5)
    ledger.quarantine = [Quarantined("666", "DueDate", "not a date: '2026-13-45'")]
    report = sync_connection(store, ledger, cid, lambda: T0)
    assert report.quarantined == 1
    assert set(_statuses(store)) == {"1"}
    with store.unit_of_work() as uow:
        activity = uow.session.scalars(select(Activity).where(Activity.kind == "sync.quarantined")).one()
        assert activity.subject == "666"
        assert activity.detail["field"] == "DueDate"
