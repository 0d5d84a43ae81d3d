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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.bootstrap import Services
from connector.outbox.executor import note_key
from connector.storage.tables import Action, Activity
from providers._emulator import Fault
from providers.quickbooks.adapter import _short
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.pipeline import rules
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
RULES = rules(
    [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue (Nudge)", "late_fee": "flat25"}],
    cadence="busy",
    catch_up=None,
    late_fees={"flat25": {"kind": "flat", "amount": 25, "warning_required": False}},
)


Turn = tuple[str, str, datetime]  # (kind, lease owner, at) of one connection.turn_* activity


@dataclass
class Log:
    """What the workers left in the database: the actions, the turn activities and the connection errors."""

    rows: list[Action]
    turns: list[Any]
    errors: list[Any]


def test_three_workers_share_200_connections_under_faults_exactly_once(tmp_path: Path) -> None:
    emulator = QuickBooksKit(rate_limits=False)
    emulator.start()
    workers: list[subprocess.Popen[str]] = []
    try:
        with smtp_sink() as sink, nudge_database("postgresql", tmp_path) as url:
            config = _write_busy_config(tmp_path, url, emulator, sink.port)
            services = services_for(config)
            try:
                realms = _seed_connections(services, emulator)
                _inject_faults(emulator)
                workers.extend(nudge(config, "worker") for _ in range(WORKERS))
                elapsed = _wait_until_settled(services, workers)
                _stop_workers(workers)
                log = _read_log(services)
            finally:
                services.store.dispose()

            # Every due action done exactly once; nothing lost.
            received = sink.message_ids()
            _assert_every_action_done_once(log.rows, realms, emulator, received)

            # No connection processed by two workers at once: per connection, turns alternate
            # start/finish of one owner, and the next turn starts after the previous one finished.
            per_connection = _turns_by_connection(log.turns)
            _assert_turns_never_overlap(per_connection)
            owners = {actor for events in per_connection.values() for _, actor, _ in events}
            assert len(owners) == WORKERS  # all three took part
            statuses = Counter(call.status for call in emulator.core.calls("data"))
            assert statuses[500] > 0
            assert statuses[429] > 0
            print(
                f"\n{CONNECTIONS} connections, {len(log.rows)} actions done in {elapsed:.0f} s by {len(owners)} "
                f"workers; {sum(len(e) for e in per_connection.values()) // 2} turns; emails {len(received)}; "
                f"data calls {sum(statuses.values())} ({statuses[500]} x 500, {statuses[429]} x 429); "
                f"connection errors {len(log.errors)}: {Counter(re.sub(r'[0-9]+', 'N', str(e)) for e in log.errors)}"
            )
    finally:
        _reap(workers)
        emulator.stop()


def _write_busy_config(folder: Path, url: str, emulator: QuickBooksKit, smtp_port: int) -> Path:
    """The workers' config: a tick a second, 20 connections a tick, 30 s leases, 4 at once, 8 in-line retries."""
    return write_config(
        folder,
        url,
        emulator,
        smtp_port,
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


def _seed_connections(services: Services, emulator: QuickBooksKit) -> dict[int, str]:
    """Connect CONNECTIONS companies, each with one overdue invoice; connection id -> realm."""
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
    return realms


def _inject_faults(emulator: QuickBooksKit) -> None:
    """Forget the setup calls, then answer every 10th data call with a 500 and every 10th of the rest with a 429."""
    emulator.clear_calls()
    for status, headers in ((500, {}), (429, {"Retry-After": "1"})):
        emulator.add_fault(Fault("status", path="/v3/company/", status=status, every=10, times=10**9, headers=headers))


def _settled(services: Services) -> bool:
    """Every connection has finished a turn without error and no action is left open."""
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


def _wait_until_settled(services: Services, workers: list[subprocess.Popen[str]]) -> float:
    """Poll until settled while every worker lives and the deadline holds; the seconds it took."""
    started = time.monotonic()
    while not _settled(services):
        assert all(w.poll() is None for w in workers), "a worker died"
        assert time.monotonic() - started < DEADLINE_SECONDS, "the workers did not finish in time"
        time.sleep(1)
    return time.monotonic() - started


def _stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every worker and check each exits cleanly, without a traceback."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    outputs = [worker.communicate(timeout=60) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert "Traceback" not in err, err[-2000:]


def _read_log(services: Services) -> Log:
    """The actions, the connection.turn_* activities in order per connection and the connection errors."""
    with services.store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Action)))
        turns = list(
            uow.session.execute(
                select(Activity.connection_id, Activity.kind, Activity.actor, Activity.at, Activity.id)
                .where(Activity.kind.in_(("connection.turn_started", "connection.turn_finished")))
                .order_by(Activity.connection_id, Activity.at, Activity.id)
            )
        )
        errors = list(uow.session.scalars(select(Activity.detail).where(Activity.kind == "connection.error")))
    return Log(rows, turns, errors)


def _assert_every_action_done_once(
    rows: list[Action], realms: dict[int, str], emulator: QuickBooksKit, received: list[str]
) -> None:
    """One reminder, note and fee done per connection, each written to its ledger once, one email per reminder."""
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
        [fee] = [row for row in by_connection[connection_id] if row.kind == "late_fee"]
        # the step's note and the note the fee leaves on its invoice (issue 12), each once
        expected = sorted([f"[nudge {_short(note.key)}]", f"[nudge {_short(note_key(fee.key))}]"])
        assert sorted(writes.note_markers) == expected, (connection_id, writes)
        assert len(writes.fee_doc_numbers) == 1, (connection_id, writes)
    assert len(received) == len(set(received)) == CONNECTIONS
    assert {row.external_ref for row in rows if row.kind == "remind"} == set(received)


def _turns_by_connection(turns: list[Any]) -> dict[int, list[Turn]]:
    """The turn activities grouped by connection, in log order."""
    per_connection: dict[int, list[Turn]] = defaultdict(list)
    for turn_connection, kind, actor, at, _ in turns:
        per_connection[turn_connection or 0].append((kind, actor, at))
    return per_connection


def _assert_turns_never_overlap(per_connection: dict[int, list[Turn]]) -> None:
    """Per connection: started/finished pairs of one owner, each turn starting after the previous one finished."""
    for connection_id, events in per_connection.items():
        previous_end: datetime | None = None
        for index in range(0, len(events), 2):
            start, end = events[index], events[index + 1] if index + 1 < len(events) else None
            assert start[0] == "connection.turn_started", (connection_id, events)
            assert end is not None, (connection_id, events)
            assert end[0] == "connection.turn_finished", (connection_id, events)
            assert end[1] == start[1], (connection_id, events)
            assert previous_end is None or start[2] >= previous_end, (connection_id, events)
            previous_end = end[2]


def _reap(workers: list[subprocess.Popen[str]]) -> None:
    """Kill and reap any worker still running (after a failure)."""
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=30)
