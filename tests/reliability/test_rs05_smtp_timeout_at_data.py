"""RS-05 — the SMTP server accepts the connection, then never answers the DATA command.

The real executor carries out a planned reminder and a planned note through `MailReminderSender`
and the real `SmtpMailer` (1-second timeout) to an aiosmtpd server whose session leaves DATA
unanswered (no 354), on SQLite and PostgreSQL. Nothing can have been delivered, so the attempt is
recorded as failed and the action goes back to `planned` with a back-off; the same pass carries on
with the note (the run is not stopped). Once the server answers again and the back-off has passed,
the reminder goes out once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from connector.domain.policy_parsing import policy_from_dict
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot, reminder_row
from tests.support.smtp import smtp_server, smtp_settings

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "UTC",
                "send_time": "09:30",
                "steps": [{"id": "late", "offset": 14, "remind": "firm", "note": "Reminder sent"}],
            }
        },
    }
)


@dataclass
class StallingSink:
    """Keeps every message it accepts; while `stall` is set, DATA commands are never answered."""

    stall: bool = True
    received: list[bytes] = field(default_factory=list)
    stalled: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        return "250 OK"


class _StallingSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        if isinstance(handler, StallingSink) and handler.stall:
            handler.stalled += 1
            await asyncio.sleep(30)  # longer than the client's timeout; cancelled when the server stops
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _StallingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def sink() -> Iterator[tuple[StallingSink, int]]:
    handler = StallingSink()
    with smtp_server(handler, _Controller) as port:
        yield handler, port


def test_rs05_a_timeout_at_data_is_retried_with_back_off_and_sent_once(
    store: Store, sink: tuple[StallingSink, int]
) -> None:
    """RS-05: marked failed and retried with back-off; the sink ends with ≤ 1 message; the scheduler keeps running."""
    handler, port = sink
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(
        store, [invoice], first_seen_at=NOW - timedelta(days=20), name="Books Ltd", cadence="standard", time_zone="UTC"
    )
    clock = FakeClock(NOW)
    plan_connection(store, cid, RULES, clock.now())
    settings = smtp_settings(port, from_address="billing@books.example", timeout_seconds=1)
    sender = MailReminderSender(store, SmtpMailer(settings), clock.now, attach_pdf=False)
    executor = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1")

    first = executor.run_due(cid)  # returns: the timeout is an outcome, not a crash

    row = reminder_row(store)
    assert handler.stalled == 1
    assert handler.received == []
    assert first.failed == []
    assert len(first.retried) == 1  # the attempt failed and is retried ...
    assert row.state == "planned"
    assert row.attempts == 1
    assert row.scheduled_at is not None
    assert row.scheduled_at.replace(tzinfo=UTC) > NOW  # ... later: back-off
    assert "nothing was delivered" in (row.error or "")
    assert first.done == []
    assert len(first.deferred) == 1  # the step's note waits for its reminder: it says the reminder was sent

    assert executor.run_due(cid).done == []  # before the back-off has passed, nothing is tried again
    assert handler.stalled == 1

    handler.stall = False
    clock.advance(timedelta(hours=1))
    second = executor.run_due(cid)

    assert second.done[0] == row.key  # the reminder, then the note that waited for it
    assert len(second.done) == 2
    assert reminder_row(store).state == "done"
    assert len(handler.received) == 1
