"""Payment plans people agree (issue 14): installments on strictly ascending dates from the client's today,
positive amounts in the invoice's minor units adding up to its current balance exactly (the refusal says by
how much they are off), a live payment-plan policy of the organization's library, one active plan per
invoice; cancel and list; an equal split with the remainder on the last; audited and in the invoice's timeline."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from connector.domain.money import Money
from connector.domain.payment_plans import PlanError, equal_amounts
from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library.audit import entries
from connector.library.payment_plans import cancel_plan, create_plan, list_plans, propose_plan
from connector.storage import Store
from connector.storage.tables import Activity, Installment, Invoice, LibraryItem, PaymentPlan
from tests.support.clients import Client, client, invoice

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
ACTOR = "ann@practice.example"
THREE = [
    {"due_date": "2026-11-30", "amount": "200.00"},
    {"due_date": "2026-12-31", "amount": "200"},
    {"due_date": "2027-01-31", "amount": "100.00"},
]


def _setup(store: Store, balance: str = "500.00", currency: str = "GBP") -> tuple[Client, int]:
    c = client(store)
    return c, invoice(store, c.connection_id, "1", balance=balance, currency=currency)


def test_a_plan_is_created_audited_and_in_the_invoices_timeline(store: Store) -> None:
    c, inv = _setup(store)
    plan = create_plan(
        store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
    )
    assert (plan.state, plan.policy, plan.grace_days, plan.total, plan.currency) == (
        "active",
        "monthly",
        5,
        "500.00",
        "GBP",
    )
    assert [(i.due_date, i.amount) for i in plan.installments] == [
        (date(2026, 11, 30), "200.00"),
        (date(2026, 12, 31), "200.00"),
        (date(2027, 1, 31), "100.00"),
    ]
    assert plan.invoice_id == inv
    assert plan.invoice_external_id == "1"
    with store.unit_of_work() as uow:
        row = uow.session.get(PaymentPlan, plan.id)
        assert row is not None
        assert row.created_at == NOW
        assert row.invoice_external_id == "1"
        assert sum((i.amount for i in row.installments), Decimal(0)) == Decimal("500.00")
        (entry,) = entries(uow, c.org_id, entity="payment_plan", entity_id=str(plan.id))
        activity = uow.session.scalars(select(Activity).where(Activity.kind == "payment_plan.created")).one()
        listed = list_plans(uow, c.org_id, c.connection_id, inv)
    assert entry.change == "create"
    assert entry.before is None
    assert entry.actor == ACTOR
    assert entry.after is not None
    assert entry.after["installments"][2] == {"due_date": "2027-01-31", "amount": "100.00"}
    assert (activity.detail["invoice"], activity.detail["invoice_id"], activity.detail["plan_id"]) == (
        "1",
        inv,
        plan.id,
    )
    assert [p.id for p in listed] == [plan.id]


@pytest.mark.parametrize(
    ("installments", "message"),
    [
        ([{"due_date": "2026-11-30", "amount": "450.00"}], "450.00 GBP, 50.00 GBP short of"),
        (
            [{"due_date": "2026-11-30", "amount": "300"}, {"due_date": "2026-12-30", "amount": "200.01"}],
            "0.01 GBP more",
        ),
    ],
)
def test_the_sum_must_equal_the_current_balance_and_the_refusal_says_by_how_much(
    store: Store, installments: list[dict[str, Any]], message: str
) -> None:
    c, inv = _setup(store)
    with pytest.raises(InvalidInput) as refused:
        create_plan(
            store, c.org_id, c.connection_id, inv, installments=installments, policy="monthly", actor=ACTOR, now=NOW
        )
    assert refused.value.field == "installments"
    assert message in refused.value.user_message
    assert "500.00 GBP" in refused.value.user_message


REFUSALS: list[tuple[Any, str]] = [
    ([], "installments"),
    ("200 on the 30th", "installments"),
    (["2026-11-30"], "installments[0]"),
    ([{"due_date": "2026-11-15", "amount": "500"}], "installments[0].due_date"),  # yesterday
    ([{"due_date": "2040-11-15", "amount": "500"}], "installments[0].due_date"),
    ([{"due_date": "soon", "amount": "500"}], "installments[0].due_date"),
    (
        [{"due_date": "2026-11-30", "amount": "0"}, {"due_date": "2026-12-30", "amount": "500"}],
        "installments[0].amount",
    ),
    (
        [{"due_date": "2026-11-30", "amount": "-1"}, {"due_date": "2026-12-30", "amount": "501"}],
        "installments[0].amount",
    ),
    ([{"due_date": "2026-11-30", "amount": "499.999"}], "installments[0].amount"),
    ([{"due_date": "2026-11-30", "amount": 500.0}], "installments[0].amount"),
    ([{"due_date": "2026-11-30", "amount": "500", "currency": "EUR"}], "installments[0].currency"),
    ([{"due_date": "2026-11-30", "amount": "500", "note": "x"}], "installments[0].note"),
    (
        [{"due_date": "2026-12-30", "amount": "250"}, {"due_date": "2026-12-30", "amount": "250"}],
        "installments[1].due_date",
    ),
    (
        [{"due_date": "2026-12-30", "amount": "250"}, {"due_date": "2026-12-01", "amount": "250"}],
        "installments[1].due_date",
    ),
    ([{"due_date": f"2027-01-{d:02d}", "amount": "1"} for d in range(1, 32)] * 4, "installments"),
]


@pytest.mark.parametrize(("installments", "field"), REFUSALS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(REFUSALS)])
def test_every_wrong_installment_is_refused_naming_it(store: Store, installments: Any, field: str) -> None:
    c, inv = _setup(store)
    with pytest.raises(InvalidInput) as refused:
        create_plan(
            store, c.org_id, c.connection_id, inv, installments=installments, policy="monthly", actor=ACTOR, now=NOW
        )
    assert refused.value.field == field
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(PaymentPlan)).all() == []
        assert entries(uow, c.org_id) == []


def test_the_policy_must_be_a_live_payment_plan_policy_of_the_organization(store: Store) -> None:
    c, inv = _setup(store)
    other = client(store, organization="Other practice")
    for policy in ("weekly", "standard", "", None):
        with pytest.raises(InvalidInput) as refused:
            create_plan(
                store,
                c.org_id,
                c.connection_id,
                inv,
                installments=THREE,
                policy=policy,
                actor=ACTOR,
                now=NOW,  # type: ignore[arg-type]
            )
        assert refused.value.field == "policy"
        assert "monthly" in refused.value.user_message
    with store.unit_of_work() as uow:
        item = uow.session.get(LibraryItem, c.monthly)
        assert item is not None
        item.deleted_at = NOW
        uow.commit()
    with pytest.raises(InvalidInput) as refused:
        create_plan(store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW)
    assert refused.value.field == "policy"
    assert other.monthly  # the other organization's policy of the same name does not count


def test_amounts_follow_the_invoices_minor_units(store: Store) -> None:
    c, inv = _setup(store, balance="1000", currency="JPY")
    with pytest.raises(InvalidInput) as refused:
        create_plan(
            store,
            c.org_id,
            c.connection_id,
            inv,
            installments=[{"due_date": "2026-12-01", "amount": "500.5"}, {"due_date": "2027-01-01", "amount": "499.5"}],
            policy="monthly",
            actor=ACTOR,
            now=NOW,
        )
    assert refused.value.field == "installments[0].amount"
    assert "no decimals" in refused.value.user_message
    plan = create_plan(
        store,
        c.org_id,
        c.connection_id,
        inv,
        installments=[{"due_date": "2026-12-01", "amount": 500}, {"due_date": "2027-01-01", "amount": "500"}],
        policy="monthly",
        actor=ACTOR,
        now=NOW,
    )
    assert [i.amount for i in plan.installments] == ["500", "500"]
    assert plan.total == "1000"


def test_one_active_plan_per_invoice_cancel_then_create_and_a_broken_one_is_replaced(store: Store) -> None:
    c, inv = _setup(store)
    first = create_plan(
        store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
    )
    with pytest.raises(InUse) as refused:
        create_plan(store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW)
    assert refused.value.field == "invoice_id"
    assert "cancel it first" in refused.value.user_message
    cancelled = cancel_plan(store, c.org_id, c.connection_id, inv, first.id, "bob", NOW)
    assert cancelled.state == "cancelled"
    with pytest.raises(InvalidInput):
        cancel_plan(store, c.org_id, c.connection_id, inv, first.id, "bob", NOW)
    second = create_plan(
        store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
    )
    with store.unit_of_work() as uow:
        row = uow.session.get(PaymentPlan, second.id)
        assert row is not None
        row.state = "broken"  # what the planner records when an installment is missed
        uow.commit()
    third = create_plan(
        store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
    )
    with store.unit_of_work() as uow:
        states = {p.id: p.state for p in list_plans(uow, c.org_id, c.connection_id, inv)}
        audit = entries(uow, c.org_id, entity="payment_plan")
    assert states == {first.id: "cancelled", second.id: "cancelled", third.id: "active"}
    replaced = next(e for e in audit if e.entity_id == str(second.id) and e.change == "update")
    assert replaced.after is not None
    assert replaced.after["reason"] == "replaced by a new plan"
    assert next(e for e in audit if e.entity_id == str(first.id) and e.change == "update").actor == "bob"


def test_only_an_open_invoice_with_a_balance_gets_a_plan(store: Store) -> None:
    c = client(store)
    paid = invoice(store, c.connection_id, "p", status="paid")
    empty = invoice(store, c.connection_id, "z", balance="0.00")
    for inv in (paid, empty):
        with pytest.raises(InvalidInput) as refused:
            create_plan(
                store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
            )
        assert refused.value.field == "invoice_id"


def test_plans_of_other_clients_invoices_are_unknown(store: Store) -> None:
    c, inv = _setup(store)
    other = client(store, organization="Other practice")
    theirs = invoice(store, other.connection_id, "1")
    plan = create_plan(
        store, c.org_id, c.connection_id, inv, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
    )
    with pytest.raises(UnknownRecord):
        create_plan(
            store, c.org_id, c.connection_id, theirs, installments=THREE, policy="monthly", actor=ACTOR, now=NOW
        )
    with pytest.raises(UnknownRecord):
        cancel_plan(store, other.org_id, other.connection_id, theirs, plan.id, ACTOR, NOW)
    for wrong in (999_999, 2**70, True):
        with pytest.raises(UnknownRecord):
            cancel_plan(store, c.org_id, c.connection_id, inv, wrong, ACTOR, NOW)
    with store.unit_of_work() as uow, pytest.raises(UnknownRecord):
        list_plans(uow, c.org_id, other.connection_id, theirs)


def test_an_equal_split_puts_the_remainder_on_the_last() -> None:
    assert [m.amount for m in equal_amounts(Money.of("100.00", "USD"), 3)] == [
        Decimal("33.33"),
        Decimal("33.33"),
        Decimal("33.34"),
    ]
    assert [m.amount for m in equal_amounts(Money.of("1000", "JPY"), 3)] == [Decimal(333), Decimal(333), Decimal(334)]
    assert [m.amount for m in equal_amounts(Money.of("0.10", "BHD"), 4)] == [Decimal("0.025")] * 4
    with pytest.raises(PlanError):
        equal_amounts(Money.of("0.02", "USD"), 3)


def test_a_proposal_splits_the_current_balance_over_dates_and_saves_nothing(store: Store) -> None:
    c, inv = _setup(store, balance="100.00")
    with store.unit_of_work() as uow:
        proposal = propose_plan(
            uow, c.org_id, c.connection_id, inv, count=3, first="2027-01-31", every="month", now=NOW
        )
        weekly = propose_plan(
            uow, c.org_id, c.connection_id, inv, count=2, first=date(2026, 11, 20), every="week", now=NOW
        )
        for kwargs, field in (
            ({"count": 0, "first": "2026-12-01"}, "count"),
            ({"count": 121, "first": "2026-12-01"}, "count"),
            ({"count": 3, "first": "2026-11-01"}, "first"),
            ({"count": 3, "first": "2026-12-01", "every": "year"}, "every"),
            ({"count": 10001, "first": "2026-12-01"}, "count"),
        ):
            with pytest.raises(InvalidInput) as refused:
                propose_plan(uow, c.org_id, c.connection_id, inv, now=NOW, **kwargs)
            assert refused.value.field == field
        assert uow.session.scalars(select(PaymentPlan)).all() == []
    assert [(i.due_date, i.amount) for i in proposal.installments] == [
        (date(2027, 1, 31), "33.33"),
        (date(2027, 2, 28), "33.33"),
        (date(2027, 3, 31), "33.34"),
    ]
    assert [i.due_date for i in weekly.installments] == [date(2026, 11, 20), date(2026, 11, 27)]
    plan = create_plan(
        store,
        c.org_id,
        c.connection_id,
        inv,
        installments=[{"due_date": i.due_date, "amount": i.amount} for i in proposal.installments],
        policy="monthly",
        actor=ACTOR,
        now=NOW,
    )
    assert plan.total == "100.00"


def test_two_people_agreeing_plans_at_once_cannot_both_succeed(postgres_database: Any) -> None:
    """PostgreSQL: while another transaction holds the invoice (creating its plan), a second create waits for
    it, then sees that plan and is refused, instead of adding a second active plan."""
    name = f"plan-race-{uuid.uuid4().hex[:8]}"
    store = postgres_database.store(application_name=name)
    store.upgrade()
    try:
        c, inv = _setup(store)
        outcome: dict[str, Any] = {}
        with store.unit_of_work() as first:
            first.session.execute(select(Invoice.id).where(Invoice.id == inv).with_for_update())
            plan = PaymentPlan(connection_id=c.connection_id, invoice_external_id="1", policy="monthly", created_at=NOW)
            plan.installments = [Installment(due_date=date(2026, 12, 1), amount=Decimal("500.00"), currency="GBP")]
            first.session.add(plan)
            first.flush()

            def second() -> None:
                try:
                    create_plan(
                        store,
                        c.org_id,
                        c.connection_id,
                        inv,
                        installments=THREE,
                        policy="monthly",
                        actor=ACTOR,
                        now=NOW,
                    )
                    outcome["result"] = "created"
                except InUse as exc:
                    outcome["result"] = exc

            thread = threading.Thread(target=second)
            thread.start()
            _wait_until_blocked(store, name)
            first.commit()
        thread.join(timeout=60)
        assert isinstance(outcome.get("result"), InUse)
        with store.unit_of_work() as uow:
            states = list(uow.session.scalars(select(PaymentPlan.state)))
        assert states == ["active"]
    finally:
        store.dispose()


def _wait_until_blocked(store: Store, application_name: str) -> None:
    """Until a session of `application_name` waits for a row lock (the second create reached the lock)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'")
    for _ in range(600):
        with store.engine.connect() as connection:
            if connection.execute(query, {"name": application_name}).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the second create never waited for the invoice's lock")
