"""Three `nudge worker` processes on PostgreSQL over 200 connections, with 10 % 5xx and 429s.

Issue 6: "every due action done exactly once, no connection processed by two workers at once
(checked from the activity log), nothing lost." Each of 200 QuickBooks companies (connected through
the real OAuth flow) has one overdue invoice, due a reminder, a note and a fee invoice at once. The
emulator answers every 10th data call with a 500 and every 10th of the rest with a 429
(`Retry-After: 1`). The workers run until nothing is left, then stop on SIGTERM. Each connection turn
is bracketed by `connection.turn_started` / `connection.turn_finished` activities naming the lease
owner, so overlapping turns of one connection would show in the log.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.storage.tables import Action, Activity
from providers._emulator import Fault
from providers.quickbooks.adapter import _short
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.workers import (
    connect,
    customer_email,
    nudge,
    nudge_database,
    organization,
    quickbooks_writes,
    services_for,
    smtp_sink,
    write_config,
)

pytestmark = pytest.mark.slow

CONNECTIONS = 200
WORKERS = 3
DEADLINE_SECONDS = 240
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RULES = {
    "cadences": {
        "busy": {
            "time_zone": "UTC",
            "send_time": "00:00",
            "window": {"weekdays": EVERY_DAY, "start": "00:00", "end": "23:59"},
            "steps": [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue (Nudge)", "late_fee": "flat25"}],
        }
    },
    "policies": {"templates": ["firm"], "late_fees": {"flat25": {"kind": "flat", "amount": 25}}},
}


def test_three_workers_share_200_connections_under_faults_exactly_once(tmp_path: Path) -> None:
    emulator = QuickBooksKit(rate_limits=False)
    emulator.start()
    workers: list[subprocess.Popen[str]] = []
    try:
        with smtp_sink() as sink, nudge_database("postgresql", tmp_path) as url:
            config = write_config(
                tmp_path,
                url,
                emulator,
                sink.port,
                RULES,
                scheduler={
                    "tick_seconds": 1,
                    "max_connections_per_tick": 20,
                    "lease_seconds": 30,
                    "concurrency": 4,
                },
                # 10 % + 9 % faulty calls: a few more in-line retries than the default 3 keep a request
                # from failing outright (which would only postpone its connection by minutes).
                provider_options={"max_retries": 8},
            )
            services = services_for(config)
            try:
                today = datetime.now(UTC).date()
                org_id = organization(services)
                realms: dict[int, str] = {}
                for n in range(CONNECTIONS):
                    realm = emulator.add_company(f"Busy Co {n}", "USD")
                    customer = emulator.add_customer(realm, f"Customer {n}", customer_email(f"Customer {n}"))
                    due = today - timedelta(days=5 + n % 20)
                    issued = due - timedelta(days=30)
                    emulator.add_invoice(realm, customer, f"B-{n}", Decimal(100 + n), "", issued, due)
                    realms[connect(services, emulator, realm, org_id, "busy")] = realm
                emulator.clear_calls()
                for status, headers in ((500, {}), (429, {"Retry-After": "1"})):
                    emulator.add_fault(
                        Fault("status", path="/v3/company/", status=status, every=10, times=10**9, headers=headers)
                    )

                workers = [nudge(config, "worker") for _ in range(WORKERS)]
                started = time.monotonic()

                def settled() -> bool:
                    with services.store.unit_of_work() as uow:
                        finished = uow.session.scalar(
                            select(func.count(func.distinct(Activity.connection_id))).where(
                                Activity.kind == "connection.turn_finished",
                                Activity.detail["outcome"].as_string() == "ok",
                            )
                        )
                        open_actions = uow.session.scalar(
                            select(func.count()).where(Action.state.in_(("planned", "running", "sending")))
                        )
                    return finished == CONNECTIONS and open_actions == 0

                while not settled():
                    assert all(w.poll() is None for w in workers), "a worker died"
                    assert time.monotonic() - started < DEADLINE_SECONDS, "the workers did not finish in time"
                    time.sleep(1)
                elapsed = time.monotonic() - started
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                outputs = [worker.communicate(timeout=60) for worker in workers]
                for worker, (_, err) in zip(workers, outputs, strict=True):
                    assert worker.returncode == 0, err[-2000:]
                    assert "Traceback" not in err, err[-2000:]

                with services.store.unit_of_work() as uow:
                    rows = list(uow.session.scalars(select(Action)))
                    turns = list(
                        uow.session.execute(
                            select(Activity.connection_id, Activity.kind, Activity.actor, Activity.at, Activity.id)
                            .where(Activity.kind.in_(("connection.turn_started", "connection.turn_finished")))
                            .order_by(Activity.connection_id, Activity.at, Activity.id)
                        )
                    )
                    errors = list(
                        uow.session.scalars(select(Activity.detail).where(Activity.kind == "connection.error"))
                    )
            finally:
                services.store.dispose()

            # Every due action done exactly once; nothing lost.
            assert Counter((row.kind, row.state) for row in rows) == {
                ("remind", "done"): CONNECTIONS,
                ("note", "done"): CONNECTIONS,
                ("late_fee", "done"): CONNECTIONS,
            }
            assert {row.connection_id for row in rows} == set(realms)
            by_connection: dict[int, list[Action]] = defaultdict(list)
            for row in rows:
                by_connection[row.connection_id].append(row)
            for connection_id, realm in realms.items():
                writes = quickbooks_writes(emulator, realm)
                [note] = [row for row in by_connection[connection_id] if row.kind == "note"]
                assert writes.note_markers == [f"[nudge {_short(note.key)}]"], (connection_id, writes)
                assert len(writes.fee_doc_numbers) == 1, (connection_id, writes)
            received = sink.message_ids()
            assert len(received) == len(set(received)) == CONNECTIONS
            assert {row.external_ref for row in rows if row.kind == "remind"} == set(received)

            # No connection processed by two workers at once: per connection, turns alternate
            # start/finish of one owner, and the next turn starts after the previous one finished.
            owners = set()
            per_connection: dict[int, list[tuple[str, str, datetime]]] = defaultdict(list)
            for turn_connection, kind, actor, at, _ in turns:
                per_connection[turn_connection or 0].append((kind, actor, at))
                owners.add(actor)
            for connection_id, events in per_connection.items():
                previous_end: datetime | None = None
                for index in range(0, len(events), 2):
                    start, end = events[index], events[index + 1] if index + 1 < len(events) else None
                    assert start[0] == "connection.turn_started" and end is not None, (connection_id, events)
                    assert end[0] == "connection.turn_finished" and end[1] == start[1], (connection_id, events)
                    assert previous_end is None or start[2] >= previous_end, (connection_id, events)
                    previous_end = end[2]
            assert len(owners) == WORKERS  # all three took part
            statuses = Counter(call.status for call in emulator.core.calls("data"))
            assert statuses[500] > 0 and statuses[429] > 0
            print(
                f"\n{CONNECTIONS} connections, {len(rows)} actions done in {elapsed:.0f} s by {len(owners)} workers; "
                f"{sum(len(e) for e in per_connection.values()) // 2} turns; emails {len(received)}; "
                f"data calls {sum(statuses.values())} ({statuses[500]} x 500, {statuses[429]} x 429); "
                f"connection errors {len(errors)}: {Counter(re.sub(r'[0-9]+', 'N', str(e)) for e in errors)}"
            )
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=30)
        emulator.stop()
