"""One connection's turn: sync, plan, execute — what each worker tick does per claimed connection.

Between sync and plan, a turn that would act reads the open credits first when they are older than a day
(connector.sync.credits): the unapplied-credit hold is decided on fresh money, and a connection at rest
never pays for that read.

The executor gets the people's task desk (connector.tasks) for call tasks and escalations, and the send
gate (connector.outbox.send_window) that re-checks each reminder against its customer's window, holidays
and the one-reminder-a-day rule at the moment it would go out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from connector.bootstrap import Services
from connector.config import Settings
from connector.connections.token_source import StoredTokenSource
from connector.domain.fees import ReferenceRates
from connector.errors import StorageError
from connector.handoff.service import StoreHandoffDesk
from connector.library.starter import ensure_library
from connector.outbox.executor import ExecutionReport, Executor, ReminderSender
from connector.outbox.planning import PlanReport, plan_connection
from connector.outbox.send_window import WindowGate
from connector.ports import AccountingAdapter
from connector.ratelimit.tenant import LimitWaits, read_limit_waits
from connector.storage.tables import Connection
from connector.sync.credits import credits_read_since, refresh_open_credits
from connector.sync.invoices import SyncReport, add_limit_waits, sync_connection
from connector.tasks.service import StoreTaskDesk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionTurn:
    """What one turn did for one connection."""

    sync: SyncReport
    plan: PlanReport
    execution: ExecutionReport


def adapter_for(services: Services, connection: Connection) -> AccountingAdapter:
    """The provider adapter of a stored connection, with database-backed single-flight tokens."""
    spec = services.registry.spec(connection.provider)
    settings = services.registry.settings(connection.provider)
    if connection.home_currency:  # per file: an accountant's clients keep their books in different currencies
        settings = replace(settings, options={**settings.options, "home_currency": connection.home_currency})
    tokens = StoredTokenSource(services.store, services.vault, spec, settings, connection.id, services.clock.now)
    return spec.adapter(connection.tenant_id, tokens, settings)


def run_connection(
    services: Services,
    connection_id: int,
    owner: str,
    *,
    reminders: ReminderSender | None,
    renew: Callable[[], object] = lambda: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ConnectionTurn:
    """Sync the connection, plan what is due, carry it out. Provider errors propagate to the scheduler.

    `should_stop` (the worker's shutdown flag) is checked between actions: the one in hand finishes,
    the rest stays planned for the next turn.

    The turn is bracketed by `connection.turn_started` / `connection.turn_finished` activities whose
    actor is `owner` (the lease holder), so the activity log shows who processed which connection when.
    """
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None:
            raise LookupError(f"connection {connection_id} does not exist")
        adapter = adapter_for(services, connection)
        org_id, name = connection.organization_id, connection.name
        uow.activities.record(
            org_id,
            "connection.turn_started",
            name,
            connection_id=connection_id,
            actor=owner,
            at=services.clock.now(),
        )
        uow.commit()
    outcome = "error"
    try:
        turn = _turn(services, adapter, connection_id, owner, reminders, renew, should_stop)
        outcome = "ok"
        return turn
    finally:
        try:
            with services.store.unit_of_work() as uow:
                uow.activities.record(
                    org_id,
                    "connection.turn_finished",
                    name,
                    connection_id=connection_id,
                    actor=owner,
                    at=services.clock.now(),
                    detail={"outcome": outcome},
                )
                uow.commit()
        except StorageError:  # the database is away: the turn's own error (if any) is what matters
            log.warning("could not record the end of connection %s's turn", connection_id)


def _turn(
    services: Services,
    adapter: AccountingAdapter,
    connection_id: int,
    owner: str,
    reminders: ReminderSender | None,
    renew: Callable[[], object],
    should_stop: Callable[[], bool],
) -> ConnectionTurn:
    settings = services.settings
    now = services.clock.now
    synced = sync_connection(
        services.store, adapter, connection_id, now, full_reconcile_every=reconcile_every(settings)
    )
    after_sync = read_limit_waits(adapter)
    try:
        planned, executed = _plan_and_execute(services, adapter, connection_id, owner, reminders, renew, should_stop)
    finally:  # the waits of planning (credit reads) and execution count with the sync run of this turn
        _count_waits(services, synced.run_id, read_limit_waits(adapter).since(after_sync))
    return ConnectionTurn(synced, planned, executed)


def _count_waits(services: Services, run_id: int, waits: LimitWaits) -> None:
    try:
        add_limit_waits(services.store, run_id, waits)
    except StorageError:  # the database is away: the turn's own outcome is what matters; the figure is lost
        log.warning("could not record the rate-limit waits of sync run %s", run_id)


def _plan_and_execute(
    services: Services,
    adapter: AccountingAdapter,
    connection_id: int,
    owner: str,
    reminders: ReminderSender | None,
    renew: Callable[[], object],
    should_stop: Callable[[], bool],
) -> tuple[PlanReport, ExecutionReport]:
    settings = services.settings
    now = services.clock.now
    renew()
    seed_library(services, connection_id)
    rates = ReferenceRates(settings.statutory.uk_base_rate, settings.statutory.eu_reference_rate)
    planned = plan_connection(
        services.store,
        connection_id,
        settings.rules,
        now(),
        rates=rates,
        before_acting=lambda: read_stale_credits(services, adapter, connection_id) > 0,
    )
    renew()
    scheduler = settings.scheduler
    executor = Executor(
        services.store,
        adapter,
        reminders,
        now,
        owner,
        lease=timedelta(seconds=scheduler.lease_seconds),
        max_attempts=scheduler.action_max_attempts,
        retry_base=timedelta(seconds=scheduler.action_retry_base_seconds),
        retry_cap=timedelta(seconds=scheduler.action_retry_max_seconds),
        tasks=StoreTaskDesk(services.store, now),  # call tasks and escalations become people's tasks
        gate=WindowGate(services.store, settings.rules),  # the send window, re-checked at send time
        # `escalate: handoff` steps: the letter, evidence ZIP and placement file, made once
        handoffs=StoreHandoffDesk(services.store, now, uk_base_rate=settings.statutory.uk_base_rate),
    )
    executed = executor.run_due(connection_id, renew=renew, should_stop=should_stop)
    return planned, executed


def seed_library(services: Services, connection_id: int) -> bool:
    """Give the connection's organization its own library (the install's starter cadences, policies and templates)
    when it has none yet, so its plans record library versions and people can edit it; True when it seeded.
    An install whose config names no cadences has no starter to copy: its organizations plan with the given rules."""
    if not services.settings.cadences:
        return False
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None or not ensure_library(
            uow, connection.organization_id, services.settings, services.clock.now()
        ):
            return False
        uow.commit()
        return True


def reconcile_every(settings: Settings) -> timedelta:
    """How old the last reconcile may be before a sweep becomes one: the reconcile period less half a poll
    interval, so the poll nearest each day's mark reconciles (daily), instead of the first one after it (a day
    and up to a whole interval: fewer reconciles than promised)."""
    period = timedelta(hours=settings.scheduler.full_reconcile_hours)
    return period - min(timedelta(minutes=settings.scheduler.sync_interval_minutes) / 2, period / 2)


def read_stale_credits(services: Services, adapter: AccountingAdapter, connection_id: int) -> int:
    """Read the open credit (connector.sync.credits) when the last complete read is older than the reconcile period;
    the calls made. The plan asks for it only when it would act, so a connection at rest never pays for it."""
    now = services.clock.now()
    fresh_for = timedelta(hours=services.settings.scheduler.full_reconcile_hours)
    if credits_read_since(services.store, connection_id, now - fresh_for):
        return 0
    return refresh_open_credits(services.store, adapter, connection_id, now)
