"""RS-07: two scheduler processes (`nudge worker` twice) over the same database.

The catalogue imagines one scheduler leader holding a lease while the other idles. Nudge's design
(docs/design.md) has no leader: every worker schedules, and the lease is per connection (claimed with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional UPDATE on SQLite). So the test asserts the
design's guarantee, which is what the leader was for: each due job runs once, and no connection is
processed by two workers at once (checked from the `connection.turn_started/finished` activities, whose
actor is the lease holder).
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.bootstrap import Services
from connector.storage.tables import Action, Activity
from providers.quickbooks.adapter import _short
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.pipeline import rules
from tests.support.workers import (
    add_overdue_customers,
    connect,
    nudge,
    nudge_database,
    organization,
    quickbooks_writes,
    services_for,
    smtp_sink,
    wait_for,
    write_config,
)

CONNECTIONS = 8
RULES = rules([{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue (Nudge)"}], cadence="pair", catch_up=None)


def _settled(services: Services) -> bool:
    with services.store.unit_of_work() as uow:
        states = Counter(uow.session.scalars(select(Action.state)))
    return sum(states.values()) == 2 * CONNECTIONS and set(states) == {"done"}


def _turns(services: Services) -> dict[int, list[tuple[str, str, datetime]]]:
    with services.store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(Activity.connection_id, Activity.kind, Activity.actor, Activity.at)
            .where(Activity.kind.in_(("connection.turn_started", "connection.turn_finished")))
            .order_by(Activity.connection_id, Activity.at, Activity.id)
        ).all()
    turns: dict[int, list[tuple[str, str, datetime]]] = defaultdict(list)
    for connection_id, kind, actor, at in rows:
        turns[connection_id or 0].append((kind, actor, at))
    return turns


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs07_two_worker_processes_run_each_due_job_once(tmp_path: Path, database: str) -> None:
    """RS-07: each due job produces one effect; no connection is processed by two schedulers at once."""
    with QuickBooksKit() as emulator, smtp_sink() as sink, nudge_database(database, tmp_path) as url:
        config = write_config(
            tmp_path,
            url,
            emulator,
            sink.port,
            RULES,
            scheduler={"tick_seconds": 1, "lease_seconds": 30, "concurrency": 2, "max_connections_per_tick": 3},
        )
        services = services_for(config)
        workers: list[subprocess.Popen[str]] = []
        try:
            org_id = organization(services)
            realms: dict[int, str] = {}
            for n in range(CONNECTIONS):
                realm = emulator.add_company(f"Pair Co {n}", "USD")
                add_overdue_customers(emulator, realm, 1, number="P", amount="70.00", days_late=5, first=n)
                realms[connect(services, emulator, realm, org_id, "pair")] = realm
            workers = [nudge(config, "worker"), nudge(config, "worker")]
            wait_for(lambda: _settled(services) or any(w.poll() is not None for w in workers), 180, "all done")
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                _, err = worker.communicate(timeout=60)
                assert worker.returncode == 0, err[-2000:]
                assert "Traceback" not in err

            with services.store.unit_of_work() as uow:
                rows = list(uow.session.scalars(select(Action)))
            assert Counter((row.kind, row.state) for row in rows) == {
                ("remind", "done"): CONNECTIONS,
                ("note", "done"): CONNECTIONS,
            }
            received = sink.message_ids()
            assert len(received) == len(set(received)) == CONNECTIONS  # one email per due reminder
            for connection_id, realm in realms.items():
                [note] = [row for row in rows if row.kind == "note" and row.connection_id == connection_id]
                assert quickbooks_writes(emulator, realm).note_markers == [f"[nudge {_short(note.key)}]"]

            for connection_id, events in _turns(services).items():  # turns of one connection never overlap
                previous_end: datetime | None = None
                assert len(events) % 2 == 0, (connection_id, events)
                for start, end in zip(events[::2], events[1::2], strict=True):
                    assert (start[0], end[0]) == ("connection.turn_started", "connection.turn_finished")
                    assert start[1] == end[1], (connection_id, events)  # started and finished by one lease holder
                    assert previous_end is None or start[2] >= previous_end, (connection_id, events)
                    previous_end = end[2]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate(timeout=30)
            services.store.dispose()
