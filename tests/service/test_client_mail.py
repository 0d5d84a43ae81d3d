"""Reminders come from the client's business (issue 14), through the real SMTP client to aiosmtpd on loopback:
the client's From name at the install's From address, its Reply-To, the customer's own recipients, the
customer's (else the client's) locale, and the organization's edited library template."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select

from connector.domain.policy_parsing import policy_from_dict
from connector.mail.reminders import LibraryTemplates, MailReminderSender
from connector.mail.rendering import TEMPLATE_DIR
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.storage import Store
from connector.storage.tables import ClientSettings, Customer
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.library_rows import add_item, seed_library
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.smtp import Inbox, smtp_server, smtp_settings

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # 14 days late, inside the London send window
STANDARD = {
    "time_zone": "Europe/London",
    "send_time": "09:30",
    "steps": [{"id": "late", "offset": 14, "remind": "firm"}],
}
RULES = policy_from_dict({"cadences": {"standard": STANDARD}})


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def send_one(store: Store, cid: int) -> tuple[list[str], EmailMessage]:
    """Plan now and carry the plan out through the real SMTP client; the one message that arrived."""
    plan_connection(store, cid, RULES, NOW)
    inbox = Inbox()
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    with smtp_server(inbox) as port:
        mailer = SmtpMailer(
            smtp_settings(port, from_address="reminders@nudge-install.example", from_name="Nudge install")
        )
        sender = MailReminderSender(store, mailer, FakeClock(NOW).now, attach_pdf=False)
        report = Executor(store, FakeLedger([invoice]), sender, lambda: NOW, "w1").run_due(cid)
    assert report.done
    [received] = inbox.received
    return received


def client(store: Store) -> int:
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(
        store, [invoice], first_seen_at=NOW - timedelta(days=20), name="Acme Ledger", cadence="standard"
    )
    with store.unit_of_work() as uow:
        uow.session.add(
            Customer(
                connection_id=cid,
                external_id="c1",
                name="Cust One",
                emails=["ap@cust.example"],
                cc_emails=["boss@cust.example"],
            )
        )
        uow.commit()
    return cid


def test_without_client_settings_the_connection_name_is_the_sender(store: Store) -> None:
    rcpts, message = send_one(store, client(store))
    assert message["From"] == "Acme Ledger <reminders@nudge-install.example>"
    assert message["Reply-To"] is None
    assert (message["To"], message["Cc"]) == ("ap@cust.example", "boss@cust.example")
    assert sorted(rcpts) == ["ap@cust.example", "boss@cust.example"]
    assert "Acme Ledger" in text_of(message)


def test_the_clients_sender_recipients_locale_and_edited_template(store: Store) -> None:
    cid = client(store)
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(cid)
        assert connection is not None
        org_id = connection.organization_id
        uow.session.add(
            ClientSettings(
                connection_id=cid,
                business_name="Bright Bakery Ltd",
                from_name="Bright Bakery accounts",
                reply_to="accounts@bright-bakery.example",
                locale="de_DE",
            )
        )
        customer = uow.session.scalars(select(Customer)).one()
        customer.recipients_to = ["payables@cust.example"]
        customer.recipients_cc = []
        uow.commit()
    firm = {part: (TEMPLATE_DIR / "firm" / part).read_text(encoding="utf-8") for part in ("body.txt", "body.html")}
    firm["subject.txt"] = "{{ business_name }}: please settle {{ invoice.number }} ({{ invoice.balance }})"
    seed_library(store, org_id, {"cadences": {"standard": STANDARD}}, templates={"firm": firm})
    rcpts, message = send_one(store, cid)
    assert message["From"] == "Bright Bakery accounts <reminders@nudge-install.example>"
    assert message["Reply-To"] == "accounts@bright-bakery.example"
    assert (message["To"], message["Cc"]) == ("payables@cust.example", None)
    assert rcpts == ["payables@cust.example"]
    assert message["Subject"] == "Bright Bakery Ltd: please settle INV-1 (500,00\xa0£)"  # German amounts
    assert "Bright Bakery Ltd" in text_of(message)


def test_the_customers_locale_beats_the_clients(store: Store) -> None:
    cid = client(store)
    with store.unit_of_work() as uow:
        uow.session.add(ClientSettings(connection_id=cid, locale="de_DE"))
        uow.session.scalars(select(Customer)).one().locale = "en_GB"
        uow.commit()
    _, message = send_one(store, cid)
    assert "£500.00" in text_of(message)


def test_only_edited_template_parts_become_overrides(store: Store) -> None:
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id
        uow.commit()
    starter_copy = {
        part: (TEMPLATE_DIR / "firm" / part).read_text(encoding="utf-8") for part in ("subject.txt", "body.txt")
    }
    add_item(store, org_id, "template", "firm", starter_copy)
    add_item(store, org_id, "template", "thanks", {"subject.txt": "Thank you", "notes": "not a part"})
    templates = LibraryTemplates()
    with store.unit_of_work() as uow:
        assert templates.for_organization(uow.session, org_id) == {"thanks/subject.txt": "Thank you"}
        assert templates.for_organization(uow.session, org_id + 1) == {}


def test_a_ledger_name_with_a_line_break_is_one_line_in_from(store: Store) -> None:
    cid = client(store)
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(cid)
        assert connection is not None
        connection.name = "Acme\r\nBcc: victim@example.com"
        uow.commit()
    rcpts, message = send_one(store, cid)
    assert message["From"] == '"Acme Bcc: victim@example.com" <reminders@nudge-install.example>'
    assert message["Bcc"] is None
    assert sorted(rcpts) == ["ap@cust.example", "boss@cust.example"]
