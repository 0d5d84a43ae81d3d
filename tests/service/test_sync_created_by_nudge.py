"""sync_connection stores Nudge's marker (`InvoiceSnapshot.created_by_nudge`) on insert and on every update."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connector.storage import Store
from connector.storage.tables import Invoice
from connector.sync.invoices import sync_connection
from tests.service.test_sync import T0, snapshot
from tests.support.ledger import FakeLedger


def _connection(store: Store) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("Second organization")
        connection_id = uow.connections.add(org.id, "xero", "shared-tenant", "Shared books").id
        uow.commit()
        return connection_id


def _flags(store: Store, connection_id: int) -> dict[str, bool]:
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(select(Invoice).where(Invoice.connection_id == connection_id))
        return {row.external_id: row.created_by_nudge for row in rows}


def test_marker_stored_on_insert_and_follows_the_ledger_on_update(store: Store) -> None:
    cid = _connection(store)
    fee = replace(snapshot(1), number="LF-1001", created_by_nudge=True)  # another Nudge's fee invoice
    ledger = FakeLedger([fee, snapshot(2)])
    sync_connection(store, ledger, cid, lambda: T0)
    assert _flags(store, cid) == {"1": True, "2": False}

    later = T0 + timedelta(hours=1)
    ledger.changes = [
        replace(fee, balance=fee.balance * 0, status=fee.status, updated_at=later),  # the fee is paid: still Nudge's
        replace(snapshot(2), created_by_nudge=True, updated_at=later),  # the marker appears on an update
    ]
    sync_connection(store, ledger, cid, lambda: later + timedelta(minutes=1))
    assert _flags(store, cid) == {"1": True, "2": True}

    latest = later + timedelta(hours=1)
    ledger.changes = [replace(snapshot(2), created_by_nudge=False, updated_at=latest)]  # a user removed it
    sync_connection(store, ledger, cid, lambda: datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    assert _flags(store, cid) == {"1": True, "2": False}
