"""Acceptance (issue 14): two practices, three clients each; every client has its own library cadence (its own
steps and an edited template's wording) and its own sender. Through `preview_connection` and one planned and
executed day (the real SMTP client to aiosmtpd on loopback), each client's customers get their own cadence,
wording and From/Reply-To, and nothing of one practice reaches the other.

Library and settings rows are written directly, as connector.library's services store them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection, preview_connection
from connector.outbox.send_window import WindowGate
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import ClientSettings, Customer, Invoice, LibraryItem, LibraryVersion
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.library_rows import seed_library
from tests.support.outbox import invoice_snapshot
from tests.support.smtp import Inbox, smtp_server, smtp_settings

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # a Monday, 14 days after DUE, inside every window below
INSTALL_FROM = "reminders@nudge-install.example"
# The install's starter rules: what an organization without library rows would chase with (none here do).
STARTER = policy_from_dict({"cadences": {"standard": {"steps": [{"id": "due", "offset": 0, "remind": "due_today"}]}}})
PRACTICES = ("North", "South")
CLIENTS = (1, 2, 3)


@dataclass(frozen=True)
class Client:
    practice: str
    number: int
    connection_id: int
    organization_id: int

    @property
    def tag(self) -> str:
        """What tells this client apart in every name, address and wording ("north-2")."""
        return f"{self.practice.lower()}-{self.number}"

    @property
    def step(self) -> str:
        return f"{self.tag}-step"

    @property
    def template(self) -> str:
        return f"{self.practice.lower()}_words_{self.number}"

    @property
    def business(self) -> str:
        return f"{self.practice} Client {self.number} Ltd"

    @property
    def from_name(self) -> str:
        return f"{self.practice} Client {self.number} accounts"

    @property
    def reply_to(self) -> str:
        return f"ar@{self.tag}.example"

    @property
    def customer_address(self) -> str:
        return f"ap@customer-of-{self.tag}.example"


def invoice_of(client: Client) -> InvoiceSnapshot:
    return replace(
        invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20)),
        external_id=f"inv-{client.tag}",
        number=f"INV-{client.tag.upper()}",
        customer_external_id=f"cust-{client.tag}",
        customer_name=f"Customer of {client.tag}",
        emails=(client.customer_address,),
    )


def practice_library(store: Store, organization_id: int, practice: str) -> dict[int, int]:
    """The practice's library: one cadence per client (its own offset, step and template) and the edited
    templates; the cadence item id by client number."""
    cadences: dict[str, Any] = {}
    templates: dict[str, dict[str, str]] = {}
    for number in CLIENTS:
        tag = f"{practice.lower()}-{number}"
        template = f"{practice.lower()}_words_{number}"
        cadences[f"{tag} cadence"] = {
            "time_zone": "Europe/London",
            "send_time": "09:00",
            "steps": [{"id": f"{tag}-step", "offset": 3 * number, "remind": template}],
        }
        templates[template] = {
            "subject.txt": f"[{tag}] {{{{ business_name }}}} asks about {{{{ invoice.number }}}}",
            "body.txt": (
                f"Wording of {tag}: dear {{{{ customer_name }}}}, {{{{ invoice.number }}}} is "
                "{{ invoice.days_overdue }} days overdue.\n{{ business_name }}\n"
            ),
        }
    entries = seed_library(store, organization_id, {"cadences": cadences}, templates=templates)
    return {number: entries[f"cadence:{practice.lower()}-{number} cadence"].item_id for number in CLIENTS}


def two_practices(store: Store) -> list[Client]:
    clients: list[Client] = []
    for practice in PRACTICES:
        with store.unit_of_work() as uow:
            organization_id = uow.organizations.add(f"{practice} Practice").id
            uow.commit()
        cadence_ids = practice_library(store, organization_id, practice)
        for number in CLIENTS:
            with store.unit_of_work() as uow:
                # every client's ledger is called the same: only the client's settings tell them apart
                connection = uow.connections.add(
                    organization_id, "fake", f"{practice}-{number}", "Books", time_zone="Europe/London"
                )
                client = Client(practice, number, connection.id, organization_id)
                invoice = invoice_of(client)
                uow.session.add(
                    Invoice(
                        connection_id=connection.id,
                        external_id=invoice.external_id,
                        number=invoice.number,
                        customer_external_id=invoice.customer_external_id,
                        customer_name=invoice.customer_name,
                        currency=invoice.currency,
                        total=invoice.total.amount,
                        balance=invoice.balance.amount,
                        issue_date=invoice.issue_date,
                        due_date=invoice.due_date,
                        status=invoice.status.value,
                        updated_at=invoice.updated_at,
                        first_seen_at=NOW - timedelta(days=20),
                    )
                )
                uow.session.add(
                    Customer(
                        connection_id=connection.id,
                        external_id=invoice.customer_external_id,
                        name=invoice.customer_name,
                        emails=[client.customer_address],
                    )
                )
                uow.session.add(
                    ClientSettings(
                        connection_id=connection.id,
                        cadence_id=cadence_ids[number],
                        business_name=client.business,
                        from_name=client.from_name,
                        reply_to=client.reply_to,
                    )
                )
                uow.commit()
            clients.append(client)
    return clients


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_each_client_of_each_practice_gets_its_own_cadence_wording_and_sender(store: Store) -> None:
    clients = two_practices(store)

    # The preview: each client's own step and template, nothing else.
    for client in clients:
        rows = preview_connection(store, client.connection_id, STARTER, NOW, 1)
        assert [(row.kind, row.template, row.customer) for row in rows] == [
            ("remind", client.template, f"Customer of {client.tag}")
        ]
        assert f"step '{client.step}'" in rows[0].rule

    # One planned and executed day, through the real SMTP client.
    inbox = Inbox()
    with smtp_server(inbox) as port:
        mailer = SmtpMailer(smtp_settings(port, from_address=INSTALL_FROM, from_name="Nudge install"))
        sender = MailReminderSender(store, mailer, FakeClock(NOW).now, attach_pdf=False)
        gate = WindowGate(store, STARTER)
        for client in clients:
            assert plan_connection(store, client.connection_id, STARTER, NOW).planned == 1
            executor = Executor(store, FakeLedger([invoice_of(client)]), sender, lambda: NOW, "w1", gate=gate)
            assert len(executor.run_due(client.connection_id).done) == 1
    assert len(inbox.received) == len(clients)

    by_recipient = {tuple(rcpts): message for rcpts, message in inbox.received}
    for client in clients:
        message = by_recipient[(client.customer_address,)]
        assert message["From"] == f"{client.from_name} <{INSTALL_FROM}>"
        assert message["Reply-To"] == client.reply_to
        assert message["To"] == client.customer_address
        assert message["Subject"] == f"[{client.tag}] {client.business} asks about INV-{client.tag.upper()}"
        body = text_of(message)
        assert body.startswith(f"Wording of {client.tag}: dear Customer of {client.tag}, INV-{client.tag.upper()} is")
        assert "is 14 days overdue" in body
        assert client.business in body
        # nothing of any other client, of this practice or the other, is in the message
        whole = message.as_string()
        for other in clients:
            if other != client:
                for trace in (other.tag, other.business, other.reply_to, other.customer_address):
                    assert trace not in whole

    # Each action records the library version that planned it: its own client's cadence, in its own practice.
    with store.unit_of_work() as uow:
        for client in clients:
            version_id, step = uow.session.execute(
                select(ActionRow.library_version_id, ActionRow.step).where(
                    ActionRow.connection_id == client.connection_id
                )
            ).one()
            assert step == client.step
            owner = uow.session.execute(
                select(LibraryItem.organization_id, LibraryItem.name)
                .join(LibraryVersion, LibraryVersion.item_id == LibraryItem.id)
                .where(LibraryVersion.id == version_id)
            ).one()
            assert tuple(owner) == (client.organization_id, f"{client.tag} cadence")
