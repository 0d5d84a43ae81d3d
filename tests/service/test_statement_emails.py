"""Statement emails go through the outbox like reminders: a cadence step with `statement: true` and a person's
request both end as one email (exactly once per key) with the statement in the body, the PDF attached, the pay
links of every open invoice, kept in sent messages and listed on the customer's history."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.config import MailSettings
from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import InvalidInput
from connector.mail.maildir import MaildirMailer
from connector.mail.reminders import MailReminderSender
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.receivables.customers import customer_detail
from connector.receivables.statements import StatementMaker, request_statement_email
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection, Customer, SentMessage
from tests.support import clients
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.pdf import pdf_text, words

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "UTC",
                "send_time": "09:30",
                "steps": [{"id": "statement", "offset": 14, "statement": True}],
            }
        }
    }
)


class LinkedLedger(FakeLedger):
    """The fake ledger with a pay link for every invoice."""

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        return f"https://pay.example/invoice/{invoice.external_id}"


def _shop(store: Store) -> tuple[int, int, int, list[InvoiceSnapshot]]:
    """A client with customer c1 ("Cust One"): INV-1 due 2 Nov (14 days late on NOW), INV-2 due 20 Dec."""
    invoices = [
        invoice_snapshot(1, due=date(2026, 11, 2), updated_at=NOW - timedelta(days=20)),
        invoice_snapshot(2, due=date(2026, 12, 20), updated_at=NOW - timedelta(days=20)),
    ]
    cid = connection_with_invoices(
        store, invoices, first_seen_at=NOW - timedelta(days=20), name="Books Ltd", cadence="standard", time_zone="UTC"
    )
    customer_id = clients.customer(store, cid, "c1", "Cust One", emails=["ap@cust.example"])
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, cid)
        assert connection is not None
        org_id = connection.organization_id
    return org_id, cid, customer_id, invoices


def _sender(store: Store, tmp_path: Path, clock: FakeClock) -> MailReminderSender:
    settings = MailSettings(backend="maildir", outbox_path=str(tmp_path), from_address="billing@books.example")
    mailer = MaildirMailer(tmp_path, settings, clock=clock.now)
    return MailReminderSender(store, mailer, clock.now, statements=StatementMaker(store))


def _sent(tmp_path: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(tmp_path.glob("*.eml"))
    ]


def _statement_parts(message: EmailMessage) -> tuple[str, str, str]:
    """(plain text, HTML, the attached PDF's text)."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "statement-Cust-One-2026-11-16.pdf"
    return text.get_content(), html.get_content(), words(pdf_text(attachment.get_payload(decode=True)))


def test_a_statement_step_sends_the_statement_with_the_pdf_once(store: Store, tmp_path: Path) -> None:
    _, cid, _, invoices = _shop(store)
    clock = FakeClock(NOW)
    plan_connection(store, cid, RULES, clock.now())
    with store.unit_of_work() as uow:
        [row] = list(uow.session.scalars(select(ActionRow).where(ActionRow.kind == "remind")))
        assert row.payload["template"] == "statement"
        assert [item["statement"] for item in row.payload["items"]] == [True]
        key = row.key
    report = Executor(store, LinkedLedger(invoices), _sender(store, tmp_path, clock), clock.now, "w1").run_due(cid)
    assert report.done == [key]
    [message] = _sent(tmp_path)
    assert message["Subject"] == "Your statement of account from Books Ltd as of November 16, 2026"
    text, html, pdf = _statement_parts(message)
    # the step was about INV-1; the statement lists every open invoice, INV-2 (not due yet) too
    assert "Invoice INV-1, due Nov 2, 2026: £500.00 (14 days overdue)" in text
    assert "Invoice INV-2, due Dec 20, 2026: £500.00" in text
    assert "https://pay.example/invoice/2" in text
    assert 'href="https://pay.example/invoice/1"' in html
    assert "GBP: £1,000.00 outstanding" in pdf
    assert (
        "Current 1-30 days 31-60 days 61-90 days Over 90 days Total £500.00 £500.00 £0.00 £0.00 £0.00 £1,000.00" in pdf
    )
    with store.unit_of_work() as uow:
        [kept] = list(uow.session.scalars(select(SentMessage)))
        assert kept.action_key == key
    # planned again later: the step is on record, nothing goes out twice
    plan_connection(store, cid, RULES, NOW + timedelta(hours=2))
    with store.unit_of_work() as uow:
        assert len(list(uow.session.scalars(select(ActionRow).where(ActionRow.kind == "remind")))) == 1


def test_a_requested_statement_goes_out_once_however_often_the_form_is_sent(store: Store, tmp_path: Path) -> None:
    org_id, cid, customer_id, invoices = _shop(store)
    clock = FakeClock(NOW)
    request = "ab" * 16
    assert request_statement_email(store, org_id, cid, customer_id, request, "owner@books.example", NOW)
    assert not request_statement_email(store, org_id, cid, customer_id, request, "owner@books.example", NOW)
    with store.unit_of_work() as uow:
        [row] = list(uow.session.scalars(select(ActionRow)))
        assert (row.kind, row.state, row.step) == ("remind", "planned", "statement")
        [activity] = list(uow.session.scalars(select(Activity).where(Activity.kind == "statement.requested")))
        assert activity.actor == "owner@books.example"
    report = Executor(store, LinkedLedger(invoices), _sender(store, tmp_path, clock), clock.now, "w1").run_due(cid)
    assert report.done == [row.key]
    [message] = _sent(tmp_path)
    _, _, pdf = _statement_parts(message)
    assert "INV-1" in pdf
    assert "INV-2" in pdf
    detail = customer_detail(store, org_id, cid, customer_id, NOW)
    [sent] = detail.reminders
    assert (sent.step, sent.template, sent.invoice_numbers) == ("statement", "statement", ("INV-1", "INV-2"))


def test_a_statement_request_is_refused_when_nothing_is_open_or_the_request_is_not_ours(store: Store) -> None:
    org_id, cid, customer_id, _ = _shop(store)
    other = clients.customer(store, cid, "c9", "Owes Nothing")
    with pytest.raises(InvalidInput, match="owes nothing"):
        request_statement_email(store, org_id, cid, other, "cd" * 16, "owner", NOW)
    for hostile in ("", "x" * 32, "AB" * 16, "ab" * 17, "'; drop table actions; --"):
        with pytest.raises(InvalidInput, match="reload the page"):
            request_statement_email(store, org_id, cid, customer_id, hostile, "owner", NOW)
    with store.unit_of_work() as uow:
        assert list(uow.session.scalars(select(ActionRow))) == []


def test_a_hostile_customer_name_is_escaped_in_the_email_and_printed_in_the_pdf(store: Store, tmp_path: Path) -> None:
    org_id, cid, customer_id, invoices = _shop(store)
    hostile = '<script>alert("x")</script> שלום 😀'
    with store.unit_of_work() as uow:
        row = uow.session.get(Customer, customer_id)
        assert row is not None
        row.name = hostile
        row.locale = "de_DE"
        uow.commit()
    clock = FakeClock(NOW)
    assert request_statement_email(store, org_id, cid, customer_id, "ef" * 16, "owner", NOW)
    Executor(store, LinkedLedger(invoices), _sender(store, tmp_path, clock), clock.now, "w1").run_due(cid)
    [message] = _sent(tmp_path)
    html = message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;" in html.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "statement-script-alert-x-script-2026-11-16.pdf"
    pdf = pdf_text(attachment.get_payload(decode=True))
    assert '<script>alert("x")</script>' in pdf
    assert "שלום" in pdf
    assert "1.000,00 £" in pdf  # the customer's locale (pdftotext gives the no-break space as a space)
