"""The Customer screen's read model (connector.receivables.customers): balances per currency and overdue on the
client's local date, open invoices with their own terms and plans, the history (payments, reminders sent, tasks,
paid invoices, people's changes), the list with balances, scoping, and the running total of a plan being typed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.domain.actions import ActionKind
from connector.domain.money import Money
from connector.errors import UnknownRecord
from connector.library import overrides, payment_plans
from connector.receivables.customers import balances_of, customer_detail, customer_list, plan_totals
from connector.storage import Store
from tests.support import receivables as seed
from tests.support.clients import client, customer, invoice

# 03:00 UTC on Monday 16 November: still Sunday 15 November in New York.
NOW = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
ACTOR = "ann@practice.example"


def _world(store: Store) -> tuple[int, int, int]:
    c = client(store, time_zone="America/New_York", home_currency="USD")
    cust = customer(store, c.connection_id, "c1", "Acme Ltd", emails=["ap@acme.example"], cc_emails=["cc@acme.example"])
    invoice(store, c.connection_id, "1", balance="500.00", currency="USD", due=date(2026, 11, 2))
    invoice(store, c.connection_id, "2", balance="120.50", currency="USD", due=date(2026, 11, 15))  # due "today"
    invoice(store, c.connection_id, "3", balance="80.00", currency="EUR", due=date(2026, 11, 1))
    invoice(store, c.connection_id, "4", balance="0", currency="USD", status="paid", due=date(2026, 10, 1))
    invoice(store, c.connection_id, "5", balance="9.00", currency="USD", customer_external_id="someone-else")
    return c.org_id, c.connection_id, cust


def test_balances_stay_per_currency_and_overdue_counts_on_the_clients_local_date(store: Store) -> None:
    org_id, cid, cust = _world(store)
    detail = customer_detail(store, org_id, cid, cust, NOW)
    assert detail.today == date(2026, 11, 15)
    assert detail.zone == "America/New_York"
    assert [(b.currency, b.open, b.open_count, b.overdue, b.overdue_count) for b in detail.balances] == [
        ("EUR", Money.of("80.00", "EUR"), 1, Money.of("80.00", "EUR"), 1),
        ("USD", Money.of("620.50", "USD"), 2, Money.of("500.00", "USD"), 1),
    ]
    assert [line.number for line in detail.invoices] == ["INV-3", "INV-1", "INV-2"]  # by due date
    assert [line.overdue for line in detail.invoices] == [True, True, False]
    assert detail.currencies == ("EUR", "USD")
    assert detail.recipients_to == ("ap@acme.example",)
    assert detail.recipients_cc == ("cc@acme.example",)
    assert detail.recipients_from_ledger
    assert not detail.cadence_own
    assert detail.cadence_name == detail.client_cadence_name == "gentle"  # the library's first, by name
    assert [line.number for line in detail.paid_invoices] == ["INV-4"]


def test_invoice_terms_plans_and_the_customers_overrides_show(store: Store) -> None:
    org_id, cid, cust = _world(store)
    ids = {line.external_id: line.id for line in customer_detail(store, org_id, cid, cust, NOW).invoices}
    overrides.update_invoice_override(
        store, org_id, cid, ids["1"], {"dispute": True, "dispute_reason": "wrong qty"}, ACTOR, NOW
    )
    overrides.update_customer_overrides(
        store,
        org_id,
        cid,
        cust,
        {"paused_until": "2026-12-01", "recipients_to": ["pay@acme.example"], "cadence_id": None},
        ACTOR,
        NOW,
    )
    plan = payment_plans.create_plan(
        store,
        org_id,
        cid,
        ids["2"],
        installments=[{"due_date": "2026-12-01", "amount": "60.00"}, {"due_date": "2027-01-01", "amount": "60.50"}],
        policy="monthly",
        actor=ACTOR,
        now=NOW,
    )
    detail = customer_detail(store, org_id, cid, cust, NOW)
    one, two = detail.invoice(ids["1"]), detail.invoice(ids["2"])
    assert one is not None
    assert two is not None
    assert (one.dispute, one.dispute_reason, one.plan) == (True, "wrong qty", None)
    assert two.plan is not None
    assert two.plan.id == plan.id
    assert two.plan.state == "active"
    assert [(i.due_date, i.amount) for i in two.plan.installments] == [
        (date(2026, 12, 1), Money.of("60.00", "USD")),
        (date(2027, 1, 1), Money.of("60.50", "USD")),
    ]
    assert two.plan.next_due is not None
    assert two.plan.next_due.due_date == date(2026, 12, 1)
    assert [p.id for p in detail.plans] == [plan.id]
    assert detail.customer.overrides["paused_until"] == date(2026, 12, 1)
    assert detail.recipients_to == ("pay@acme.example",)
    assert not detail.recipients_from_ledger
    kinds = [change.kind for change in detail.changes]
    assert kinds == ["payment_plan.created", "customer.overrides_updated", "invoice.override_set"]
    assert detail.changes[1].actor == ACTOR
    assert "paused_until" in detail.changes[1].changed
    payment_plans.cancel_plan(store, org_id, cid, ids["2"], plan.id, ACTOR, NOW)
    assert customer_detail(store, org_id, cid, cust, NOW).plans == ()  # a cancelled plan is history only


def test_history_payments_reminders_tasks(store: Store) -> None:
    org_id, cid, cust = _world(store)
    seed.payment(store, cid, "p1", "4", "100.00", date(2026, 10, 3), currency="USD")
    seed.payment(store, cid, "p2", "4", "50.00", date(2026, 10, 9), currency="USD", kind="credit")
    seed.payment(store, cid, "p3", "", "5.00", date(2026, 10, 10), currency="USD")
    seed.payment(store, cid, "p4", "x", "1.00", date(2026, 10, 11), customer_id="another")
    seed.action(store, cid, "sent", state="done", invoices=("1", "2"), recipients=("ap@acme.example",), grouped=True)
    seed.action(store, cid, "planned", state="planned")
    seed.action(store, cid, "note", kind=ActionKind.NOTE, state="done")
    seed.task(store, org_id, cid, due_on=date(2026, 11, 20))
    detail = customer_detail(store, org_id, cid, cust, NOW)
    assert [(p.kind, p.amount, p.invoice_number) for p in detail.payments] == [
        ("payment", Money.of("5.00", "USD"), ""),
        ("credit", Money.of("50.00", "USD"), "INV-4"),
        ("payment", Money.of("100.00", "USD"), "INV-4"),
    ]
    assert detail.paid_invoices[0].paid_on == date(2026, 10, 9)
    assert [(r.template, r.invoice_numbers, r.recipients) for r in detail.reminders] == [
        ("firm", ("INV-1", "INV-2"), ("ap@acme.example",))
    ]
    assert [(t.kind, t.state, t.due_on) for t in detail.tasks] == [("call", "open", date(2026, 11, 20))]


def test_scoping_another_clients_or_a_hidden_clients_customer_is_unknown(store: Store) -> None:
    org_id, cid, cust = _world(store)
    other = client(store, "Other Practice")
    theirs = customer(store, other.connection_id, "c1", "Theirs")
    for call in (
        lambda: customer_detail(store, org_id, cid, theirs, NOW),
        lambda: customer_detail(store, other.org_id, cid, cust, NOW),
        lambda: customer_detail(store, org_id, cid, cust, NOW, connection_ids={other.connection_id}),
        lambda: customer_detail(store, org_id, cid, 2**40, NOW),
        lambda: customer_list(store, org_id, cid, NOW, connection_ids=set()),
    ):
        with pytest.raises(UnknownRecord):
            call()


def test_the_list_pages_by_name_with_balances(store: Store) -> None:
    org_id, cid, cust = _world(store)
    for n in range(5):
        customer(store, cid, f"b{n}", f"Bravo {n}")
    first = customer_list(store, org_id, cid, NOW, limit=3)
    assert [row.customer.name for row in first.items] == ["Acme Ltd", "Bravo 0", "Bravo 1"]
    assert [(b.currency, b.open.amount) for b in first.items[0].balances] == [
        ("EUR", Decimal("80.00")),
        ("USD", Decimal("620.50")),
    ]
    assert first.items[1].balances == ()
    second = customer_list(store, org_id, cid, NOW, limit=3, cursor=first.next_cursor)
    assert [row.customer.name for row in second.items] == ["Bravo 2", "Bravo 3", "Bravo 4"]
    found = customer_list(store, org_id, cid, NOW, search="ACME")
    assert [row.customer.id for row in found.items] == [cust]


def test_balances_of_leaves_out_nothing_owed() -> None:
    rows = [
        ("GBP", Decimal("10"), date(2026, 1, 1)),
        ("GBP", Decimal("0"), date(2026, 1, 1)),
        ("GBP", Decimal("5"), None),
    ]
    (gbp,) = balances_of(rows, date(2026, 2, 1))
    assert (gbp.open.amount, gbp.open_count, gbp.overdue.amount, gbp.overdue_count) == (
        Decimal("15"),
        2,
        Decimal("10"),
        1,
    )


@pytest.mark.parametrize(
    ("amounts", "total", "unreadable", "adds_up"),
    [
        (["166.66", "166.66", "166.68"], "500.00", (), True),
        (["100", "100"], "200.00", (), False),
        (["1e400", "500"], "500.00", (0,), False),
        (["abc", "-5", "NaN", "Infinity", "1.005", "", "500.00"], "500.00", (0, 1, 2, 3, 4, 5), False),
        (["600.00"], "600.00", (), False),
    ],
)
def test_plan_totals(amounts: list[str], total: str, unreadable: tuple[int, ...], adds_up: bool) -> None:
    found = plan_totals(Money.of("500.00", "GBP"), amounts)
    assert (str(found.total.amount), found.unreadable, found.adds_up) == (total, unreadable, adds_up)
    assert found.difference == Money.of("500.00", "GBP") - Money.of(total, "GBP")
