"""Operational figures for GET /metrics, read straight from the database: one aggregate query per family.

The web and the worker are different processes (and a deployment runs several of each), so nothing is counted
in memory: every figure is what the shared database says at the moment of the scrape. No figure names an
organization, a connection or a tenant: only providers, outcomes and states (bounded sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from connector.domain.model import ActionState, ConnectionStatus
from connector.storage.store import UnitOfWork
from connector.storage.tables import Action, Connection, SyncRun, WebhookDelivery

RUNNING = "running"  # a sync still in progress (or one whose process died): not counted until it finishes


@dataclass(frozen=True, slots=True)
class SyncFigures:
    """Finished syncs of one provider with one outcome: how many, their calls and their waits on the limits."""

    provider: str
    outcome: str
    syncs: int
    calls: int
    limit_waits: int
    limit_wait_seconds: float


@dataclass(frozen=True, slots=True)
class WebhookFigures:
    """Webhook deliveries kept (scheduler.webhook_retention_days) of one provider and outcome, the newest's time."""

    provider: str
    outcome: str
    deliveries: int
    last_received_at: datetime | None


def sync_figures(uow: UnitOfWork) -> list[SyncFigures]:
    """Every finished sync run, totalled by the connection's provider and the run's outcome."""
    rows = uow.session.execute(
        select(
            Connection.provider,
            SyncRun.outcome,
            func.count(SyncRun.id),
            func.coalesce(func.sum(SyncRun.calls), 0),
            func.coalesce(func.sum(SyncRun.limit_waits), 0),
            func.coalesce(func.sum(SyncRun.limit_wait_seconds), 0.0),
        )
        .join(Connection, Connection.id == SyncRun.connection_id)
        .where(SyncRun.outcome != RUNNING)
        .group_by(Connection.provider, SyncRun.outcome)
        .order_by(Connection.provider, SyncRun.outcome)
    ).all()
    return [
        SyncFigures(str(provider), str(outcome), int(count), int(calls), int(waits), float(seconds))
        for provider, outcome, count, calls, waits, seconds in rows
    ]


def actions_by_state(uow: UnitOfWork) -> dict[str, int]:
    """How many actions the outbox holds in each state (every state listed, 0 when none)."""
    counts = {state.value: 0 for state in ActionState}
    for state, count in uow.session.execute(select(Action.state, func.count(Action.id)).group_by(Action.state)):
        counts[str(state)] = counts.get(str(state), 0) + int(count)
    return counts


def oldest_due_planned(uow: UnitOfWork, now: datetime) -> datetime | None:
    """When the oldest action still `planned` and already due (scheduled at or before `now`) was due, among active
    connections (a worker runs them; a disconnected one's actions wait for a person, not for a worker); None when
    none is waiting. The executor moves a deferred action's `scheduled_at` on, so this measures the backlog."""
    oldest: datetime | None = uow.session.scalar(
        select(func.min(Action.scheduled_at))
        .join(Connection, Connection.id == Action.connection_id)
        .where(
            Action.state == ActionState.PLANNED.value,
            Action.scheduled_at <= now,
            Connection.status == ConnectionStatus.ACTIVE.value,
        )
    )
    return oldest


def webhook_figures(uow: UnitOfWork) -> list[WebhookFigures]:
    """The webhook deliveries kept, by provider and outcome, with the newest one's arrival."""
    rows = uow.session.execute(
        select(
            WebhookDelivery.provider,
            WebhookDelivery.outcome,
            func.count(WebhookDelivery.id),
            func.max(WebhookDelivery.received_at),
        )
        .group_by(WebhookDelivery.provider, WebhookDelivery.outcome)
        .order_by(WebhookDelivery.provider, WebhookDelivery.outcome)
    ).all()
    return [WebhookFigures(str(provider), str(outcome), int(count), last) for provider, outcome, count, last in rows]
