"""Worker ticks: leases, isolation of failing connections, backoff, webhook due-now, shutdown."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from connector.config import SchedulerSettings
from connector.errors import AuthError, RateLimited, Transient
from connector.ports import SystemClock
from connector.storage import Store
from connector.storage.tables import Connection
from connector.worker.scheduler import Lease, Worker, run_forever
from tests.support.clock import FakeClock
from tests.support.databases import Database
from tests.support.scheduler import SETTINGS, due_connections

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_failing_connection_backs_off_and_never_stops_the_others(store: Store) -> None:
    ids = due_connections(store, 4, T0)
    clock = FakeClock(T0)
    processed: list[int] = []

    def process(connection_id: int, lease: Lease) -> None:
        processed.append(connection_id)
        if connection_id == ids[0]:
            raise Transient("ledger timed out")
        if connection_id == ids[1]:
            raise RuntimeError("a bug")
        if connection_id == ids[2]:
            raise RateLimited("daily limit", retry_after=3600 * 5, limit="day")

    worker = Worker(store, process, SETTINGS, clock, owner="w1", rng=random.Random(1))
    report = worker.tick()
    assert processed == ids
    assert report.succeeded == [ids[3]]
    assert set(report.failed) == set(ids[:3])
    assert report.failed[ids[1]] == "internal error: RuntimeError"
    with store.unit_of_work() as uow:
        rows = {cid: uow.connections.by_id(cid) for cid in ids}
        assert all(row is not None and row.lease_owner == "" for row in rows.values())
        assert rows[ids[0]].failures == 1
        assert rows[ids[0]].next_run_at == T0 + timedelta(minutes=2)
        assert rows[ids[0]].last_error == "ledger timed out"  # type: ignore[union-attr]
        assert rows[ids[2]].failures == 0
        assert rows[ids[2]].next_run_at == T0 + timedelta(hours=5)
        assert rows[ids[3]].next_run_at == T0 + timedelta(hours=1)  # type: ignore[union-attr]
        kinds = [a.kind for a in uow.activities.for_organization(rows[ids[0]].organization_id)]  # type: ignore[union-attr]
        assert kinds.count("connection.error") == 3

    clock.moment = T0 + timedelta(minutes=3)
    processed.clear()
    worker.tick()
    assert processed == [ids[0], ids[1]]  # only the backed-off ones are due again
    with store.unit_of_work() as uow:
        assert uow.connections.by_id(ids[0]).failures == 2  # type: ignore[union-attr]
        assert uow.connections.by_id(ids[0]).next_run_at == clock.moment + timedelta(minutes=4)  # type: ignore[union-attr]


def test_auth_failure_parks_the_connection_as_needs_reauth(store: Store) -> None:
    [cid] = due_connections(store, 1, T0)

    def process(connection_id: int, lease: Lease) -> None:
        raise AuthError("QuickBooks says the grant is revoked: reconnect")

    Worker(store, process, SETTINGS, FakeClock(T0), owner="w1").tick()
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        assert row.status == "needs_reauth"
        assert "reconnect" in row.last_error
    calls: list[int] = []
    Worker(store, lambda c, lease: calls.append(c), SETTINGS, FakeClock(T0 + timedelta(days=1)), owner="w1").tick()
    assert calls == []


def test_lease_renewal_and_loss(store: Store) -> None:
    [cid] = due_connections(store, 1, T0)
    clock = FakeClock(T0)
    outcomes: list[bool] = []

    def process(connection_id: int, lease: Lease) -> None:
        outcomes.append(lease.renew())
        with store.unit_of_work() as uow:  # another worker takes over (as after an expired lease)
            row = uow.connections.by_id(connection_id)
            assert row is not None
            row.lease_owner = "w2"
            uow.commit()
        outcomes.append(lease.renew())

    Worker(store, process, SETTINGS, clock, owner="w1").tick()
    assert outcomes == [True, False]
    with store.unit_of_work() as uow:
        assert uow.connections.by_id(cid).lease_owner == "w2"  # type: ignore[union-attr]  # w1 never released w2's lease


def test_webhook_marks_due_now_without_delaying(store: Store) -> None:
    ids = due_connections(store, 2, T0)
    with store.unit_of_work() as uow:
        uow.connections.by_id(ids[0]).next_run_at = T0 + timedelta(hours=1)  # type: ignore[union-attr]
        uow.connections.by_id(ids[1]).next_run_at = T0 - timedelta(hours=1)  # type: ignore[union-attr]
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.mark_due("xero", "t0", T0 + timedelta(seconds=10)) == 1
        assert uow.connections.mark_due("xero", "t1", T0 + timedelta(seconds=10)) == 1
        assert uow.connections.mark_due("xero", "unknown", T0 + timedelta(seconds=10)) == 0
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.by_id(ids[0]).next_run_at == T0 + timedelta(seconds=10)  # type: ignore[union-attr]
        assert uow.connections.by_id(ids[1]).next_run_at == T0 - timedelta(hours=1)  # type: ignore[union-attr]


def test_run_forever_ticks_until_stopped_and_releases(store: Store) -> None:
    ids = due_connections(store, 3, T0)
    seen: list[int] = []
    worker: Worker

    def process(connection_id: int, lease: Lease) -> None:
        seen.append(connection_id)
        if len(seen) == 1:
            worker.stop()  # as SIGTERM would: finish this one, release the rest

    worker = Worker(store, process, SETTINGS, SystemClock(), owner="w1")
    thread = threading.Thread(target=run_forever, args=(worker, SETTINGS), kwargs={"install_signals": False})
    thread.start()
    thread.join(10)
    assert not thread.is_alive()  # stop() ends run_forever after the scheduler shut down cleanly
    assert seen == [ids[0]]
    with store.unit_of_work() as uow:
        rows = [uow.connections.by_id(cid) for cid in ids]
        assert all(row is not None and row.lease_owner == "" for row in rows)


def test_concurrent_tick_processes_each_connection_once_within_the_limit(postgres_database: Database) -> None:
    store = postgres_database.store(pool_size=10)
    try:
        store.upgrade()
        ids = due_connections(store, 24, T0)
        lock = threading.Lock()
        in_flight = peak = 0
        seen: list[int] = []
        gate = threading.Barrier(4, timeout=10)

        def process(connection_id: int, lease: Lease) -> None:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
                seen.append(connection_id)
            if len(seen) <= 4:
                gate.wait()  # the first four meet inside process(): they really run at the same time
            with lock:
                in_flight -= 1

        settings = SchedulerSettings(**{**SETTINGS.__dict__, "max_connections_per_tick": 50})
        report = Worker(store, process, settings, FakeClock(T0), owner="w1", concurrency=4).tick()
        assert sorted(seen) == sorted(ids)
        assert sorted(report.succeeded) == sorted(ids)
        assert peak == 4  # never more than the limit at once, and the limit was reached
        with store.unit_of_work() as uow:
            assert all(uow.connections.by_id(cid).lease_owner == "" for cid in ids)  # type: ignore[union-attr]
    finally:
        store.dispose()


def test_a_daily_rate_limit_reschedules_the_connection_at_the_resume_instant_without_backoff(store: Store) -> None:
    """Issue 10 item 17 (RS-21): "daily API limit reached", resumes exactly then, not counted as a failure."""
    [cid] = due_connections(store, 1, T0)
    with store.unit_of_work() as uow:
        uow.connections.by_id(cid).failures = 2  # type: ignore[union-attr]
        uow.commit()
    settings = SchedulerSettings(**{**SETTINGS.__dict__, "jitter_seconds": 120})

    def process(connection_id: int, lease: Lease) -> None:
        raise RateLimited("Xero said: over the day limit", provider="xero", retry_after=66975, limit="day")

    Worker(store, process, settings, FakeClock(T0), owner="w1").tick()
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        assert row.next_run_at == T0 + timedelta(seconds=66975)  # the instant itself: no jitter, no backoff
        assert row.failures == 2  # unchanged
        assert row.lease_owner == ""
        resume = T0 + timedelta(seconds=66975)
        assert row.last_error.startswith(f"Xero daily API limit reached, resumes at {resume:%Y-%m-%d %H:%M} UTC")


def test_a_stop_request_mid_turn_keeps_the_connection_due(store: Store) -> None:
    """Issue 10 item 16 (RS-39): stopped with work left, the connection is released due as before."""
    [cid] = due_connections(store, 1, T0)
    worker: Worker
    seen: list[bool] = []

    def process(connection_id: int, lease: Lease) -> None:
        seen.append(lease.should_stop())
        worker.stop()  # SIGTERM arrives during the turn
        seen.append(lease.should_stop())

    worker = Worker(store, process, SETTINGS, FakeClock(T0), owner="w1")
    worker.tick()
    assert seen == [False, True]
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        assert row.lease_owner == ""
        assert row.next_run_at == T0  # still due: a restarted worker carries on at once


def test_run_forever_gives_up_after_the_shutdown_grace(store: Store) -> None:
    """Issue 10 item 16 (RS-39): the worker exits within the grace even when the action in hand hangs."""
    ids = due_connections(store, 1, T0)
    release = threading.Event()
    worker: Worker

    def process(connection_id: int, lease: Lease) -> None:
        worker.stop()
        release.wait(30)  # a mail server that never answers

    settings = SchedulerSettings(**{**SETTINGS.__dict__, "shutdown_grace_seconds": 1})
    worker = Worker(store, process, settings, SystemClock(), owner="w1")
    finished: list[bool] = []
    thread = threading.Thread(
        target=lambda: finished.append(run_forever(worker, settings, install_signals=False)), daemon=True
    )
    thread.start()
    thread.join(20)
    assert finished == [False]
    release.set()
    for _ in range(200):  # let the abandoned tick end (release its lease) before the store goes away
        with store.unit_of_work() as uow:
            if uow.connections.by_id(ids[0]).lease_owner == "":  # type: ignore[union-attr]
                break
        time.sleep(0.05)


def test_the_worker_prunes_webhook_deliveries_older_than_the_retention(store: Store) -> None:
    """Issue 10 item 18: webhook_deliveries no longer grows without bound (pruned by the worker's tick)."""
    from sqlalchemy import select

    from connector.storage.tables import WebhookDelivery

    with store.unit_of_work() as uow:
        for n, age in enumerate((40, 31, 29, 1)):
            uow.session.add(WebhookDelivery(provider="xero", event_id=f"e{n}", received_at=T0 - timedelta(days=age)))
        uow.commit()
    settings = SchedulerSettings(**{**SETTINGS.__dict__, "webhook_retention_days": 30})
    Worker(store, lambda cid, lease: None, settings, FakeClock(T0), owner="w1").tick()
    with store.unit_of_work() as uow:
        assert sorted(uow.session.scalars(select(WebhookDelivery.event_id))) == ["e2", "e3"]


def test_a_database_outage_in_a_turn_is_retried_at_the_next_tick_without_backoff(store: Store) -> None:
    """RS-38: the database being away is not the connection's failure: no backoff, retried a tick later."""
    from connector.errors import StorageError

    [cid] = due_connections(store, 1, T0)

    def process(connection_id: int, lease: Lease) -> None:
        raise StorageError("database unavailable: database is locked")

    Worker(store, process, SETTINGS, FakeClock(T0), owner="w1").tick()
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        assert row.failures == 0
        assert row.next_run_at == T0 + timedelta(seconds=SETTINGS.tick_seconds)
        assert row.last_error.startswith("the database was unavailable; retrying")


def test_next_due_is_the_earliest_free_active_connection_or_now_when_one_is_due(store: Store) -> None:
    ids = due_connections(store, 4, T0 + timedelta(hours=6))
    with store.unit_of_work() as uow:
        assert uow.connections.next_due_at(T0) == T0 + timedelta(hours=6)
        held, parked, soon, _ = (uow.connections.by_id(cid) for cid in ids)
        assert held is not None
        assert parked is not None
        assert soon is not None
        held.next_run_at, held.lease_owner, held.lease_until = T0, "w2", T0 + timedelta(minutes=10)
        parked.next_run_at, parked.status = T0, "needs_reauth"
        soon.next_run_at = T0 + timedelta(seconds=30)  # a webhook's connection, after the debounce
        uow.commit()
    with store.unit_of_work() as uow:
        # Another worker's lease and a connection that needs reconnecting are not this worker's to wake for.
        assert uow.connections.next_due_at(T0) == T0 + timedelta(seconds=30)
        assert uow.connections.next_due_at(T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=1)
        uow.connections.by_id(ids[3]).next_run_at = None  # type: ignore[union-attr]  # never scheduled: due
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.next_due_at(T0) == T0
        uow.session.execute(update(Connection).values(status="disconnected"))
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.next_due_at(T0) is None


def _run_until(worker: Worker, settings: SchedulerSettings, done: threading.Event) -> bool:
    """Run `run_forever` in a thread until `done` is set (or 20 s pass); whether it was."""
    thread = threading.Thread(target=run_forever, args=(worker, settings), kwargs={"install_signals": False})
    thread.start()
    try:
        return done.wait(20)
    finally:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()


def test_run_forever_wakes_for_a_connection_due_before_the_next_tick(store: Store) -> None:
    """A webhook's connection, due after its debounce, is processed then, not at the next tick an hour away."""
    [cid] = due_connections(store, 1, datetime.now(UTC) + timedelta(seconds=1.5))  # not due at the first tick
    processed: list[int] = []
    done = threading.Event()

    def process(connection_id: int, lease: Lease) -> None:
        processed.append(connection_id)
        done.set()

    settings = SchedulerSettings(**{**SETTINGS.__dict__, "tick_seconds": 3600})
    assert _run_until(Worker(store, process, settings, SystemClock(), owner="w1"), settings, done)
    assert processed == [cid]


def test_run_forever_drains_a_backlog_larger_than_one_tick_without_waiting_for_the_next(store: Store) -> None:
    ids = due_connections(store, 5, datetime.now(UTC) - timedelta(minutes=1))
    processed: list[int] = []
    done = threading.Event()

    def process(connection_id: int, lease: Lease) -> None:
        processed.append(connection_id)
        if len(processed) == len(ids):
            done.set()

    settings = SchedulerSettings(**{**SETTINGS.__dict__, "tick_seconds": 3600, "max_connections_per_tick": 2})
    assert _run_until(Worker(store, process, settings, SystemClock(), owner="w1"), settings, done)
    assert sorted(processed) == sorted(ids)  # three ticks of at most two, each once
