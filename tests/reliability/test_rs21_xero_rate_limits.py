"""RS-21 — Xero 429 with `X-Rate-Limit-Problem: minute`, then `day` with `Retry-After: 66975`.

The real parts: the Xero emulator over HTTP (its `throttle` knob answers one tenant's Accounting calls
with Xero's 429 and headers), xero-python, a SQLite store, the real Worker (claim, turn, release) on a
FakeClock, and the process-wide per-tenant limiter, whose daily block is timed on that same clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.storage.tables import Connection, Invoice, SyncRun
from connector.worker.scheduler import Lease, Worker
from connector.worker.turn import run_connection
from providers._emulator.kit import EmulatorKit, emulator_kit
from providers.xero.client import RateLimiter, limiter_for
from tests.support.clock import FakeClock
from tests.support.pipeline import rules
from tests.support.workers import connect, nudge_database, organization, smtp_sink, write_config

RULES = rules([{"id": "late", "offset": 1, "remind": "firm"}], catch_up=None)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RATE = 100_000  # the config's rate_per_minute (write_config): the emulator's own limits are off


@dataclass
class World:
    kit: EmulatorKit
    services: Services
    clock: FakeClock
    worker: Worker
    tenants: dict[int, str]  # connection id -> tenant
    limiters: dict[str, RateLimiter]

    def connection(self, connection_id: int) -> Connection:
        with self.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            uow.session.expunge(row)
            return row

    def invoices(self, connection_id: int) -> int:
        with self.services.store.unit_of_work() as uow:
            query = select(func.count()).select_from(Invoice).where(Invoice.connection_id == connection_id)
            return int(uow.session.scalar(query) or 0)

    def limit_waits(self, connection_id: int) -> tuple[int, float]:
        with self.services.store.unit_of_work() as uow:
            run = uow.session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id)).one()
            return run.limit_waits, run.limit_wait_seconds

    def statuses(self, connection_id: int) -> list[int]:
        return [int(c["status"]) for c in self.kit.calls("data", self.tenants[connection_id])]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        kit = stack.enter_context(emulator_kit("xero", rate_limits=False))
        sink = stack.enter_context(smtp_sink())
        url = stack.enter_context(nudge_database("sqlite", tmp_path))
        config = write_config(tmp_path, url, kit, sink.port, RULES, scheduler={"lease_seconds": 60, "concurrency": 1})
        clock = FakeClock(START)
        kit.set_now(START)
        services = build(load_settings(str(config)), clock=clock)
        stack.callback(services.store.dispose)
        services.store.upgrade()
        org = organization(services)
        tenants: dict[int, str] = {}
        limiters: dict[str, RateLimiter] = {}
        for name in ("Aotearoa Joinery", "Bay Plumbing"):
            tenant = kit.add_company(name)
            customer = kit.add_customer(tenant, f"{name} Client", f"ap@{name.split()[0].lower()}.example")
            for number in range(3):
                kit.add_invoice(
                    tenant, customer, f"INV-{number}", Decimal("120.00"), "NZD", date(2026, 1, 5), date(2026, 2, 4)
                )
            # The tenant's process-wide limiter, made before first use so its daily block runs on the test's clock.
            limiters[tenant] = limiter_for(tenant, RATE, wall=clock.now)
            tenants[connect(services, kit, tenant, org, "rs")] = tenant
        reminders = services.reminder_sender()

        def process(connection_id: int, lease: Lease) -> None:
            run_connection(services, connection_id, lease.owner, reminders=reminders, renew=lease.renew)

        worker = Worker(services.store, process, services.settings.scheduler, clock, owner="rs21")
        kit.clear_calls()
        yield World(kit, services, clock, worker, tenants, limiters)


def test_rs21_minute_limit_waits_and_completes(world: World) -> None:
    """Xero 429 `X-Rate-Limit-Problem: minute` → the minute case waits and completes."""
    first, second = world.tenants
    tenant = world.tenants[first]
    world.kit.admin("throttle", {"tenant": tenant, "problem": "minute", "retry_after": 1, "times": 1})
    report = world.worker.tick()
    assert sorted(report.succeeded) == sorted([first, second])
    assert report.failed == {}
    statuses = world.statuses(first)
    assert statuses[0] == 429
    assert set(statuses[1:]) == {200}
    assert world.invoices(first) == 3
    assert world.invoices(second) == 3
    # It waited Retry-After in-thread, which is within the few seconds a thread may wait.
    waited = world.limiters[tenant].waited
    assert waited >= 1
    assert waited <= world.limiters[tenant].max_wait
    assert world.connection(first).last_error == ""
    # The wait is on the turn's sync run, where GET /metrics reads it (nudge_rate_limit_waits_total).
    assert world.limit_waits(first) == (1, waited)
    assert world.limit_waits(second) == (0, 0.0)


def test_rs21_day_limit_reschedules_that_tenant_after_the_window(world: World) -> None:
    """Xero 429 `day` with `Retry-After: 66975` → the tenant is rescheduled for after the window; no worker
    thread is blocked, other tenants proceed, and the user sees "daily API limit reached"."""
    limited, other = world.tenants
    tenant = world.tenants[limited]
    world.kit.admin("throttle", {"tenant": tenant, "problem": "day", "retry_after": 66975})
    report = world.worker.tick()
    assert report.succeeded == [other]
    assert world.invoices(other) == 3
    assert limited in report.failed
    row = world.connection(limited)
    assert "daily API limit reached" in row.last_error
    assert "resumes at 2026-03-03 03:36 UTC" in row.last_error
    assert row.status == "active"
    assert row.failures == 0  # a limit is not a failure: no exponential back-off on top
    assert row.next_run_at is not None
    assert row.next_run_at >= START + timedelta(seconds=66975)
    assert row.next_run_at <= START + timedelta(seconds=66975 + 1)
    assert world.statuses(limited) == [429]  # one call, refused
    assert world.limiters[tenant].waited == 0  # nothing slept: the worker thread was handed back at once

    # Run it again inside the window: refused locally, without calling Xero.
    world.clock.advance(timedelta(hours=1))
    world.kit.set_now(world.clock.now())
    again = world.worker.tick(only=[limited])
    assert limited in again.failed
    assert world.statuses(limited) == [429]

    # After the window the tenant's block lifts by itself and its sync completes.
    world.clock.moment = START + timedelta(seconds=66975 + 5)
    world.kit.set_now(world.clock.now())
    after = world.worker.tick()
    assert limited in after.succeeded
    assert world.invoices(limited) == 3
    assert world.connection(limited).last_error == ""
