"""RS-23: 5xx, connection reset and read timeout mid-pagination, on both providers' real emulators.

Each sync runs the real adapter (real HTTP, the real SDK) into a real SQLite store through
`sync_connection`; the emulator's fault plan hits the second page of invoices (the first page has
been stored by then). Backoff waits are short: QuickBooks `retry_base_s` 0.02 s (settings), Xero's
fixed 0.25 s base; timeouts are shortened to 1 s (QuickBooks `timeout_s`; Xero has no setting for its
API timeout, so the test lowers the client module's constant).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.errors import ProviderError
from connector.storage.tables import Invoice, SyncCursor, SyncRun
from connector.sync.invoices import sync_connection
from connector.worker.turn import adapter_for
from providers._emulator import Fault
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import wait_for

INVOICES = 1500  # two pages at both providers' page size of 1000
RULES = rules([{"id": "later", "offset": 300, "remind": "firm"}])
PAGE = {"quickbooks": ("POST", "/query"), "xero": ("GET", "/Invoices")}  # QuickBooks queries are POSTs
KINDS = {
    "5xx": {"kind": "status", "status": 503},
    "connection_reset": {"kind": "disconnect"},
    "read_timeout": {"kind": "delay", "seconds": 2},  # the clients' read timeout is 1 s here
}


def _arm(world: Pipeline, fault: str, call: tuple[str, str], times: int) -> None:
    """`fault` on the second matching call (the second page) and the `times - 1` calls after it."""
    method, path = call
    world.kit.add_fault(Fault("delay", method=method, path=path, seconds=0, times=1))  # the first page passes
    world.kit.add_fault(Fault(method=method, path=path, times=times, **KINDS[fault]))


class Recording:
    """An adapter wrapper remembering every invoice id its pages yielded (duplicates included)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.yielded: list[str] = []

    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Any]:
        for page in self.adapter.changed_invoices(cursor):
            self.yielded += [invoice.external_id for invoice in page.invoices]
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    provider = request.param
    monkeypatch.setattr("providers.xero.client.API_TIMEOUT", (5, 1))
    options = {"timeout_s": 1} if provider == "quickbooks" else {}
    with pipeline(provider, tmp_path, RULES, start=datetime.now(UTC), provider_options=options) as built:
        yield built


def _seeded(world: Pipeline) -> tuple[str, int, list[str]]:
    tenant = world.kit.add_company("Many Pages Ltd")
    invoices = world.kit.seed_invoices(tenant, INVOICES)
    return tenant, world.connect(tenant), invoices


def _sync(world: Pipeline, connection: int) -> Recording:
    with world.services.store.unit_of_work() as uow:
        row = uow.connections.by_id(connection)
        assert row is not None
        recording = Recording(adapter_for(world.services, row))
    sync_connection(world.services.store, recording, connection, world.clock.now)  # type: ignore[arg-type]
    return recording


def _stored(world: Pipeline, connection: int) -> dict[str, Decimal]:
    with world.services.store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(Invoice.external_id, Invoice.balance).where(Invoice.connection_id == connection)
        ).all()
        count = uow.session.scalar(select(func.count()).where(Invoice.connection_id == connection))
    assert count == len({ident for ident, _ in rows})  # never a duplicate row
    return {ident: balance for ident, balance in rows}


def _page_calls(world: Pipeline, tenant: str) -> int:
    method, path = PAGE[world.kit.provider]
    return sum(1 for call in world.kit.core.calls("data", tenant=tenant) if call.method == method and path in call.path)


def _cursor(world: Pipeline, connection: int) -> SyncCursor | None:
    with world.services.store.unit_of_work() as uow:
        row = uow.session.get(SyncCursor, (connection, "invoice"))
        uow.session.expunge_all()
        return row


@pytest.mark.parametrize("world", ["quickbooks", "xero"], indirect=True)
@pytest.mark.parametrize("fault", list(KINDS))
def test_rs23_a_fault_on_the_second_page_is_retried_and_the_sync_finishes(world: Pipeline, fault: str) -> None:
    """Expected: retry with exponential back-off and jitter; the sync finishes with every invoice exactly once."""
    tenant, connection, invoices = _seeded(world)
    world.kit.core.clear_calls()
    _arm(world, fault, PAGE[world.kit.provider], 1)

    recording = _sync(world, connection)

    assert sorted(recording.yielded) == sorted(invoices)  # each invoice yielded once
    assert sorted(_stored(world, connection)) == sorted(invoices)
    # Two pages, the second one asked twice (a timed-out call is logged when the emulator has served it).
    wait_for(lambda: _page_calls(world, tenant) >= 3, 10, "the retried call in the emulator's log")
    assert _page_calls(world, tenant) == 3
    cursor = _cursor(world, connection)
    assert cursor is not None
    assert cursor.full_reconciled_at is not None


@pytest.mark.parametrize("world", ["quickbooks", "xero"], indirect=True)
@pytest.mark.parametrize("fault", list(KINDS))
def test_rs23_a_lasting_fault_mid_pagination_keeps_the_watermark_and_the_next_sync_completes(
    world: Pipeline, fault: str
) -> None:
    """Expected: the sync resumes from the last committed page; the watermark does not advance past unread data.

    The first sync is a full reconcile: its first page is stored, but the reconcile is not marked done
    and no cursor is saved from it, so the next sync reads everything again (design: an interrupted
    reconcile starts over; upserts make the re-read harmless) and ends with every invoice once.
    """
    _, connection, invoices = _seeded(world)
    _arm(world, fault, PAGE[world.kit.provider], 10)

    with pytest.raises(ProviderError):
        _sync(world, connection)

    assert len(_stored(world, connection)) == 1000  # the first page committed, the second never read
    cursor = _cursor(world, connection)
    assert cursor is None or cursor.full_reconciled_at is None  # not done: the next sync is full again
    with world.services.store.unit_of_work() as uow:
        assert [run.outcome for run in uow.session.scalars(select(SyncRun))] == ["failed"]

    world.kit.clear_faults()
    world.clock.advance(timedelta(minutes=5))
    _sync(world, connection)
    assert sorted(_stored(world, connection)) == sorted(invoices)
    cursor = _cursor(world, connection)
    assert cursor is not None
    assert cursor.full_reconciled_at is not None


@pytest.mark.parametrize("world", ["quickbooks", "xero"], indirect=True)
def test_rs23_an_incremental_sync_broken_mid_pagination_resumes_without_losing_changes(world: Pipeline) -> None:
    """Expected: the sync resumes from the last committed page; the watermark does not advance past unread data."""
    tenant, connection, invoices = _seeded(world)
    _sync(world, connection)  # the full reconcile
    world.clock.advance(timedelta(minutes=5))
    for ident in invoices:  # every invoice changes: the incremental sync has two pages (or CDC calls)
        world.kit.pay(tenant, ident, Decimal("1.00"))
    expected = {ident: world.kit.balance(tenant, ident) for ident in invoices}
    cursor_before = _cursor(world, connection)
    assert cursor_before is not None
    changes = PAGE[world.kit.provider] if world.kit.provider == "xero" else ("GET", "/cdc")
    _arm(world, "5xx", changes, 10)

    with pytest.raises(ProviderError):
        _sync(world, connection)

    stored = _stored(world, connection)
    updated = {ident for ident in invoices if stored[ident] == expected[ident]}
    assert 0 < len(updated) < INVOICES  # one page committed, the rest unread
    world.kit.clear_faults()
    world.clock.advance(timedelta(minutes=5))
    resumed = _sync(world, connection)

    assert _stored(world, connection) == expected  # nothing unread was skipped by the stored watermark
    assert set(invoices) - updated <= set(resumed.yielded)  # every unread change was read
    # Resumed from the stored watermark, not from the start: at most the boundary instant's changes again
    # (the cursor is inclusive there; the upserts make the re-read harmless).
    assert len(set(resumed.yielded)) < INVOICES
