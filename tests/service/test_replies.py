"""Replies captured (issue 17), end to end with real servers: a reminder goes out through aiosmtpd with its
per-thread Reply-To; the customer's reply comes back over SMTP (an aiosmtpd server handing it to the intake) or is
fetched from a real dovecot IMAP mailbox by the poller. Each lands on the right customer's timeline and in the
inbox; a person's reply pauses the customer's cadence for `reply_pause_days` and chasing resumes after; an
out-of-office reply is recorded but pauses nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import email
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.policy_parsing import policy_from_dict
from connector.mail.inbound.reply_address import ReplyAddresses, derive_key
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.receivables.activity import list_activity
from connector.receivables.customers import customer_detail
from connector.receivables.inbox import REPLIES, inbox, mark_reply_handled
from connector.receivables.invoices import invoice_detail
from connector.replies.imap import ImapPoller
from connector.replies.intake import AUTO_REPLY, HUMAN, UNMATCHED, ReplyIntake
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Customer, InboundMessage, Invoice
from tests.support.clock import FakeClock
from tests.support.imap_server import ImapAccount, append, dovecot_server, unseen
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.smtp import smtp_server, smtp_settings

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # day 14: the first reminder goes out
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "UTC",
                "send_time": "09:30",
                "steps": [
                    {"id": "late", "offset": 14, "remind": "firm"},
                    {"id": "later", "offset": 18, "remind": "final_notice"},  # Friday 20 November
                ],
            }
        }
    }
)
ADDRESSES = ReplyAddresses("replies@nudge.example", derive_key("the tests' session secret"))
PAUSE_DAYS = 5


@dataclass
class Inbound:
    """An SMTP server's handler: each message it accepts goes to the intake (451 when it cannot be stored)."""

    intake: ReplyIntake
    clock: FakeClock
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content)
        self.received.append(raw)
        try:
            self.intake.receive(raw, source="smtp", now=self.clock.now())
        except Exception:
            return "451 not stored, try again later"
        return "250 stored"


@dataclass
class Sink:
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.original_content))
        return "250 OK"


@dataclass(frozen=True)
class Sent:
    connection_id: int
    org_id: int
    customer_id: int
    invoice_id: int
    reply_to: str
    message_id: str
    subject: str


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
def imap() -> Iterator[ImapAccount]:
    with dovecot_server() as account:
        yield account


def _intake(store: Store) -> ReplyIntake:
    return ReplyIntake(store, ADDRESSES, pause_days=PAUSE_DAYS)


def send_reminder(store: Store, port: int, sink: Sink, clock: FakeClock) -> Sent:
    """One overdue invoice of "Cust One"; the executor sends its reminder through aiosmtpd."""
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(
        store, [invoice], first_seen_at=NOW - timedelta(days=20), name="Books Ltd", cadence="standard", time_zone="UTC"
    )
    with store.unit_of_work() as uow:
        uow.session.add(Customer(connection_id=cid, external_id="c1", name="Cust One", emails=["ap@cust.example"]))
        uow.commit()
    plan_connection(store, cid, RULES, clock.now())
    settings = smtp_settings(port, from_address="billing@books.example")
    sender = MailReminderSender(
        store, SmtpMailer(settings, clock=clock.now), clock.now, attach_pdf=False, reply_addresses=ADDRESSES
    )
    report = Executor(store, FakeLedger([invoice]), sender, clock.now, "w1").run_due(cid)
    assert len(report.done) == 1
    [raw] = sink.received
    reminder = email.message_from_bytes(raw, policy=policy.default)
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, cid)
        assert connection is not None
        customer_id = uow.session.scalars(select(Customer.id).where(Customer.connection_id == cid)).one()
        invoice_id = uow.session.scalars(select(Invoice.id).where(Invoice.connection_id == cid)).one()
        org_id = connection.organization_id
    reply_to = reminder["Reply-To"].addresses[0].addr_spec
    return Sent(cid, org_id, customer_id, invoice_id, reply_to, reminder["Message-ID"], str(reminder["Subject"]))


def customer_reply(
    sent: Sent, *, to: str = "", text: str = "", message_id: str = "<reply-1@cust.example>", **headers: str
) -> bytes:
    reply = EmailMessage()
    reply["From"] = "Jane Buyer <ap@cust.example>"
    reply["To"] = to or sent.reply_to
    reply["Subject"] = headers.pop("Subject", f"Re: {sent.subject}")
    reply["Message-ID"] = message_id
    for name, value in headers.items():
        reply[name.replace("_", "-")] = value
    reply.set_content(
        text
        or (
            "We are paying this on Friday, sorry for the delay.\n\n"
            f"On Mon, 16 Nov 2026 at 10:00, Books Ltd <billing@books.example> wrote:\n> {sent.subject}\n"
        )
    )
    return reply.as_bytes()


def stored(store: Store) -> list[InboundMessage]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        uow.session.expunge_all()
        return rows


def reminder_kinds(store: Store, cid: int, step: str) -> list[str]:
    with store.unit_of_work() as uow:
        return [
            row.kind
            for row in uow.session.scalars(
                select(ActionRow).where(ActionRow.connection_id == cid).order_by(ActionRow.id)
            )
            if row.step == step
        ]


def assert_on_the_customers_timeline_and_in_the_inbox(store: Store, sent: Sent, text: str) -> None:
    activity = list_activity(store, sent.org_id, customer_id=sent.customer_id).items
    replies = [entry for entry in activity if entry.kind == "reply.human"]
    assert [entry.detail["text"] for entry in replies] == [text]
    assert replies[0].detail["customer"] == "c1"
    detail = customer_detail(store, sent.org_id, sent.connection_id, sent.customer_id, NOW)
    assert [(line.kind, line.text) for line in detail.replies] == [(HUMAN, text)]
    story = invoice_detail(store, sent.org_id, sent.connection_id, sent.invoice_id, NOW)
    [reply] = [entry for entry in story.timeline if entry.type == "reply"]
    assert reply.detail["text"] == text
    assert reply.words.startswith(f"The customer replied (Re: Invoice INV-1 is now 14 days overdue): “{text}”.")
    group = inbox(store, sent.org_id).group(REPLIES)
    assert group.count == 1
    [item] = group.items
    assert (item.customer_id, item.detail, item.customer_name) == (sent.customer_id, text, "Cust One")


def test_a_reply_over_smtp_to_the_reply_address_lands_on_the_customers_timeline_and_in_the_inbox(
    store: Store, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    clock = FakeClock(NOW)
    sent = send_reminder(store, port, handler, clock)
    assert sent.reply_to.startswith("replies+")
    assert sent.reply_to.endswith("@nudge.example")
    assert ADDRESSES.read(sent.reply_to) is not None

    clock.advance(timedelta(hours=2))
    inbound = Inbound(_intake(store), clock)
    with smtp_server(inbound) as inbound_port, smtplib.SMTP("127.0.0.1", inbound_port, timeout=10) as smtp:
        smtp.sendmail("ap@cust.example", [sent.reply_to], customer_reply(sent))
        smtp.sendmail("ap@cust.example", [sent.reply_to], customer_reply(sent))  # delivered twice: stored once

    [row] = stored(store)
    assert (row.kind, row.route, row.source, row.customer_external_id) == (HUMAN, "token", "smtp", "c1")
    assert row.connection_id == sent.connection_id
    assert row.paused_until == date(2026, 11, 21)
    assert_on_the_customers_timeline_and_in_the_inbox(store, sent, "We are paying this on Friday, sorry for the delay.")

    mark_reply_handled(store, sent.org_id, row.id, "owner@books.example", clock.now(), connection_ids=None)
    assert inbox(store, sent.org_id).group(REPLIES).count == 0


def test_a_reply_fetched_over_imap_lands_on_the_customers_timeline_and_a_broken_one_never_stops_the_poll(
    store: Store, sink: tuple[Sink, int], imap: ImapAccount
) -> None:
    handler, port = sink
    clock = FakeClock(NOW)
    sent = send_reminder(store, port, handler, clock)
    append(imap, b"\x00\xff not a message at all \r\n\r\n\xfe")
    append(imap, customer_reply(sent, In_Reply_To=sent.message_id))
    append(imap, customer_reply(sent, to="replies@nudge.example", message_id="<stranger@x.example>", text="hello?"))
    settings = replace(
        smtp_settings(port),
        imap_host=imap.host,
        imap_port=imap.port,
        imap_security="none",
        imap_username=imap.username,
        imap_password=imap.password,
    )
    poller = ImapPoller(settings, _intake(store), clock.now, timeout=10)

    report = poller.poll()

    assert (report.error, report.fetched, report.stored, report.failed) == ("", 3, 3, 0)
    assert unseen(imap) == 0  # each marked \Seen once stored
    kinds = sorted(row.kind for row in stored(store))
    assert kinds == [HUMAN, UNMATCHED, UNMATCHED]
    [human] = [row for row in stored(store) if row.kind == HUMAN]
    assert human.source == "imap"
    assert human.sent_message_id is not None
    assert_on_the_customers_timeline_and_in_the_inbox(store, sent, "We are paying this on Friday, sorry for the delay.")
    assert poller.poll().fetched == 0  # nothing unseen is left


def test_the_imap_poll_survives_a_server_that_is_not_there_and_a_wrong_password(
    store: Store, imap: ImapAccount
) -> None:
    settings = replace(
        smtp_settings(1),
        imap_host=imap.host,
        imap_port=imap.port,
        imap_security="none",
        imap_username=imap.username,
        imap_password="wrong-secret-password",
    )
    report = ImapPoller(settings, _intake(store), lambda: NOW, timeout=5).poll()
    assert "refused the login" in report.error
    assert "wrong-secret-password" not in report.error
    gone = ImapPoller(replace(settings, imap_port=1), _intake(store), lambda: NOW, timeout=5).poll()
    assert gone.error.startswith("cannot reach the IMAP server")


@pytest.mark.parametrize("automatic", [False, True], ids=["human reply pauses", "out of office does not"])
def test_a_human_reply_pauses_the_cadence_and_an_out_of_office_does_not(
    store: Store, sink: tuple[Sink, int], automatic: bool
) -> None:
    handler, port = sink
    clock = FakeClock(NOW)
    sent = send_reminder(store, port, handler, clock)
    clock.advance(timedelta(days=1))  # Tuesday 17th: the reply
    headers = {"Auto_Submitted": "auto-replied", "Subject": "Out of Office: " + sent.subject} if automatic else {}
    outcome = _intake(store).receive(customer_reply(sent, **headers), source="smtp", now=clock.now())
    assert outcome.kind == (AUTO_REPLY if automatic else HUMAN)

    plan_connection(store, sent.connection_id, RULES, datetime(2026, 11, 20, 10, 0, tzinfo=UTC))  # step "later"
    if automatic:
        assert reminder_kinds(store, sent.connection_id, "later") == ["remind"]
        assert inbox(store, sent.org_id).group(REPLIES).count == 0  # recorded, nothing to do
        activity = list_activity(store, sent.org_id, customer_id=sent.customer_id).items
        assert [entry.kind for entry in activity if entry.kind.startswith("reply.")] == ["reply.auto_reply"]
        return
    assert reminder_kinds(store, sent.connection_id, "later") == ["hold"]  # paused until Sunday the 22nd
    # Monday 23rd, after the pause
    plan_connection(store, sent.connection_id, RULES, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    plan_connection(store, sent.connection_id, RULES, datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    assert reminder_kinds(store, sent.connection_id, "later") == ["hold", "remind"]  # resumes after the pause


def test_a_reply_is_matched_by_its_headers_when_it_comes_to_the_plain_address(
    store: Store, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    clock = FakeClock(NOW)
    sent = send_reminder(store, port, handler, clock)
    raw = customer_reply(sent, to="replies@nudge.example", References=f"<x@y> {sent.message_id}")
    outcome = _intake(store).receive(raw, source="smtp", now=clock.now())
    [row] = stored(store)
    assert (outcome.kind, row.route, row.customer_external_id) == (HUMAN, "headers", "c1")


def test_a_forged_token_or_unknown_thread_is_kept_unmatched_and_changes_nothing(
    store: Store, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    clock = FakeClock(NOW)
    sent = send_reminder(store, port, handler, clock)
    local, domain = sent.reply_to.split("@")
    forged = local[:-1] + ("0" if local[-1] != "0" else "1") + "@" + domain
    other = ReplyAddresses("replies@nudge.example", derive_key("someone else's secret"))
    outcome = _intake(store).receive(customer_reply(sent, to=forged), source="smtp", now=clock.now())
    assert outcome.kind == UNMATCHED
    again = _intake(store).receive(
        customer_reply(sent, to=other.address(ADDRESSES.read(sent.reply_to)), message_id="<r2@c>"),  # type: ignore[arg-type]
        source="smtp",
        now=clock.now(),
    )
    assert again.kind == UNMATCHED
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(Customer.paused_until)).one() is None
    assert inbox(store, sent.org_id).group(REPLIES).count == 0
