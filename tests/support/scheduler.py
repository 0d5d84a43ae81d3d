"""The scheduler (Worker) tests' settings and their connections, due at a given moment."""

from __future__ import annotations

from datetime import datetime

from connector.config import SchedulerSettings
from connector.storage import Store

SETTINGS = SchedulerSettings(
    tick_seconds=1,
    sync_interval_minutes=60,
    jitter_seconds=0,
    lease_seconds=600,
    max_connections_per_tick=50,
    max_backoff_minutes=360,
)


def due_connections(store: Store, count: int, due_at: datetime) -> list[int]:
    """`count` Xero connections ("t<i>", named "c<i>") of a new organization, each next due at `due_at`; their ids."""
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        ids = [uow.connections.add(org.id, "xero", f"t{i}", f"c{i}", next_run_at=due_at).id for i in range(count)]
        uow.commit()
        return ids
