"""The worker's heartbeat: claim due connections under a lease, process each, release, reschedule.

`Worker.tick()` is one pass (what `nudge run` does once and APScheduler repeats in `nudge worker`).
Any number of workers may share one PostgreSQL: claims use `FOR UPDATE SKIP LOCKED` and leases, so
no connection is processed by two workers at once. A failing connection records its error and
backs off exponentially; it never stops the others. Times are UTC instants.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from sqlalchemy import delete, update

from connector.config import SchedulerSettings
from connector.domain.model import ConnectionStatus
from connector.errors import AuthError, NudgeError, ProviderDisconnected, RateLimited, StorageError
from connector.ports import Clock
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, WebhookDelivery

log = logging.getLogger(__name__)
PRUNE_EVERY = timedelta(hours=1)
WAKE_GAP = timedelta(seconds=1)  # the least time between an early wake and the tick before it


class Lease:
    """A worker's hold on one connection; `renew()` between long stages keeps it, `should_stop()` asks to end early."""

    def __init__(
        self,
        store: Store,
        connection_id: int,
        owner: str,
        clock: Clock,
        length: timedelta,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.connection_id = connection_id
        self.owner = owner
        self.clock = clock
        self.length = length
        self._stopping = stopping

    def should_stop(self) -> bool:
        """True once the worker was asked to shut down: finish the step in hand, start nothing new."""
        return self._stopping()

    def renew(self) -> bool:
        """Extend the lease; False when it was lost (another worker took over after expiry)."""
        with self.store.unit_of_work() as uow:
            result = uow.session.execute(
                update(Connection)
                .where(Connection.id == self.connection_id, Connection.lease_owner == self.owner)
                .values(lease_until=self.clock.now() + self.length)
                .execution_options(synchronize_session=False)
            )
            uow.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]


ProcessConnection = Callable[[int, Lease], None]


@dataclass
class PeriodicJob:
    """Work a worker does besides its connections, at most once per `every` (e.g. polling the reply mailbox).
    Run at the start of a tick; whatever it raises is logged and the tick goes on."""

    name: str
    every: timedelta
    run: Callable[[], object]
    last_run: datetime | None = None


@dataclass
class TickReport:
    """What one tick did."""

    claimed: list[int] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def default_owner() -> str:
    """A worker id unique across machines and processes."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Claims and processes due connections; one per process."""

    def __init__(
        self,
        store: Store,
        process: ProcessConnection,
        settings: SchedulerSettings,
        clock: Clock,
        owner: str | None = None,
        rng: random.Random | None = None,
        concurrency: int = 1,
        periodic: Sequence[PeriodicJob] = (),
    ) -> None:
        self.store = store
        self.periodic = list(periodic)
        self.process = process
        self.settings = settings
        self.clock = clock
        self.owner = owner or default_owner()
        self.rng = rng or random.Random()
        self.lease_length = timedelta(seconds=settings.lease_seconds)
        self.concurrency = max(1, concurrency)
        self._stopping = threading.Event()
        self._report_lock = threading.Lock()
        self._pruned_at: datetime | None = None

    def stop(self) -> None:
        """Ask the current tick to finish the connection in hand and release the rest."""
        self._stopping.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until `stop()` is called (or `timeout` passes); True when stopped."""
        return self._stopping.wait(timeout)

    @property
    def stopping(self) -> bool:
        """True once `stop()` has been called."""
        return self._stopping.is_set()

    def tick(self, only: list[int] | None = None) -> TickReport:
        """Claim due connections (or just `only`), process each, release each with its next run."""
        report = TickReport()
        self.prune()
        self.run_periodic()
        with self.store.unit_of_work() as uow:
            if only is not None:
                for connection_id in only:  # `nudge run --connection`: make it due now first
                    connection = uow.connections.by_id(connection_id)
                    if connection is not None and connection.next_run_at and connection.next_run_at > self.clock.now():
                        connection.next_run_at = self.clock.now()
                uow.flush()
            claimed = uow.connections.claim_due(
                self.owner, self.clock.now(), self.lease_length, self.settings.max_connections_per_tick
            )
            uow.commit()
        if only is not None:
            leftover = [cid for cid in claimed if cid not in only]
            claimed = [cid for cid in claimed if cid in only]
            for cid in leftover:
                self._release(cid, None, keep_schedule=True)
        report.claimed = claimed
        if self.concurrency == 1 or len(claimed) <= 1:
            for connection_id in claimed:
                self._run_or_release(connection_id, report)
            return report
        # Provider calls wait on the network most of the time: a few threads keep one process busy.
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="nudge-conn") as pool:
            for future in [pool.submit(self._run_or_release, cid, report) for cid in claimed]:
                future.result()
        return report

    def next_due(self) -> datetime | None:
        """When the next connection nobody holds falls due (now if one is due already); None if none is,
        or if the database cannot say (the regular tick then carries on)."""
        try:
            with self.store.unit_of_work() as uow:
                return uow.connections.next_due_at(self.clock.now())
        except StorageError:
            return None

    def run_periodic(self) -> None:
        """Run each periodic job that is due (never stopping the tick for one that fails)."""
        for job in self.periodic:
            now = self.clock.now()
            if self.stopping or (job.last_run is not None and now - job.last_run < job.every):
                continue
            job.last_run = now
            try:
                job.run()
            except Exception:  # a job's bug must not stop the worker; it runs again when next due
                log.exception("periodic job %s failed; it runs again when next due", job.name)

    def prune(self) -> int:
        """Delete webhook deliveries older than `webhook_retention_days` (at most once an hour); how many."""
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return 0
        cutoff = now - timedelta(days=self.settings.webhook_retention_days)
        try:
            with self.store.unit_of_work() as uow:
                pruned = uow.session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff))
                uow.commit()
        except StorageError:
            log.warning("could not prune old webhook deliveries; the next tick tries again")
            return 0
        self._pruned_at = now
        return int(pruned.rowcount)  # type: ignore[attr-defined]

    def _run_or_release(self, connection_id: int, report: TickReport) -> None:
        if self.stopping:  # shutting down: hand the connection back untouched, due as before
            self._release(connection_id, None, keep_schedule=True)
            return
        self._run_one(connection_id, report)

    def _run_one(self, connection_id: int, report: TickReport) -> None:
        lease = Lease(
            self.store, connection_id, self.owner, self.clock, self.lease_length, stopping=lambda: self.stopping
        )
        try:
            self.process(connection_id, lease)
        except RateLimited as exc:
            self._note(report, connection_id, exc.user_message)
            self._release(connection_id, exc, retry_after=timedelta(seconds=max(exc.retry_after, 0)))
        except NudgeError as exc:
            self._note(report, connection_id, exc.user_message)
            self._release(connection_id, exc)
        except Exception as exc:  # a bug in one connection's processing must not stop the others
            log.exception("connection %s failed unexpectedly", connection_id)
            self._note(report, connection_id, f"internal error: {type(exc).__name__}")
            self._release(connection_id, exc)
        else:
            self._note(report, connection_id, None)
            # Stopped mid-turn: what was left stays due, so a restarted worker takes it up at once.
            self._release(connection_id, None, keep_schedule=self.stopping)

    def _note(self, report: TickReport, connection_id: int, error: str | None) -> None:
        with self._report_lock:
            if error is None:
                report.succeeded.append(connection_id)
            else:
                report.failed[connection_id] = error

    def _next_run(self, failures: int, retry_after: timedelta | None) -> datetime:
        now = self.clock.now()
        if retry_after is not None:  # the provider named the instant its window reopens: exactly then
            return now + retry_after
        jitter = timedelta(seconds=self.rng.uniform(0, self.settings.jitter_seconds))
        if failures == 0:
            return now + timedelta(minutes=self.settings.sync_interval_minutes) + jitter
        backoff = min(timedelta(minutes=2 ** min(failures, 20)), timedelta(minutes=self.settings.max_backoff_minutes))
        return now + backoff + jitter

    def _release(
        self,
        connection_id: int,
        error: BaseException | None,
        *,
        retry_after: timedelta | None = None,
        keep_schedule: bool = False,
    ) -> None:
        try:
            with self.store.unit_of_work() as uow:
                connection = uow.connections.by_id(connection_id)
                if connection is None or connection.lease_owner != self.owner:
                    return
                if error is None:
                    if not keep_schedule:
                        connection.failures = 0
                        connection.last_error = ""
                    next_run = connection.next_run_at if keep_schedule else self._next_run(0, None)
                else:
                    next_run = self._record_failure(uow, connection, error, retry_after)
                uow.connections.release(connection_id, self.owner, next_run)
                uow.commit()
        except StorageError:
            # The database is away: the lease simply expires and another tick takes the connection again.
            log.warning("could not release connection %s; its lease will expire", connection_id)

    def _record_failure(
        self, uow: UnitOfWork, connection: Connection, error: BaseException, retry_after: timedelta | None
    ) -> datetime | None:
        """Note the error on the connection (a rate limit is no failure: no backoff); returns the next run."""
        if isinstance(error, RateLimited):
            resume_at = self.clock.now() + (retry_after or timedelta(seconds=max(error.retry_after, 0)))
            message = rate_limit_message(error, resume_at)
        elif isinstance(error, StorageError):  # the database was away, not the connection's fault: retry soon
            message = f"the database was unavailable; retrying ({error.user_message})"
            retry_after = timedelta(seconds=self.settings.tick_seconds)
        else:
            connection.failures += 1
            message = error.user_message if isinstance(error, NudgeError) else f"internal error: {type(error).__name__}"
        connection.last_error = message
        if isinstance(error, ProviderDisconnected):  # confirmed by the provider: no job runs for it again
            connection.status = ConnectionStatus.DISCONNECTED.value
            connection.tokens_sealed = ""
        elif isinstance(error, AuthError):
            connection.status = ConnectionStatus.NEEDS_REAUTH.value
        uow.activities.record(
            connection.organization_id,
            "connection.error",
            connection.name,
            connection_id=connection.id,
            detail={"error": message, "failures": connection.failures},
            actor=self.owner,
        )
        return self._next_run(connection.failures, retry_after)


def rate_limit_message(error: RateLimited, resume_at: datetime) -> str:
    """What the user sees for a provider limit: which limit, and when the connection resumes (UTC)."""
    what = "daily API limit reached" if error.limit == "day" else "API rate limit reached"
    provider = {"xero": "Xero", "quickbooks": "QuickBooks"}.get(error.provider, error.provider)
    subject = f"{provider} {what}" if provider else what[0].upper() + what[1:]
    return f"{subject}, resumes at {resume_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({error.user_message})"


class _Ticker:
    """`run_forever`'s jobs: the regular tick, and an early wake-up when a connection falls due before it."""

    def __init__(self, worker: Worker, settings: SchedulerSettings, scheduler: Any) -> None:
        self.worker = worker
        self.settings = settings
        self.scheduler = scheduler
        self.idle = threading.Event()
        self.idle.set()
        self._ticking = threading.Lock()
        self._wake: Any = None  # the pending early wake-up job, if any

    def tick(self) -> None:
        """One tick, never two at once; then wake early if the next connection is due before the next tick."""
        if self.worker.stopping or not self._ticking.acquire(blocking=False):
            return  # stopping, or a tick is running: it looks for what fell due meanwhile when it ends
        self.idle.clear()
        try:
            self.worker.tick()
        except StorageError as exc:  # a database restart or lock mid-tick: expected, the next tick retries
            log.warning("database unavailable (%s); retrying at the next tick", exc.user_message)
        except Exception:  # anything else is a bug: log it whole, the next tick still runs
            log.exception("worker tick failed; retrying at the next tick")
        finally:
            self.idle.set()
            self._ticking.release()
        self.wake_early()

    def wake_early(self) -> None:
        """Tick again when the next connection falls due before the next regular tick (at most once a second)."""
        if self.worker.stopping:
            return
        due = self.worker.next_due()
        regular = self.scheduler.get_job("tick")
        if due is None or regular is None or regular.next_run_time is None:
            return
        wake = max(due, self.worker.clock.now() + WAKE_GAP)
        if wake >= regular.next_run_time:
            return
        from apscheduler.jobstores.base import JobLookupError

        # A fresh job each time (no fixed id: the scheduler may still be removing the one that fired).
        previous, self._wake = (
            self._wake,
            self.scheduler.add_job(self.tick, "date", run_date=wake, misfire_grace_time=self.settings.tick_seconds),
        )
        if previous is not None:
            with contextlib.suppress(JobLookupError):  # it fired already
                previous.remove()


def run_forever(worker: Worker, settings: SchedulerSettings, *, install_signals: bool = True) -> bool:
    """`nudge worker`: tick every `tick_seconds` with APScheduler 3 until SIGTERM/SIGINT, then finish cleanly.

    A connection that falls due before the next tick (a webhook's, after its debounce) or the rest of a
    batch larger than `max_connections_per_tick` does not wait for it: after each tick the worker asks when
    the next connection falls due and, when that comes first, ticks again then (at most once a second).
    Ticks never overlap; what falls due during one is looked for when it ends.

    On a stop request the action in hand finishes and the rest is released (left planned, the connection
    still due). True when the tick in hand ended within `shutdown_grace_seconds`; False when the grace ran
    out first (the caller exits anyway: the leases of what was in hand expire and are taken over).
    """
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    ticker = _Ticker(worker, settings, scheduler)
    scheduler.add_job(
        ticker.tick,
        "interval",
        seconds=settings.tick_seconds,
        id="tick",
        next_run_time=worker.clock.now(),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=settings.tick_seconds,
    )

    def shutdown(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the action in hand, releasing the rest", signum)
        worker.stop()

    previous: dict[int, Any] = {}
    if install_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, shutdown)
    scheduler.start()
    try:
        worker.wait_stopped()
    finally:
        scheduler.shutdown(wait=False)  # no new tick; the one in hand gets the grace period below
        for restored, handler in previous.items():
            signal.signal(restored, handler)
    finished = ticker.idle.wait(settings.shutdown_grace_seconds)
    if not finished:
        log.warning(
            "shutdown grace of %s s ran out with work in hand; its leases expire after %s s and are taken over",
            settings.shutdown_grace_seconds,
            settings.lease_seconds,
        )
    return finished
