"""RS-26 — page boundaries: exactly 1000 and 1001 open QuickBooks invoices, 100 and 101 (and the adapter's own
1000/1001 page size) open Xero invoices, and a QuickBooks CDC answer at its 1,000-object cap.

Each sync runs the real adapter over the emulator (real HTTP, the real SDK) into a real store (SQLite and
PostgreSQL); every invoice must be stored, and yielded by the adapter, exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.ports import AccountingAdapter, Page, ProviderSettings
from connector.storage import Store
from connector.storage.tables import Invoice
from connector.sync.invoices import sync_connection
from providers.quickbooks.emulator import EmulatorHandle
from providers.xero.adapter import XeroAdapter
from providers.xero.emulator.kit import XeroKit
from providers.xero.oauth import LocalTokenSource, tokens_from_response
from tests.support.quickbooks import Company, emulator_settings


class Recording:
    """An adapter wrapper remembering every invoice id its pages yielded (duplicates included)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.yielded: list[str] = []

    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        for page in self.adapter.changed_invoices(cursor):
            self.yielded += [invoice.external_id for invoice in page.invoices]
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)


def _now() -> datetime:
    return datetime.now(UTC)


def _connection(store: Store, provider: str, tenant: str) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("RS-26")
        connection_id = uow.connections.add(org.id, provider, tenant, "Books").id
        uow.commit()
        return connection_id


def _stored(store: Store, connection_id: int) -> tuple[int, int]:
    with store.unit_of_work() as uow:
        rows = uow.session.scalar(select(func.count()).where(Invoice.connection_id == connection_id))
        distinct = uow.session.scalar(
            select(func.count(func.distinct(Invoice.external_id))).where(Invoice.connection_id == connection_id)
        )
        return int(rows or 0), int(distinct or 0)


def _sync(store: Store, adapter: Any, connection_id: int) -> Recording:
    recording = Recording(adapter)
    sync_connection(store, recording, connection_id, _now)  # type: ignore[arg-type]
    return recording


@pytest.fixture
def settings(qbo: EmulatorHandle) -> ProviderSettings:
    return emulator_settings(qbo, retry_base_s=0.01, max_retry_after_s=2, timeout_s=20)


@pytest.mark.parametrize("count", [1000, 1001])
def test_rs26_quickbooks_full_sync_at_the_page_boundary(
    store: Store, qbo: EmulatorHandle, settings: ProviderSettings, count: int
) -> None:
    """Every invoice synced exactly once; none missed or duplicated (1000 and 1001 open QBO invoices)."""
    company = Company(qbo, settings)
    company.seed(customers=3, invoices=count)
    connection_id = _connection(store, "quickbooks", company.realm)
    recording = _sync(store, company.adapter(), connection_id)
    assert len(recording.yielded) == count
    assert len(set(recording.yielded)) == count
    assert _stored(store, connection_id) == (count, count)


def test_rs26_quickbooks_cdc_at_its_1000_object_cap(
    store: Store, qbo: EmulatorHandle, settings: ProviderSettings
) -> None:
    """CDC returning its 1,000-object cap → every invoice synced exactly once; none missed or duplicated.

    1,500 invoices change one second apart, then a customer changes: the first CDC answer holds the oldest
    1,000 invoices and the customer. The invoices continue from their own newest change, not the customer's.
    """
    clock = qbo.core.clock
    clock.set(_now() - timedelta(hours=2), frozen=True)
    try:
        company = Company(qbo, settings)
        customer = company.customer("Cap Co", "ap@cap.example")
        connection_id = _connection(store, "quickbooks", company.realm)
        first = _sync(store, company.adapter(), connection_id)  # full reconcile: nothing open yet
        assert first.yielded == []
        for _ in range(1500):
            clock.advance(timedelta(seconds=1))
            company.invoice(customer, "10.00")
        clock.advance(timedelta(seconds=1))
        qbo.store.update(
            company.realm,
            "Customer",
            {
                "Id": customer,
                "SyncToken": qbo.store.read(company.realm, "Customer", customer)["SyncToken"],
                "sparse": True,
                "CompanyName": "Cap Co (renamed)",
            },
        )
        before = len(qbo.core.calls("data", company.realm))
        second = _sync(store, company.adapter(), connection_id)
        cdc_calls = [c for c in qbo.core.calls("data", company.realm)[before:] if c.path.endswith("/cdc")]
    finally:
        clock.set(_now())
    assert len(second.yielded) == 1500
    assert len(set(second.yielded)) == 1500
    assert _stored(store, connection_id) == (1500, 1500)
    assert len(cdc_calls) == 2  # the capped answer, then the invoices' own continuation


@pytest.fixture(scope="module")
def xero() -> Iterator[XeroKit]:
    with XeroKit(rate_limits=False) as kit:
        yield kit


@pytest.mark.parametrize("count", [100, 101, 1000, 1001])
def test_rs26_xero_full_sync_at_page_boundaries(store: Store, xero: XeroKit, count: int) -> None:
    """Every invoice synced exactly once; none missed or duplicated (100/101 as catalogued, 1000/1001 at the
    adapter's pageSize of 1000, docs/provider-api-facts.md §2.2)."""
    settings = xero.settings("http://127.0.0.1:5000/oauth/xero/callback", retry_base_s=0.01)
    tenant = xero.add_company(f"Boundary {count}")
    xero.seed_invoices(tenant, count)
    tokens = LocalTokenSource(settings, tokens_from_response(xero.grant(tenant), _now()))
    adapter: AccountingAdapter = XeroAdapter(tenant, tokens, settings)
    connection_id = _connection(store, "xero", tenant)
    recording = _sync(store, adapter, connection_id)
    assert len(recording.yielded) == count
    assert len(set(recording.yielded)) == count
    assert _stored(store, connection_id) == (count, count)
