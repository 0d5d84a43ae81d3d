"""A reminder end to end: QuickBooks emulator → sync → plan → executor → real SMTP server (aiosmtpd).

What arrives must have the customer as recipient, the amount formatted for the customer's locale,
the emulator's payment link and invoice PDF, and the second reminder of the invoice must thread
under the first.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.bootstrap import Services
from connector.config import settings_for_tests
from connector.connections.connect import begin_connect, complete_connect
from connector.domain.policy_parsing import policy_from_dict
from connector.registry import Registry
from connector.review import approve, review_of
from connector.storage.tables import Action, Customer
from connector.worker.turn import run_connection
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.clock import FakeClock
from tests.support.databases import Database
from tests.support.smtp import smtp_server

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, 10:00 in London: inside the send window
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "late-3", "offset": 3, "remind": "firm"},
                    {"id": "late-10", "offset": 10, "remind": "final_notice"},
                ],
            }
        }
    }
)


@dataclass
class Inbox:
    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        parsed = [email.message_from_bytes(raw, policy=policy.default) for _, raw in self.received]
        return [m for m in parsed if isinstance(m, EmailMessage)]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        yield inbox, port


@pytest.fixture
def qbo() -> Iterator[QuickBooksKit]:
    with QuickBooksKit() as kit:
        yield kit


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_reminders_arrive_by_smtp_threaded_with_link_pdf_and_local_amounts(
    database: Database, smtp: tuple[Inbox, int], qbo: QuickBooksKit, tmp_path: Path
) -> None:
    inbox, port = smtp
    clock = FakeClock(T0)
    qbo.set_now(T0)
    realm = qbo.add_company("Thames Lettings Ltd", "GBP")
    customer = qbo.add_customer(realm, "Bright Bakery", "accounts@bright-bakery.example")
    due = (T0 - timedelta(days=3)).date()
    invoice = qbo.add_invoice(realm, customer, "TL-1042", Decimal("1234.50"), "", due - timedelta(days=30), due)
    provider = qbo.settings("http://127.0.0.1/cb")
    base = settings_for_tests(database.url)
    settings = replace(
        base,
        providers={"quickbooks": provider},
        rules=RULES,
        mail=replace(
            base.mail,
            backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            from_name="Thames Lettings accounts",
            from_address="accounts@thames-lettings.example",
            reply_to="ar@thames-lettings.example",
        ),
    )
    store = database.store()
    try:
        store.upgrade()
        services = Services(settings=settings, store=store, registry=Registry.discover(settings.providers), clock=clock)
        with store.unit_of_work() as uow:
            org_id = uow.organizations.add("Practice").id
            uow.commit()
        spec = services.registry.spec("quickbooks")
        request = begin_connect(spec, provider)  # the real OAuth flow, the emulator's consent page approving
        params = qbo.approve(request.url, [realm])
        [connected] = complete_connect(
            store, services.vault, spec, provider, org_id, params, request.state, request.code_verifier, T0
        )
        connection_id = connected.connection_id
        with store.unit_of_work() as uow:
            connection = uow.connections.by_id(connection_id)
            assert connection is not None
            assert connection.home_currency == "GBP"  # from the company's preferences
            connection.cadence, connection.time_zone = "standard", "Europe/London"
            uow.commit()
        reminders = services.reminder_sender()

        # A new connection starts in review: the first turn syncs and plans, nothing goes out.
        in_review = run_connection(services, connection_id, "test-worker", reminders=reminders)
        assert in_review.sync.changed == 1
        assert in_review.execution.done == []
        assert inbox.received == []
        waiting = [item for c in review_of(store, connection_id).customers for g in c.groups for item in g.items]
        assert [item.kind.value for item in waiting] == ["remind"]
        approve(store, connection_id, "owner@thames-lettings.example", T0)  # `nudge approve --all`, as the user
        first = run_connection(services, connection_id, "test-worker", reminders=reminders)
        assert len(first.execution.done) == 1
        with store.unit_of_work() as uow:  # what a user sets in Nudge: the customer reads British English
            row = uow.session.scalars(select(Customer).where(Customer.external_id == customer)).one()
            row.locale = "en_GB"
            uow.commit()
        clock.moment = T0 + timedelta(days=7)
        qbo.set_now(clock.moment)
        second = run_connection(services, connection_id, "test-worker", reminders=reminders)
        assert len(second.execution.done) == 1

        assert [rcpt for rcpt, _ in inbox.received] == [["accounts@bright-bakery.example"]] * 2
        one, two = inbox.messages()
        assert one["To"] == "accounts@bright-bakery.example"
        # reminders come from the client's business: the connection's name (no client settings set here), at the
        # install's From address
        assert one["From"] == "Thames Lettings Ltd <accounts@thames-lettings.example>"
        assert one["Reply-To"] == "ar@thames-lettings.example"
        assert "TL-1042" in one["Subject"]
        assert "TL-1042" in _text(one)
        link = qbo.emulator.store.invoice_link(realm, invoice, qbo.url)
        assert link in _text(one)
        [pdf] = [part for part in one.iter_attachments() if part.get_content_type() == "application/pdf"]
        assert pdf.get_filename() == "Invoice TL-1042.pdf"
        assert pdf.get_content().startswith(b"%PDF")
        assert "£1,234.50" in _text(two)  # the second one went out after the customer's locale was set
        assert two["In-Reply-To"] == one["Message-ID"]
        assert one["Message-ID"] in two["References"]
        with store.unit_of_work() as uow:
            sent = uow.session.scalars(select(Action).where(Action.kind == "remind").order_by(Action.id)).all()
            assert [a.state for a in sent] == ["done", "done"]
            assert [a.external_ref for a in sent] == [one["Message-ID"], two["Message-ID"]]
    finally:
        store.dispose()
