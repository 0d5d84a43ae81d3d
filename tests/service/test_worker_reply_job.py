"""The worker's periodic jobs (issue 17: the reply mailbox poll): each runs at most once per its interval at the
start of a tick, and one that raises is logged and never stops the tick or the jobs after it; `reply_jobs`
registers the IMAP poll only when `mail.imap_host` is set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from connector.config import SchedulerSettings, settings_for_tests
from connector.storage import Store
from connector.worker.replies import reply_jobs
from connector.worker.scheduler import PeriodicJob, Worker
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def test_periodic_jobs_run_once_per_interval_and_a_failing_one_stops_nothing(store: Store) -> None:
    runs: list[str] = []

    def broken() -> None:
        runs.append("broken")
        raise RuntimeError("a bug in a job")

    clock = FakeClock(T0)
    jobs = [
        PeriodicJob("broken", timedelta(minutes=1), broken),
        PeriodicJob("poll", timedelta(minutes=1), lambda: runs.append("poll")),
    ]
    worker = Worker(store, lambda connection_id, lease: None, SchedulerSettings(), clock, owner="w1", periodic=jobs)

    worker.tick()
    worker.tick()  # same moment: not due again
    clock.advance(timedelta(minutes=1))
    worker.tick()

    assert runs == ["broken", "poll", "broken", "poll"]


def test_the_imap_job_is_registered_only_when_a_mailbox_is_configured() -> None:
    settings = settings_for_tests("sqlite://")
    services = SimpleNamespace(settings=settings, store=None, clock=FakeClock(T0))
    assert reply_jobs(services) == []
    polled = replace(settings, mail=replace(settings.mail, imap_host="127.0.0.1", imap_poll_seconds=90))
    [job] = reply_jobs(SimpleNamespace(settings=polled, store=None, clock=FakeClock(T0)))
    assert (job.name, job.every) == ("imap replies", timedelta(seconds=90))
