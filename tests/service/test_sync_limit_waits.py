"""Waits for a provider's rate limit land in the sync's `sync_runs` row, where GET /metrics reads them.

The ledger is the in-memory fake, but every page it hands over goes through a real TenantRateLimiter (one call a
minute, an injected sleep that returns at once): each page after the first waits out the window, and the limiter
counts it. The sync records the waits it saw (ok or failed); `add_limit_waits` adds those of the rest of the turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from connector.errors import Transient
from connector.ports import Page
from connector.ratelimit.tenant import CountsLimitWaits, LimitWaits, TenantRateLimiter, read_limit_waits
from connector.storage import Store
from connector.storage.tables import SyncRun
from connector.sync.invoices import add_limit_waits, sync_connection
from tests.support.domain import invoice
from tests.support.ledger import FakeLedger

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class LimitedLedger(FakeLedger):
    """The fake ledger behind a one-call-a-minute limiter: every page is one call through it."""

    def __init__(self, count: int) -> None:
        super().__init__([invoice(str(n)) for n in range(count)], page_size=1)
        self.slept: list[float] = []
        self.clock = 0.0  # the limiter's monotonic clock, moved on by each (instant) sleep
        self.limiter = TenantRateLimiter(per_minute=1, concurrent=1, sleep=self._sleep, monotonic=lambda: self.clock)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock += seconds

    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        for page in super().changed_invoices(cursor, first_sync=first_sync):
            with self.limiter.call():
                yield page

    def limit_waits(self) -> LimitWaits:
        return self.limiter.limit_waits()


def _connection(store: Store) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connection_id = uow.connections.add(org.id, "xero", "t-1", "Books").id
        uow.commit()
        return connection_id


def _run(store: Store, run_id: int) -> SyncRun:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(SyncRun).where(SyncRun.id == run_id)).one()
        uow.session.expunge(row)
        return row


def test_the_waits_of_a_sync_are_recorded_on_its_run(store: Store) -> None:
    connection_id = _connection(store)
    ledger = LimitedLedger(3)
    assert isinstance(ledger, CountsLimitWaits)
    ledger.limiter.admit()  # someone else's call this minute: the sync's first page waits too
    report = sync_connection(store, ledger, connection_id, lambda: T0)
    assert report.pages == 3
    assert report.limit_waits == LimitWaits(3, 180.0)
    assert ledger.slept == [60.0, 60.0, 60.0]
    run = _run(store, report.run_id)
    assert (run.outcome, run.limit_waits, run.limit_wait_seconds) == ("ok", 3, 180.0)

    # The next sync (one empty page: one call) counts only its own wait, not the limiter's total since it was made.
    second = sync_connection(store, ledger, connection_id, lambda: T0)
    assert second.limit_waits == LimitWaits(1, 60.0)
    assert ledger.limiter.limit_waits() == LimitWaits(4, 240.0)
    assert (_run(store, second.run_id).limit_waits, _run(store, second.run_id).limit_wait_seconds) == (1, 60.0)


def test_a_failed_sync_records_the_waits_it_had_before_failing(store: Store) -> None:
    connection_id = _connection(store)
    ledger = LimitedLedger(4)
    ledger.fail_after_pages = 2
    with pytest.raises(Transient):
        sync_connection(store, ledger, connection_id, lambda: T0)
    with store.unit_of_work() as uow:
        run = uow.session.scalars(select(SyncRun)).one()
    assert (run.outcome, run.limit_waits, run.limit_wait_seconds) == ("failed", 1, 60.0)


def test_the_rest_of_the_turn_adds_its_waits_to_the_same_run(store: Store) -> None:
    connection_id = _connection(store)
    ledger = LimitedLedger(1)
    report = sync_connection(store, ledger, connection_id, lambda: T0)
    assert report.limit_waits == LimitWaits(0, 0.0)
    after_sync = read_limit_waits(ledger)
    for _ in range(2):  # two calls of planning and execution, each waiting out the minute
        with ledger.limiter.call():
            pass
    add_limit_waits(store, report.run_id, read_limit_waits(ledger).since(after_sync))
    add_limit_waits(store, report.run_id, LimitWaits())  # nothing to add: the row is left alone
    run = _run(store, report.run_id)
    assert (run.limit_waits, run.limit_wait_seconds) == (2, 120.0)


def test_an_adapter_that_counts_nothing_records_zero(store: Store) -> None:
    connection_id = _connection(store)
    plain = FakeLedger([invoice("1")])
    assert not isinstance(plain, CountsLimitWaits)
    assert read_limit_waits(plain) == LimitWaits()
    report = sync_connection(store, plain, connection_id, lambda: T0)
    run = _run(store, report.run_id)
    assert (run.limit_waits, run.limit_wait_seconds) == (0, 0.0)


def test_only_waits_for_the_limits_are_counted() -> None:
    slept: list[float] = []
    limiter = TenantRateLimiter(per_minute=0, concurrent=1, sleep=slept.append)
    limiter.pause(2.0, limit=False)  # a back-off after a failure
    limiter.record_wait(1.5)  # a wait the caller sleeps itself (QuickBooks' Retry-After)
    limiter.pause(3.0)
    assert slept == [2.0, 3.0]
    assert limiter.limit_waits() == LimitWaits(2, 4.5)
    assert LimitWaits(5, 9.0).since(LimitWaits(2, 4.5)) == LimitWaits(3, 4.5)
