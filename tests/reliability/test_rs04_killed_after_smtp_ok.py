"""RS-04 — the worker dies after the SMTP server's "250 OK" and before the executor commits the outcome.

The real executor sends a planned reminder through `MailReminderSender` and the real `SmtpMailer` to
an aiosmtpd sink (SQLite and PostgreSQL). The sender is wrapped so that, right after the real send
returned (the server said 250), a BaseException stands in for SIGKILL: no except clause and no
commit runs, so the action is left `sending` under its lease, exactly as a killed process leaves it.
(The same point reached with a real SIGKILL of `nudge run` is covered by
tests/integration/test_crash_recovery.py, "before_commit" and "during_smtp".) A new executor, after
the lease expired, recovers it: it is shown as uncertain and never sent again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Activity
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
                "steps": [{"id": "late", "offset": 14, "remind": "firm"}],
            }
        },
    }
)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing catches it, nothing after it runs."""


@dataclass
class Sink:
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        return "250 OK"


@dataclass
class DiesAfterSending:
    """The real sender; the process 'dies' once the server has answered 250."""

    sender: MailReminderSender

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sender.send(action, invoices, adapter)
        raise Killed


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


def test_rs04_killed_after_250_before_commit_is_uncertain_and_never_resent(
    store: Store, sink: tuple[Sink, int]
) -> None:
    """RS-04: not re-sent automatically; shown as "delivery unknown" for review; the sink holds exactly 1 message."""
    handler, port = sink
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(
        store, [invoice], first_seen_at=NOW - timedelta(days=20), name="Books Ltd", cadence="standard", time_zone="UTC"
    )
    clock = FakeClock(NOW)
    plan_connection(store, cid, RULES, clock.now())
    settings = smtp_settings(port, from_address="b@books.example")
    sender = MailReminderSender(store, SmtpMailer(settings), clock.now, attach_pdf=False)
    ledger = FakeLedger([invoice])
    lease = timedelta(seconds=30)

    with pytest.raises(Killed):
        Executor(store, ledger, DiesAfterSending(sender), clock.now, "w1", lease=lease).run_due(cid)
    assert len(handler.received) == 1
    assert reminder_row(store).state == "sending"  # what the dead worker left behind

    clock.advance(lease + timedelta(seconds=1))
    restarted = Executor(store, ledger, sender, clock.now, "w2", lease=lease)
    report = restarted.run_due(cid)
    clock.advance(timedelta(days=1))
    again = restarted.run_due(cid)

    row = reminder_row(store)
    assert report.uncertain == [row.key]
    assert again.done == []
    assert row.state == "uncertain"
    assert "may or may not have been sent" in (row.error or "")
    assert len(handler.received) == 1
    with store.unit_of_work() as uow:
        listed = list(uow.session.scalars(select(Activity.subject).where(Activity.kind == "action.uncertain")))
    assert listed == [row.key]
