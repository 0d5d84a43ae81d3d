"""Customer and invoice overrides stored as rows (issue 14) reach the planner and the executor: promise to pay
with amount and grace (and the activity log saying whether it was kept), dispute reasons, single-invoice
holds, and an agreed due date that moves the cadence without the executor taking it for a changed cycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.executor import Executor
from connector.outbox.planning import PROMISE_BROKEN, PROMISE_KEPT, plan_connection, preview_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Customer, Invoice, InvoiceOverride
from connector.storage.tables import Payment as PaymentRow
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # 14 days late, inside the London send window

RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late", "offset": 14, "remind": "firm"},
                ],
            }
        },
    }
)


def snapshot(n: int, **changes: object) -> InvoiceSnapshot:
    return replace(invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20)), **changes)  # type: ignore[arg-type]


def setup(store: Store, invoices: list[InvoiceSnapshot]) -> int:
    return connection_with_invoices(store, invoices, first_seen_at=NOW - timedelta(days=20), cadence="standard")


def customer(store: Store, connection_id: int, **fields: Any) -> None:
    with store.unit_of_work() as uow:
        uow.session.add(Customer(connection_id=connection_id, external_id="c1", name="Cust One", **fields))
        uow.commit()


def invoice_override(store: Store, connection_id: int, invoice_id: str, **fields: Any) -> None:
    with store.unit_of_work() as uow:
        uow.session.add(InvoiceOverride(connection_id=connection_id, invoice_external_id=invoice_id, **fields))
        uow.commit()


def rows(store: Store, connection_id: int) -> list[ActionRow]:
    with store.unit_of_work() as uow:
        found = list(
            uow.session.scalars(
                select(ActionRow).where(ActionRow.connection_id == connection_id).order_by(ActionRow.id)
            )
        )
        uow.session.expunge_all()
        return found


class Outbox:
    def __init__(self) -> None:
        self.sent: list[list[tuple[str, date | None]]] = []

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sent.append([(invoice.number, invoice.due_date) for invoice in invoices])
        return f"<{action.key}@nudge.test>"


def test_a_promise_waits_for_its_grace_then_resumes_and_is_logged_as_broken(store: Store) -> None:
    cid = setup(store, [snapshot(1)])
    customer(
        store,
        cid,
        promise_to_pay_until=date(2026, 11, 13),
        promise_amount=Decimal("500.00"),
        promise_currency="GBP",
        promise_grace_days=3,
    )
    plan_connection(store, cid, RULES, NOW)  # Monday 16th: the 13th + 3 days' grace
    [hold] = rows(store, cid)
    assert hold.kind == "hold"
    assert (
        "promised to pay 500.00 GBP by 2026-11-13; chasing waits until 2026-11-16 (3 days' grace)"
        in (hold.payload["text"])
    )
    later = NOW + timedelta(days=1)
    plan_connection(store, cid, RULES, later)
    plan_connection(store, cid, RULES, later + timedelta(hours=1))
    assert [row.kind for row in rows(store, cid)] == ["hold", "remind"]
    with store.unit_of_work() as uow:
        logged = [
            (row.kind, row.subject, row.detail["promised_by"], row.detail["promised"])
            for row in uow.session.scalars(select(Activity).where(Activity.connection_id == cid))
        ]
    assert logged == [(PROMISE_BROKEN, "c1", "2026-11-13", "500.00 GBP")]


def test_a_dispute_reason_is_in_the_hold(store: Store) -> None:
    cid = setup(store, [snapshot(1)])
    customer(store, cid, dispute=True, dispute_reason="never received the goods")
    [row] = preview_connection(store, cid, RULES, NOW, 1)
    assert (row.kind, "the customer is in dispute: never received the goods" in row.rule) == ("hold", True)


def test_an_excluded_invoice_is_left_out_of_the_customers_reminder(store: Store) -> None:
    cid = setup(store, [snapshot(1), snapshot(2)])
    invoice_override(store, cid, "1", dispute=True, dispute_reason="price agreed was lower")
    plan_connection(store, cid, RULES, NOW)
    planned = {(row.kind, row.invoice_external_id) for row in rows(store, cid)}
    assert planned == {("hold", "1"), ("remind", "2")}
    [hold] = [row for row in rows(store, cid) if row.kind == "hold"]
    assert hold.payload["text"] == "invoice INV-1 is in dispute: price agreed was lower"


def test_an_agreed_due_date_moves_the_cadence_and_the_reminder_goes_out(store: Store) -> None:
    cid = setup(store, [snapshot(1)])
    invoice_override(store, cid, "1", agreed_due_date=date(2026, 11, 16))  # flexible terms: due today
    plan_connection(store, cid, RULES, NOW)
    [reminder] = rows(store, cid)
    assert (reminder.kind, reminder.step) == ("remind", "due")
    outbox = Outbox()
    report = Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW, "w1").run_due(cid)
    assert report.done  # the ledger still says 2 November: the executor does not take it for a changed date
    assert outbox.sent == [[("INV-1", date(2026, 11, 16))]]
    with store.unit_of_work() as uow:  # the ledger's due date is untouched
        assert uow.session.scalars(select(Invoice.due_date)).one() == DUE


def test_an_invoice_held_after_the_plan_is_left_out_at_send_time(store: Store) -> None:
    cid = setup(store, [snapshot(1), snapshot(2)])
    plan_connection(store, cid, RULES, NOW)
    [reminder] = rows(store, cid)
    assert reminder.payload["invoice_external_ids"] == ["1", "2"]
    invoice_override(store, cid, "1", excluded=True)  # decided after the plan, before the send
    outbox = Outbox()
    Executor(store, FakeLedger([snapshot(1), snapshot(2)]), outbox, lambda: NOW, "w1").run_due(cid)
    assert outbox.sent == [[("INV-2", DUE)]]


def test_a_reminder_whose_every_invoice_was_held_since_is_cancelled_with_the_reason(store: Store) -> None:
    cid = setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    invoice_override(store, cid, "1", paused_until=date(2026, 11, 30))
    outbox = Outbox()
    Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW, "w1").run_due(cid)
    assert outbox.sent == []
    [reminder] = rows(store, cid)
    assert (reminder.state, reminder.error) == ("cancelled", "chasing of invoice INV-1 is paused until 2026-11-30")
    # cancelled, not skipped: the next plan sees the step again, and holds it with the reason
    plan_connection(store, cid, RULES, NOW + timedelta(hours=1))
    assert [row.kind for row in rows(store, cid)] == ["remind", "hold"]


def test_a_kept_promise_is_logged_as_kept_even_with_an_unknown_customer_zone(store: Store) -> None:
    cid = setup(store, [snapshot(1, balance=Money.of("200.00", "GBP"))])
    customer(
        store,
        cid,
        promise_to_pay_until=date(2026, 11, 10),
        promise_amount=Decimal("300.00"),
        promise_currency="GBP",
        promise_grace_days=0,
        time_zone="Nowhere/Land",  # written around the services: the connection's zone decides
    )
    with store.unit_of_work() as uow:
        uow.session.add(
            PaymentRow(
                connection_id=cid,
                kind="payment",
                external_id="p1",
                invoice_external_id="1",
                customer_external_id="c1",
                amount=Decimal("300.00"),
                currency="GBP",
                paid_on=date(2026, 11, 9),
            )
        )
        uow.commit()
    plan_connection(store, cid, RULES, NOW)
    with store.unit_of_work() as uow:
        logged = [
            (row.kind, row.detail["promised"], row.detail["paid"])
            for row in uow.session.scalars(select(Activity).where(Activity.connection_id == cid))
        ]
    assert logged == [(PROMISE_KEPT, "300.00 GBP", "300.00 GBP")]


def test_a_customer_paused_or_disputed_after_the_plan_gets_nothing_at_send_time(store: Store) -> None:
    """A person pauses (or disputes) the customer after today's plan: the reminder already planned is cancelled
    with the reason, not sent; a promise to pay within its grace holds the same way."""
    for hold, reason in (
        ({"paused_until": date(2026, 11, 30)}, "chasing of customer Cust One is paused until 2026-11-30"),
        ({"dispute": True, "dispute_reason": "wrong rate"}, "customer Cust One is in dispute: wrong rate"),
        ({"promise_to_pay_until": date(2026, 11, 14), "promise_grace_days": 3}, "promised to pay by 2026-11-14"),
    ):
        cid = setup(store, [snapshot(1)])
        customer(store, cid)
        plan_connection(store, cid, RULES, NOW)
        with store.unit_of_work() as uow:
            row = uow.session.scalars(select(Customer).where(Customer.connection_id == cid)).one()
            for name, value in hold.items():
                setattr(row, name, value)
            uow.commit()
        outbox = Outbox()
        Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW, "w1").run_due(cid)
        assert outbox.sent == []
        [reminder] = rows(store, cid)
        assert reminder.state == "cancelled"
        assert reason in reminder.error
