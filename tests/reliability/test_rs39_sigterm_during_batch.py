"""RS-39: SIGTERM reaches a real `nudge worker` in the middle of a batch of 50 reminder emails.

One QuickBooks company (the emulator) has 50 customers, each with one overdue invoice: 50 reminders
due at once, sent through a real SMTP sink (aiosmtpd). The sink holds the 5th message in DATA; while it
is held the worker gets SIGTERM; then the sink answers. The worker must finish that email, start no
other, release every lease and exit (within its grace period). A second process (`nudge run`) then
sends each remaining reminder exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.storage.tables import Connection
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.pipeline import rules
from tests.support.workers import (
    actions,
    add_overdue_customers,
    connect,
    nudge,
    nudge_database,
    organization,
    services_for,
    smtp_sink,
    wait_for,
    write_config,
)

REMINDERS = 50
HELD = 5  # the email in flight when SIGTERM arrives
RULES = rules([{"id": "late", "offset": 3, "remind": "firm"}], cadence="batch", catch_up=None)


def _recipients(received: list[bytes]) -> Counter[str]:
    return Counter(str(message_from_bytes(raw, policy=policy.default)["To"]) for raw in received)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs39_sigterm_mid_batch_finishes_or_releases_and_the_rest_go_once(tmp_path: Path, database: str) -> None:
    """RS-39: in-flight work finishes or is released (lease cleared), the process exits within the grace period;
    on restart each remaining reminder is sent exactly once."""
    with QuickBooksKit() as emulator, smtp_sink() as sink, nudge_database(database, tmp_path) as url:
        realm = emulator.add_company("Batch Co", "USD")
        add_overdue_customers(emulator, realm, REMINDERS, number="B", amount="80.00", days_late=7)
        config = write_config(
            tmp_path,
            url,
            emulator,
            sink.port,
            RULES,
            scheduler={"tick_seconds": 1, "lease_seconds": 60, "concurrency": 1, "shutdown_grace_seconds": 30},
        )
        services = services_for(config)
        worker: subprocess.Popen[str] | None = None
        try:
            connect(services, emulator, realm, organization(services), "batch")

            def hold_the_fifth() -> None:
                if len(sink.received) == HELD - 1:
                    sink.hold_next()

            sink.on_data = hold_the_fifth
            worker = nudge(config, "worker")
            wait_for(lambda: len(sink.received) >= HELD and sink.entered.is_set(), 120, "the 5th email in DATA")
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the signal lands while the email is in flight
            sink.release()
            _, err = worker.communicate(timeout=60)  # a generous bound: the grace period is 30 s
            assert worker.returncode == 0, err[-2000:]
            assert "Traceback" not in err

            rows = actions(services)
            assert len(rows) == REMINDERS
            states = Counter(row.state for row in rows)
            assert states == {"done": HELD, "planned": REMINDERS - HELD}, states  # in hand finished, none started
            assert all(row.lease_owner == "" and row.lease_until is None for row in rows)  # no lease held
            with services.store.unit_of_work() as uow:
                assert list(uow.session.scalars(select(Connection.lease_owner))) == [""]
            assert len(sink.received) == HELD

            restart = nudge(config, "run")
            _, err = restart.communicate(timeout=180)
            assert restart.returncode == 0, err[-2000:]
            rows = actions(services)
            assert Counter(row.state for row in rows) == {"done": REMINDERS}
            received = sink.message_ids()
            assert len(received) == len(set(received)) == REMINDERS
            assert {row.external_ref for row in rows} == set(received)
            recipients = _recipients(sink.received)
            assert len(recipients) == REMINDERS
            assert set(recipients.values()) == {1}  # each customer's reminder exactly once
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=30)
            services.store.dispose()
