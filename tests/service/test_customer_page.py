"""The customer page's service (issue 17, connector.receivables.customer_page), on SQLite and PostgreSQL: what a
customer may do through their link and what follows — the overrides the planner obeys (a promise waits, a dispute
stops reminders and fees, "already paid" holds reminders a few days), a request in the inbox for a person
(a plan approved as asked or edited, with the customer told over real SMTP; declined; handled), the timelines and,
where the client wants it, one ledger note per request in the outbox. Hostile input is refused naming the field;
another customer's invoice is never reachable."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from connector.domain.actions import BrokenPromise
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import ChangeRefused, InvalidInput, UnknownRecord
from connector.library.settings import update_client_settings
from connector.mail.smtp import SmtpMailer
from connector.outbox.codec import action_from_json
from connector.outbox.planning import plan_connection, preview_connection
from connector.receivables import customer_page as page
from connector.receivables.inbox import REQUESTS, inbox, open_count
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Customer, CustomerRequest, Invoice, InvoiceOverride, PaymentPlan
from connector.storage.tables import Payment as PaymentRow
from tests.support.clients import Client, client, customer, invoice
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.smtp import Inbox, smtp_server, smtp_settings

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # Monday 16 November, London
TODAY = date(2026, 11, 16)
OWNER = "owner@practice.example"


def _world(store: Store) -> tuple[Client, int, int, int]:
    """A client with customer c1 (two invoices) and customer c2 (one): (client, c1's id, INV-1's id, INV-9's id)."""
    c = client(store)
    c1 = customer(store, c.connection_id, "c1", "Cust One", emails=["ap@cust.example"])
    customer(store, c.connection_id, "c2", "Other Co", emails=["ap@other.example"])
    inv1 = invoice(store, c.connection_id, "1", customer_external_id="c1")
    invoice(store, c.connection_id, "2", customer_external_id="c1", balance="120.00")
    other = invoice(store, c.connection_id, "9", customer_external_id="c2")
    return c, c1, inv1, other


def _activities(store: Store, kind_prefix: str) -> list[Activity]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Activity).where(Activity.kind.startswith(kind_prefix))))
        uow.session.expunge_all()
        return rows


def test_the_page_lists_the_customers_open_invoices_only(store: Store) -> None:
    c, c1, _, _ = _world(store)
    invoice(store, c.connection_id, "3", customer_external_id="c1", status="paid")
    view = page.load_page(store, c.connection_id, c1, NOW)
    assert (view.customer_name, view.business_name, view.today) == ("Cust One", "Books Ltd", TODAY)
    assert [(i.number, i.balance, i.days_overdue) for i in view.invoices] == [
        ("INV-1", Money.of("500.00", "GBP"), 14),
        ("INV-2", Money.of("120.00", "GBP"), 14),
    ]
    with pytest.raises(UnknownRecord):
        page.load_page(store, c.connection_id, 999_999, NOW)
    with pytest.raises(UnknownRecord):  # the customer exists, but not under that client
        page.load_page(store, c.connection_id + 1, c1, NOW)


def test_another_customers_invoice_is_never_reachable(store: Store) -> None:
    c, c1, inv1, other = _world(store)
    paid = invoice(store, c.connection_id, "4", customer_external_id="c1", status="paid")
    for invoice_id in (other, paid, 0, -1, 2**40, "1", None):
        with pytest.raises(UnknownRecord):
            page.invoice_for_documents(store, c.connection_id, c1, invoice_id)
        with pytest.raises(UnknownRecord):
            page.dispute_invoice(store, c.connection_id, c1, invoice_id, reason="wrong", now=NOW)
        with pytest.raises(UnknownRecord):
            page.report_paid(store, c.connection_id, c1, invoice_id, paid_on="2026-11-10", reference="r", now=NOW)
        with pytest.raises(UnknownRecord):
            page.ask_for_plan(store, c.connection_id, c1, invoice_id, installments=[], now=NOW)
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(InvoiceOverride)).all() == []
        assert uow.session.scalars(select(CustomerRequest)).all() == []
    assert page.invoice_for_documents(store, c.connection_id, c1, inv1).number == "INV-1"


def test_a_promise_sets_the_customers_override_and_lands_in_the_timeline(store: Store) -> None:
    c, c1, _, _ = _world(store)
    view = page.promise_to_pay(store, c.connection_id, c1, until="2026-11-27", amount="620", now=NOW)
    assert (view.kind, view.state, view.hold_until) == (page.PROMISE, page.RECORDED, date(2026, 11, 27))
    assert view.detail == {"until": "2026-11-27", "amount": "620.00", "currency": "GBP"}
    with store.unit_of_work() as uow:
        row = uow.session.get(Customer, c1)
        assert row is not None
        assert (row.promise_to_pay_until, row.promise_amount, row.promise_currency) == (
            date(2026, 11, 27),
            Decimal("620.00"),
            "GBP",
        )
    [activity] = _activities(store, "customer_page.")
    assert activity.kind == "customer_page.promise"
    assert activity.detail["customer_id"] == c1
    assert "Cust One promised to pay 620.00 GBP by 2026-11-27" in activity.detail["said"]
    shown = page.load_page(store, c.connection_id, c1, NOW)
    assert (shown.promise_until, shown.promise_amount) == (date(2026, 11, 27), Money.of("620.00", "GBP"))
    assert open_count_of(store, c) == 0  # a promise needs nobody's decision


def open_count_of(store: Store, c: Client) -> int:
    with store.unit_of_work() as uow:
        return open_count(uow, c.org_id)


@pytest.mark.parametrize(
    ("until", "amount", "field", "words"),
    [
        ("2026-11-15", "", "promise_date", "too early"),
        ("2027-01-16", "", "promise_date", "too far ahead"),
        ("16/11/2026", "", "promise_date", "YYYY-MM-DD"),
        ("", "", "promise_date", "by which date"),
        ("2026-11-20", "12.345", "promise_amount", "decimal places"),
        ("2026-11-20", "-5", "promise_amount", "more than zero"),
        ("2026-11-20", "lots", "promise_amount", "amount such as"),
    ],
)
def test_a_wrong_promise_is_refused_naming_the_field(
    store: Store, until: str, amount: str, field: str, words: str
) -> None:
    c, c1, _, _ = _world(store)
    with pytest.raises(InvalidInput, match=words) as refused:
        page.promise_to_pay(store, c.connection_id, c1, until=until, amount=amount, now=NOW)
    assert refused.value.field == field
    with store.unit_of_work() as uow:
        row = uow.session.get(Customer, c1)
        assert row is not None
        assert row.promise_to_pay_until is None
        assert uow.session.scalars(select(CustomerRequest)).all() == []


def test_a_dispute_stops_reminders_and_fees_for_that_invoice_and_opens_an_inbox_item(store: Store) -> None:
    c, c1, inv1, _ = _world(store)
    hostile = "Wrong quantity <script>alert(1)</script>\nSee our PO 77"
    view = page.dispute_invoice(store, c.connection_id, c1, inv1, reason=hostile, now=NOW)
    assert (view.kind, view.state, view.invoice_number) == (page.DISPUTE, page.OPEN, "INV-1")
    with store.unit_of_work() as uow:
        override = uow.session.scalars(select(InvoiceOverride)).one()
        assert (override.invoice_external_id, override.dispute, override.dispute_reason) == ("1", True, hostile)
    [item] = inbox(store, c.org_id).group(REQUESTS).items
    assert (item.kind, item.headline, item.detail) == ("dispute", "Cust One disputes INV-1", hostile)
    assert [ref.number for ref in item.invoices] == ["INV-1"]
    with pytest.raises(ChangeRefused, match="already disputed"):
        page.dispute_invoice(store, c.connection_id, c1, inv1, reason="again", now=NOW)
    with pytest.raises(InvalidInput) as refused:
        page.dispute_invoice(store, c.connection_id, c1, inv1, reason="x" * 2001, now=NOW)
    assert refused.value.field == "reason"
    page.mark_request_handled(store, c.org_id, view.id, actor=OWNER, now=NOW, connection_ids=None)
    assert inbox(store, c.org_id).group(REQUESTS).count == 0
    with pytest.raises(ChangeRefused, match="handled"):
        page.mark_request_handled(store, c.org_id, view.id, actor=OWNER, now=NOW, connection_ids=None)


def test_already_paid_holds_reminders_and_the_inbox_item_goes_once_the_payment_is_synced(store: Store) -> None:
    c, c1, inv1, _ = _world(store)
    view = page.report_paid(
        store, c.connection_id, c1, inv1, paid_on="2026-11-13", reference="BACS 4471 Cust One", now=NOW
    )
    assert (view.kind, view.hold_until, view.detail["reference"]) == (
        page.PAID,
        date(2026, 11, 21),
        "BACS 4471 Cust One",
    )
    with store.unit_of_work() as uow:
        override = uow.session.scalars(select(InvoiceOverride)).one()
        assert override.paused_until == date(2026, 11, 21)
    [item] = inbox(store, c.org_id).group(REQUESTS).items
    assert (item.headline, item.reason) == ("Cust One says INV-1 is paid", "reminders hold until 2026-11-21")
    assert open_count_of(store, c) == 1
    with store.unit_of_work() as uow:  # the sync reads the payment: the invoice is paid in the ledger
        row = uow.session.get(Invoice, inv1)
        assert row is not None
        row.status, row.balance = "paid", Decimal("0")
        uow.commit()
    assert inbox(store, c.org_id).group(REQUESTS).count == 0
    assert open_count_of(store, c) == 0


@pytest.mark.parametrize(
    ("paid_on", "reference", "field"),
    [
        ("2026-11-17", "ref", "paid_on"),  # tomorrow
        ("2025-11-01", "ref", "paid_on"),
        ("yesterday", "ref", "paid_on"),
        ("2026-11-13", "", "reference"),
        ("2026-11-13", "two\nlines", "reference"),
        ("2026-11-13", "r" * 201, "reference"),
    ],
)
def test_a_wrong_payment_report_is_refused(store: Store, paid_on: str, reference: str, field: str) -> None:
    c, c1, inv1, _ = _world(store)
    with pytest.raises(InvalidInput) as refused:
        page.report_paid(store, c.connection_id, c1, inv1, paid_on=paid_on, reference=reference, now=NOW)
    assert refused.value.field == field
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(InvoiceOverride)).all() == []


@dataclass
class Smtp:
    """A real SMTP server on loopback (aiosmtpd) and Nudge's SMTP mailer pointed at it."""

    inbox: Inbox
    mailer: SmtpMailer

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _, message in self.inbox.received]


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        yield Smtp(inbox, SmtpMailer(smtp_settings(port, from_address="billing@install.example")))


def _ask(store: Store, c: Client, c1: int, inv1: int) -> page.RequestView:
    installments = page.proposed_installments(
        store, c.connection_id, c1, inv1, count=3, first="2026-11-30", every="month", now=NOW
    )
    assert installments == [
        {"due_date": "2026-11-30", "amount": "166.66"},
        {"due_date": "2026-12-30", "amount": "166.66"},
        {"due_date": "2027-01-30", "amount": "166.68"},
    ]
    return page.ask_for_plan(store, c.connection_id, c1, inv1, installments=installments, now=NOW)


def test_a_plan_request_approved_as_edited_is_recorded_and_the_customer_told_over_smtp(
    store: Store, smtp: Smtp
) -> None:
    c, c1, inv1, _ = _world(store)
    asked = _ask(store, c, c1, inv1)
    assert (asked.kind, asked.state) == (page.PLAN, page.OPEN)
    with pytest.raises(ChangeRefused, match="already asked"):
        _ask(store, c, c1, inv1)
    [item] = inbox(store, c.org_id).group(REQUESTS).items
    assert item.installments == (("2026-11-30", "166.66"), ("2026-12-30", "166.66"), ("2027-01-30", "166.68"))
    mailer = smtp.mailer
    edited = [{"due_date": "2026-12-01", "amount": "250.00"}, {"due_date": "2027-01-04", "amount": "250.00"}]
    with pytest.raises(InvalidInput, match="add up"):
        page.approve_plan_request(
            store, c.org_id, asked.id, installments=edited[:1], policy="monthly", actor=OWNER, now=NOW, mailer=mailer
        )
    done = page.approve_plan_request(
        store, c.org_id, asked.id, installments=edited, policy="monthly", actor=OWNER, now=NOW, mailer=mailer
    )
    assert (done.state, done.decided_by, done.decision_note) == (page.APPROVED, OWNER, "agreed as changed")
    with store.unit_of_work() as uow:
        plan = uow.session.scalars(select(PaymentPlan)).one()
        assert (plan.state, plan.policy, [i.amount for i in plan.installments]) == (
            "active",
            "monthly",
            [Decimal("250.00"), Decimal("250.00")],
        )
    [message] = smtp.messages
    assert message["To"] == "ap@cust.example"
    assert message["Subject"] == "Your payment plan for invoice INV-1 is agreed"
    body = message.get_body(("plain",)).get_content()
    assert "December 1, 2026: £250.00" in body
    assert "January 4, 2027: £250.00" in body
    assert inbox(store, c.org_id).group(REQUESTS).count == 0
    kinds = [a.kind for a in _activities(store, "customer_page.")]
    assert kinds == ["customer_page.plan", "customer_page.plan_approved"]
    with pytest.raises(ChangeRefused):  # the invoice is on a plan now
        _ask(store, c, c1, inv1)


def test_a_declined_plan_request_tells_the_customer(store: Store, smtp: Smtp) -> None:
    c, c1, inv1, _ = _world(store)
    asked = _ask(store, c, c1, inv1)
    mailer = smtp.mailer
    with pytest.raises(UnknownRecord):  # a member limited to other clients does not see it
        page.decline_plan_request(
            store,
            c.org_id,
            asked.id,
            note="",
            actor=OWNER,
            now=NOW,
            mailer=mailer,
            connection_ids=[c.connection_id + 1],
        )
    done = page.decline_plan_request(
        store, c.org_id, asked.id, note="Three months is too long for us.", actor=OWNER, now=NOW, mailer=mailer
    )
    assert done.state == page.DECLINED
    [message] = smtp.messages
    assert message["Subject"] == "About your payment plan request for invoice INV-1"
    assert "Three months is too long for us." in message.get_body(("plain",)).get_content()
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(PaymentPlan)).all() == []


def test_ledger_notes_go_through_the_outbox_once_per_request_where_the_client_wants_them(store: Store) -> None:
    c, c1, inv1, _ = _world(store)
    page.dispute_invoice(store, c.connection_id, c1, inv1, reason="Not ours", now=NOW)
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(ActionRow).where(ActionRow.kind == "note")).all() == []
    update_client_settings(store, c.org_id, c.connection_id, {"customer_page_ledger_notes": True}, OWNER, NOW)
    paid = page.report_paid(store, c.connection_id, c1, inv1, paid_on="2026-11-12", reference="CHQ 12", now=NOW)
    page.promise_to_pay(store, c.connection_id, c1, until="2026-11-20", amount="", now=NOW)
    with store.unit_of_work() as uow:
        notes = list(uow.session.scalars(select(ActionRow).where(ActionRow.kind == "note").order_by(ActionRow.id)))
        uow.session.expunge_all()
    assert [(n.key, n.invoice_external_id, n.state) for n in notes] == [
        (page.request_note_key(paid.id), "1", "planned"),
        (page.request_note_key(paid.id + 1), "1", "planned"),  # a promise: on the oldest open invoice
    ]
    assert "said invoice INV-1 was paid on 2026-11-12 (reference CHQ 12)" in (
        action_from_json(notes[0].payload).text or ""
    )


# -- the planner obeys what the customer said ---------------------------------------------------------------
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late", "offset": 14, "remind": "firm"},
                    {"id": "later", "offset": 21, "remind": "firm", "late_fee": "flat"},
                ],
            }
        },
        "late_fees": {"flat": {"kind": "flat", "amount": 25, "warning_required": False}},
    }
)


def _planned(store: Store, connection_id: int) -> list[ActionRow]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(ActionRow).where(ActionRow.connection_id == connection_id)))
        uow.session.expunge_all()
        return rows


def _cadence_client(store: Store) -> tuple[Client, int, int]:
    """A client chased by RULES' cadence (no library of its own), customer c1 and INV-1, due 2 November."""
    due = date(2026, 11, 2)
    snapshot = invoice_snapshot(1, due=due, updated_at=NOW - timedelta(days=20))
    cid = connection_with_invoices(store, [snapshot], first_seen_at=NOW - timedelta(days=20), cadence="standard")
    c1 = customer(store, cid, "c1", "Cust One", emails=["ap@cust.example"])
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(cid)
        assert connection is not None
        inv1 = uow.session.scalars(select(Invoice.id).where(Invoice.connection_id == cid)).one()
        return Client(connection.organization_id, cid, 0, 0, 0), c1, inv1


def test_after_a_dispute_the_planner_sends_no_reminder_and_charges_no_fee_for_that_invoice(store: Store) -> None:
    c, c1, inv1 = _cadence_client(store)
    before = {row.kind for row in preview_connection(store, c.connection_id, RULES, NOW, 30)}
    assert {"remind", "late_fee"} <= before  # what the cadence would do without the dispute
    page.dispute_invoice(store, c.connection_id, c1, inv1, reason="Goods never arrived", now=NOW)
    rows = preview_connection(store, c.connection_id, RULES, NOW, 30)
    assert {row.kind for row in rows} == {"hold"}
    assert "dispute" in rows[0].rule


def test_already_paid_pauses_the_invoice_then_chasing_resumes(store: Store) -> None:
    c, c1, inv1 = _cadence_client(store)
    page.report_paid(store, c.connection_id, c1, inv1, paid_on="2026-11-13", reference="BACS 1", now=NOW)
    assert {row.kind for row in preview_connection(store, c.connection_id, RULES, NOW, 3)} <= {"hold"}
    after = NOW + timedelta(days=page.PAID_HOLD_DAYS + 1)
    assert "remind" in {row.kind for row in preview_connection(store, c.connection_id, RULES, after, 3)}


def test_a_promise_waits_and_a_broken_one_gives_the_next_reminder_the_you_promised_paragraph(store: Store) -> None:
    c, c1, _ = _cadence_client(store)
    page.promise_to_pay(store, c.connection_id, c1, until="2026-11-18", amount="", now=NOW)
    plan_connection(store, c.connection_id, RULES, NOW)
    assert {row.kind for row in _planned(store, c.connection_id)} == {"hold"}
    after = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # the 18th + 3 days' grace have passed, nothing paid
    plan_connection(store, c.connection_id, RULES, after)
    [reminder] = [row for row in _planned(store, c.connection_id) if row.kind == "remind"]
    assert action_from_json(reminder.payload).broken_promise == BrokenPromise(date(2026, 11, 18), None)


def test_a_kept_promise_gives_no_you_promised_paragraph(store: Store) -> None:
    c, c1, _ = _cadence_client(store)
    invoice(store, c.connection_id, "2", customer_external_id="c1", due=date(2026, 11, 2), balance="80.00")
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(Invoice).where(Invoice.external_id == "2")).one()
        row.first_seen_at = NOW - timedelta(days=20)
        uow.commit()
    page.promise_to_pay(store, c.connection_id, c1, until="2026-11-18", amount="500", now=NOW)
    with store.unit_of_work() as uow:  # INV-1 paid before the promised day; INV-2 still open
        uow.session.add(
            PaymentRow(
                connection_id=c.connection_id,
                kind="payment",
                external_id="p1",
                invoice_external_id="1",
                customer_external_id="c1",
                amount=Decimal("500.00"),
                currency="GBP",
                paid_on=date(2026, 11, 17),
            )
        )
        row = uow.session.scalars(select(Invoice).where(Invoice.external_id == "1")).one()
        row.status, row.balance = "paid", Decimal("0")
        uow.commit()
    plan_connection(store, c.connection_id, RULES, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    reminders = [row for row in _planned(store, c.connection_id) if row.kind == "remind"]
    assert reminders
    assert all(action_from_json(r.payload).broken_promise is None for r in reminders)
