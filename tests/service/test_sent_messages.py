"""Every email is kept exactly as sent (connector.mail.archive), in step with the executor's exactly-once protocol.

The real executor sends planned reminders through `MailReminderSender` and the real mailers (maildir, and SMTP to
an aiosmtpd server on loopback), on SQLite and PostgreSQL. A copy exists exactly when the message was (or may
have been) handed over: `sent` with a done action, `uncertain` with an uncertain one (a crash between the
hand-over and the commit, or the server's answer lost), none when the mail was certainly not handed over
(refused, server unreachable), and never two for one action key.
"""

from __future__ import annotations

import email
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.config import MailSettings
from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.mail import archive
from connector.mail.archive import Concerning, bounded, keep
from connector.mail.maildir import MaildirMailer
from connector.mail.message import OutgoingMessage, prepare
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import SentMessage
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
        }
    }
)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing catches it, nothing after it runs."""


@dataclass
class Sink:
    """An SMTP server's handler: keeps what it accepts; `answer` is its reply to DATA."""

    answer: str = "250 OK"
    refuse_rcpt: str = ""
    received: list[bytes] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            self.received.append(bytes(envelope.original_content))
        return self.answer


@dataclass
class DiesAfterSending:
    """The real sender; the process 'dies' once the message was handed over."""

    sender: MailReminderSender

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sender.send(action, invoices, adapter)
        raise Killed


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


def _planned(store: Store) -> tuple[int, InvoiceSnapshot, FakeClock]:
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(
        store, [invoice], first_seen_at=NOW - timedelta(days=20), name="Books Ltd", cadence="standard", time_zone="UTC"
    )
    clock = FakeClock(NOW)
    plan_connection(store, cid, RULES, clock.now())
    return cid, invoice, clock


def _kept(store: Store) -> list[SentMessage]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(SentMessage).order_by(SentMessage.id)))
        for row in rows:
            uow.session.expunge(row)
        return rows


def test_maildir_keeps_the_eml_bytes_with_what_the_email_concerns(store: Store, tmp_path: Path) -> None:
    cid, invoice, clock = _planned(store)
    settings = MailSettings(backend="maildir", outbox_path=str(tmp_path), from_address="billing@books.example")
    sender = MailReminderSender(store, MaildirMailer(tmp_path, settings, clock=clock.now), clock.now)

    report = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1").run_due(cid)

    action = reminder_row(store)
    assert report.done == [action.key]
    [kept] = _kept(store)
    [eml] = list(tmp_path.glob("*.eml"))
    assert kept.raw == eml.read_bytes()  # byte for byte what the outbox holds
    assert kept.state == "sent"
    assert kept.mailer == "maildir"
    assert kept.action_key == action.key
    assert kept.message_id == action.external_ref
    assert kept.connection_id == cid
    assert kept.customer_external_id == "c1"
    assert kept.invoice_external_ids == ["1"]
    assert kept.to_addresses == ["ap@cust.example"]
    assert kept.cc_addresses == []
    assert kept.sent_at == NOW
    assert kept.size == len(kept.raw)
    assert kept.sha256 == hashlib.sha256(kept.raw).hexdigest()
    assert not kept.attachments_omitted
    parsed = email.message_from_bytes(kept.raw, policy=policy.default)
    assert parsed["Message-ID"] == kept.message_id
    assert str(parsed["Subject"]) == kept.subject
    assert "Books Ltd" in kept.from_address
    assert "billing@books.example" in kept.from_address


def test_smtp_keeps_exactly_the_bytes_the_server_received(store: Store, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    cid, invoice, clock = _planned(store)
    settings = smtp_settings(port, from_address="billing@books.example", smtp_password="not-in-any-copy")
    sender = MailReminderSender(store, SmtpMailer(settings, clock=clock.now), clock.now, attach_pdf=False)

    Executor(store, FakeLedger([invoice]), sender, clock.now, "w1").run_due(cid)

    [kept] = _kept(store)
    [received] = handler.received
    assert kept.raw == received
    assert kept.state == "sent"
    assert kept.mailer == "smtp"
    assert b"not-in-any-copy" not in kept.raw
    assert b"Bcc" not in kept.raw


def test_a_crash_after_the_hand_over_leaves_the_copy_uncertain_like_the_action(
    store: Store, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    cid, invoice, clock = _planned(store)
    sender = MailReminderSender(
        store, SmtpMailer(smtp_settings(port, from_address="b@books.example")), clock.now, attach_pdf=False
    )
    ledger = FakeLedger([invoice])
    lease = timedelta(seconds=30)

    with pytest.raises(Killed):
        Executor(store, ledger, DiesAfterSending(sender), clock.now, "w1", lease=lease).run_due(cid)
    [kept] = _kept(store)
    assert kept.state == "sending"  # what the dead worker left: the copy was kept before the hand-over

    clock.advance(lease + timedelta(seconds=1))
    restarted = Executor(store, ledger, sender, clock.now, "w2", lease=lease)
    report = restarted.run_due(cid)
    clock.advance(timedelta(days=1))
    restarted.run_due(cid)

    action = reminder_row(store)
    assert report.uncertain == [action.key]
    assert action.state == "uncertain"
    [kept] = _kept(store)  # still one copy: never re-sent, never kept twice
    assert kept.state == "uncertain"
    assert kept.raw == handler.received[0]
    assert len(handler.received) == 1


def test_a_lost_answer_after_data_keeps_an_uncertain_copy(store: Store, sink: tuple[Sink, int]) -> None:
    _handler, port = sink
    cid, invoice, clock = _planned(store)

    class AnswerLost(SmtpMailer):
        def deliver(self, prepared: Any) -> Any:
            from connector.errors import MailTransient

            super().deliver(prepared)
            raise MailTransient("the server's answer never came", maybe_sent=True)

    mailer = AnswerLost(smtp_settings(port, from_address="b@books.example"), clock=clock.now)
    sender = MailReminderSender(store, mailer, clock.now, attach_pdf=False)

    report = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1").run_due(cid)

    assert report.uncertain == [reminder_row(store).key]
    [kept] = _kept(store)
    assert kept.state == "uncertain"


def test_a_refused_attempt_keeps_no_copy_and_the_retry_keeps_one(store: Store, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.refuse_rcpt = "451 4.3.0 try again later"
    cid, invoice, clock = _planned(store)
    sender = MailReminderSender(
        store, SmtpMailer(smtp_settings(port, from_address="b@books.example"), clock=clock.now), clock.now,
        attach_pdf=False,
    )  # fmt: skip
    executor = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1")

    first = executor.run_due(cid)

    assert len(first.retried) == 1
    assert reminder_row(store).state == "planned"
    assert _kept(store) == []  # certainly not handed over: no copy

    handler.refuse_rcpt = ""
    clock.advance(timedelta(hours=1))
    second = executor.run_due(cid)

    assert second.done == [reminder_row(store).key]
    [kept] = _kept(store)
    assert kept.state == "sent"
    assert kept.sent_at == NOW + timedelta(hours=1)  # the attempt that went out
    assert kept.raw == handler.received[0]


def test_a_message_the_server_rejects_for_good_keeps_no_copy(store: Store, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.answer = "554 5.7.1 message refused"
    cid, invoice, clock = _planned(store)
    sender = MailReminderSender(
        store, SmtpMailer(smtp_settings(port, from_address="b@books.example")), clock.now, attach_pdf=False
    )

    report = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1").run_due(cid)

    assert report.failed == [reminder_row(store).key]
    assert _kept(store) == []


def _message(**fields: Any) -> OutgoingMessage:
    base: dict[str, Any] = {
        "to": ["ap@cust.example"],
        "subject": "Invoice INV-1",
        "text": "Please pay.",
        "thread_key": "1:invoice:1",
        "message_key": "action-1",
        "from_address": "billing@books.example",
    }
    return OutgoingMessage(**{**base, **fields})


def test_one_row_per_action_key_whatever_the_attempts(store: Store) -> None:
    cid, _invoice, _clock = _planned(store)
    settings = MailSettings(backend="maildir", outbox_path="/nowhere", from_address="billing@books.example")
    about = Concerning("action-1", cid, "c1", ["1", "1"])
    first = keep(store, prepare(_message(subject="First try"), settings, now=NOW), about, mailer="smtp", at=NOW)
    later = NOW + timedelta(hours=1)
    second = keep(store, prepare(_message(subject="Second try"), settings, now=later), about, mailer="smtp", at=later)

    [kept] = _kept(store)
    assert first == second == kept.id
    assert kept.subject == "Second try"
    assert kept.sent_at == later
    assert kept.invoice_external_ids == ["1"]

    with store.unit_of_work() as uow:  # settling: a copy already sent is never dropped
        archive.settle(uow.session, "action-1", archive.SENT)
        archive.settle(uow.session, "action-1", None)
        uow.commit()
    assert [row.state for row in _kept(store)] == ["sent"]


def test_a_message_over_the_cap_keeps_everything_but_its_attachments() -> None:
    settings = MailSettings(backend="maildir", outbox_path="/nowhere", from_address="billing@books.example")
    pdf = b"%PDF-1.4 " + bytes(range(256)) * 400
    wire = prepare(
        _message(html="<p>Please pay.</p>", attachments=[("Invoice INV-1.pdf", pdf, "application/pdf")]),
        settings,
        now=NOW,
    ).as_bytes()

    whole, omitted = bounded(wire, cap=len(wire))
    assert (whole, omitted) == (wire, False)

    stored, omitted = bounded(wire, cap=len(wire) - 1)
    assert omitted
    assert len(stored) < len(wire) - 1
    parsed = email.message_from_bytes(stored, policy=policy.default)
    assert parsed["Subject"] == "Invoice INV-1"
    assert parsed.get_body(("plain",)).get_content().strip() == "Please pay."
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Please pay.</p>"
    [attachment] = list(parsed.iter_attachments())
    note = attachment.get_content()
    assert "Invoice INV-1.pdf" in note
    assert "application/pdf" in note
    assert str(len(pdf)) in note
