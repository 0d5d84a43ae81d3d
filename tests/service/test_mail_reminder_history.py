"""`MailReminderSender` tells the template the truth about earlier contact, and states announced fees.

A real store (SQLite and PostgreSQL) holds earlier reminders in every state; the reminder goes out
through the real `SmtpMailer` to an aiosmtpd server on loopback and is read back as it arrived. Only
reminders that were sent (state `done`) to the same customer and listed one of the invoices count,
whether they named the invoice in their row or only in a grouped reminder's payload.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from connector.domain.actions import Action, ActionKind, FeeWarning, ReminderItem
from connector.domain.model import InvoiceSnapshot
from connector.domain.money import Money
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.codec import action_to_json
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.smtp import smtp_server, smtp_settings

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
DUE = date(2026, 10, 1)
CLAIMS_OF_CONTACT = ("in touch", "wrote to you", "still unpaid", "again", "a few times")


@dataclass
class Inbox:
    """An aiosmtpd handler keeping each message as it arrived."""

    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(bytes(envelope.content), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"

    def last_text(self) -> str:
        part = self.received[-1].get_body(("plain",))
        assert isinstance(part, EmailMessage)
        return str(part.get_content())

    def last_html(self) -> str:
        part = self.received[-1].get_body(("html",))
        assert isinstance(part, EmailMessage)
        return str(part.get_content())


@dataclass
class World:
    store: Store
    inbox: Inbox
    sender: MailReminderSender
    connection_id: int
    invoices: list[InvoiceSnapshot]


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    invoices = [invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=40)) for n in (1, 2, 3)]
    cid = connection_with_invoices(
        store, invoices, first_seen_at=NOW - timedelta(days=40), name="Books Ltd", time_zone="Europe/London"
    )
    inbox = Inbox()
    with smtp_server(inbox) as port:
        mailer = SmtpMailer(smtp_settings(port, from_address="billing@books.example"))
        yield World(
            store, inbox, MailReminderSender(store, mailer, FakeClock(NOW).now, attach_pdf=False), cid, invoices
        )


def item(invoice: InvoiceSnapshot, template: str = "final_notice", warning: FeeWarning | None = None) -> ReminderItem:
    assert invoice.due_date is not None
    return ReminderItem(
        invoice_external_id=invoice.external_id,
        number=invoice.number,
        due_date=invoice.due_date,
        balance=invoice.balance,
        total=invoice.total,
        days_overdue=(NOW.date() - invoice.due_date).days,
        step_id="final",
        template=template,
        member_key=f"member-{invoice.external_id}-{template}",
        fee_warning=warning,
    )


def reminder(
    world: World,
    key: str,
    invoices: list[InvoiceSnapshot],
    *,
    customer: str = "c1",
    template: str = "final_notice",
    warning: FeeWarning | None = None,
) -> Action:
    return Action(
        key=key,
        kind=ActionKind.REMIND,
        connection_id=str(world.connection_id),
        customer_external_id=customer,
        invoice_external_ids=tuple(invoice.external_id for invoice in invoices),
        scheduled_at=NOW,
        local_date=NOW.date(),
        step_id="final",
        rule="final notice",
        template=template,
        customer_name="Cust One",
        items=tuple(item(invoice, template, warning) for invoice in invoices),
    )


def earlier(world: World, action: Action, state: str, sent_at: datetime, kind: str = "remind") -> None:
    """An outbox row for `action` as the planner stores it, left in `state` at `sent_at`."""
    with world.store.unit_of_work() as uow:
        uow.session.add(
            ActionRow(
                key=action.key,
                connection_id=world.connection_id,
                kind=kind,
                step=action.step_id,
                invoice_external_id=action.invoice_external_ids[0] if len(action.invoice_external_ids) == 1 else "",
                customer_external_id=action.customer_external_id,
                state=state,
                scheduled_at=sent_at,
                payload=action_to_json(action),
                created_at=sent_at,
                updated_at=sent_at,
            )
        )
        uow.commit()


def at(day: int) -> datetime:
    return datetime(2026, 11, day, 9, 30, tzinfo=UTC)


def test_only_sent_reminders_listing_the_invoice_count_as_earlier_contact(world: World) -> None:
    one, two, three = world.invoices
    earlier(world, reminder(world, "sent-single", [one], template="gentle_nudge"), "done", at(5))
    # a grouped reminder keeps the row's invoice empty: the invoice is found in its payload
    earlier(world, reminder(world, "sent-grouped", [two, one], template="firm"), "done", at(19))
    earlier(world, reminder(world, "planned", [one]), "planned", at(25))
    earlier(world, reminder(world, "uncertain", [one]), "uncertain", at(26))
    earlier(world, reminder(world, "failed", [one]), "failed", at(27))
    earlier(world, reminder(world, "other-invoice", [three]), "done", at(3))
    earlier(world, reminder(world, "other-grouped", [two, three]), "done", at(4))
    earlier(world, reminder(world, "other-customer", [one], customer="c9"), "done", at(2))
    earlier(world, reminder(world, "a-note", [one]), "done", at(1), kind="note")

    world.sender.send(reminder(world, "now", [one]), [one], FakeLedger(world.invoices))

    text = world.inbox.last_text()
    assert str(world.inbox.received[-1]["Subject"]) == "Final notice: invoice INV-1 (£500.00) is still unpaid"
    assert (
        "We've been in touch 2 times since November 5, 2026 about invoice INV-1 for £500.00, "
        "most recently on November 19, 2026." in text
    )
    assert "We've been in touch 2 times since November 5, 2026" in world.inbox.last_html()


def test_a_sent_reminder_dates_by_the_customers_day_it_went_out(world: World) -> None:
    one = world.invoices[0]
    # 23:30 UTC on 20 October is 00:30 on 21 October in London (summer time): the customer's day counts
    earlier(world, reminder(world, "sent", [one], template="firm"), "done", datetime(2026, 10, 20, 23, 30, tzinfo=UTC))

    world.sender.send(reminder(world, "now", [one]), [one], FakeLedger(world.invoices))

    assert "We wrote to you on October 21, 2026 about invoice INV-1 for £500.00." in world.inbox.last_text()


def test_planned_or_uncertain_reminders_alone_are_no_earlier_contact(world: World) -> None:
    one = world.invoices[0]
    earlier(world, reminder(world, "planned", [one], template="gentle_nudge"), "planned", at(20))
    earlier(world, reminder(world, "uncertain", [one], template="firm"), "uncertain", at(25))
    earlier(world, reminder(world, "cancelled", [one], template="firm"), "cancelled", at(26))

    world.sender.send(reminder(world, "now", [one]), [one], FakeLedger(world.invoices))

    subject = str(world.inbox.received[-1]["Subject"])
    text = world.inbox.last_text()
    assert subject == "Final notice: invoice INV-1 (£500.00) is unpaid"
    assert "Invoice INV-1 for £500.00 was due on October 1, 2026 and is now 60 days overdue." in text
    for said in (subject, text, world.inbox.last_html()):
        for claim in CLAIMS_OF_CONTACT:
            assert claim not in said


def test_the_fee_warning_of_each_item_is_stated_for_its_invoice(world: World) -> None:
    one, two, _ = world.invoices
    warning = FeeWarning("standard", "Late fee", "flat", date(2026, 12, 14), amount=Money.of("40", "GBP"))
    action = replace(
        reminder(world, "now", [one, two], template="firm"), items=(item(one, "firm", warning), item(two, "firm"))
    )

    world.sender.send(action, [two, one], FakeLedger(world.invoices))

    text = world.inbox.last_text()
    assert (
        "Under our payment terms a late fee of £40.00 will be added to invoice INV-1 "
        "if it is still unpaid on December 14, 2026." in text
    )
    assert text.count("Under our payment terms") == 1
    assert "a late fee of <strong>£40.00</strong> will be added to invoice INV-1" in world.inbox.last_html()
