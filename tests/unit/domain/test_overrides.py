"""Customer and invoice overrides in the planner (issue 14): promise to pay with amount and grace, dispute
reasons, and holds on single invoices (pause, exclude, dispute) that leave the customer's other invoices chased;
an agreed due date moves the cadence of one invoice."""

from __future__ import annotations

from datetime import date, datetime

from connector.domain.actions import Action, ActionKind, History, HoldReason
from connector.domain.cadence import ConnectionSettings, plan, promise_kept
from connector.domain.model import CustomerOverrides, InvoiceOverrides, InvoiceSnapshot, Payment
from connector.domain.preview import PlanningState, preview
from tests.support.domain import CONN, invoice, kinds, money, only, policies, told, utc

MONDAY = utc(2024, 3, 11, 10)  # 10 days after the 1 March due date; 10:00 London


def planned(
    invoices: list[InvoiceSnapshot],
    *,
    customers: dict[str, CustomerOverrides] | None = None,
    invoice_overrides: dict[str, InvoiceOverrides] | None = None,
    now: datetime = MONDAY,
) -> list[Action]:
    """One plan of a two-step cadence (the late step charges a flat fee) at `now`."""
    pol = policies(
        late_fees={"flat": {"kind": "flat", "amount": 10}},
        steps=[
            {"id": "due", "offset": 0, "remind": "due_today"},
            {"id": "late7", "offset": 7, "remind": "firm", "late_fee": "flat"},
        ],
    )
    return plan(
        invoices,
        customers or {},
        pol.cadences["default"],
        pol,
        told(History(), "1", "2"),  # every late fee was announced long ago
        now,
        connection=CONN,
        invoice_overrides=invoice_overrides,
    )


def test_a_promise_waits_through_its_grace_and_says_so() -> None:
    promise = CustomerOverrides(promise_to_pay=date(2024, 3, 8), promise_amount=money("100.00"), promise_grace_days=3)
    [hold] = planned([invoice(due=date(2024, 3, 1))], customers={"cust-a": promise})
    assert hold.hold_reason is HoldReason.PROMISE_TO_PAY
    assert hold.text == (
        f"the customer promised to pay {money('100.00')} by 2024-03-08; chasing waits until 2024-03-11 "
        "(3 days' grace), then resumes if not kept"
    )
    # the day after promise date + grace, chasing resumes
    resumed = planned([invoice(due=date(2024, 3, 1))], customers={"cust-a": promise}, now=utc(2024, 3, 12, 10))
    assert sorted(kinds(resumed)) == ["late_fee", "remind"]


def test_a_promise_without_grace_resumes_the_day_after_its_date() -> None:
    promise = CustomerOverrides(promise_to_pay=date(2024, 3, 10))
    assert "remind" in kinds(planned([invoice(due=date(2024, 3, 1))], customers={"cust-a": promise}))


def test_a_dispute_hold_carries_its_reason() -> None:
    over = CustomerOverrides(dispute=True, dispute_reason="goods arrived damaged")
    [hold] = planned([invoice(due=date(2024, 3, 1))], customers={"cust-a": over})
    assert (hold.hold_reason, hold.text) == (HoldReason.DISPUTE, "the customer is in dispute: goods arrived damaged")


def test_promise_kept_counts_payments_on_or_before_the_date_covering_the_amount() -> None:
    promise = CustomerOverrides(promise_to_pay=date(2024, 3, 8), promise_amount=money("100.00"))
    on_time = [Payment(money("60.00"), date(2024, 3, 5)), Payment(money("40.00"), date(2024, 3, 8))]
    assert promise_kept(promise, on_time) == (True, [money("100.00")])
    late = [Payment(money("60.00"), date(2024, 3, 5)), Payment(money("40.00"), date(2024, 3, 9))]
    assert promise_kept(promise, late) == (False, [money("60.00")])
    other_currency = [Payment(money("100.00", "EUR"), date(2024, 3, 5))]
    assert promise_kept(promise, other_currency)[0] is False
    long_before = [Payment(money("100.00"), date(2024, 1, 2))]
    assert promise_kept(promise, long_before) == (False, [])
    assert promise_kept(CustomerOverrides(promise_to_pay=date(2024, 3, 8)), on_time)[0] is True
    assert promise_kept(CustomerOverrides(), on_time) == (False, [])


INVOICE_HOLDS = [
    (InvoiceOverrides(excluded=True), HoldReason.EXCLUDED, "invoice INV-1 is excluded from chasing"),
    (
        InvoiceOverrides(dispute=True, dispute_reason="wrong quantity"),
        HoldReason.DISPUTE,
        "invoice INV-1 is in dispute: wrong quantity",
    ),
    (
        InvoiceOverrides(paused_until=date(2024, 3, 20)),
        HoldReason.PAUSED,
        "chasing of invoice INV-1 is paused until 2024-03-20",
    ),
]


def test_an_invoice_override_holds_that_invoice_only_and_stops_its_fees() -> None:
    for over, reason, text in INVOICE_HOLDS:
        both = [invoice("1", due=date(2024, 3, 1)), invoice("2", due=date(2024, 3, 1))]
        actions = planned(both, invoice_overrides={"1": over})
        [hold] = only(actions, ActionKind.HOLD)
        assert (hold.invoice_external_ids, hold.hold_reason, hold.text) == (("1",), reason, text)
        # the grouped reminder to the customer leaves the held invoice out, and no fee is charged on it
        [reminder] = only(actions, ActionKind.REMIND)
        assert reminder.invoice_external_ids == ("2",)
        assert [fee.invoice_external_ids for fee in only(actions, ActionKind.LATE_FEE)] == [("2",)]


def test_an_ended_invoice_pause_releases_the_invoice() -> None:
    actions = planned(
        [invoice("1", due=date(2024, 3, 1))], invoice_overrides={"1": InvoiceOverrides(paused_until=date(2024, 3, 11))}
    )
    assert ActionKind.HOLD.value not in kinds(actions)
    assert "remind" in kinds(actions)


def test_an_agreed_due_date_moves_the_cadence_of_that_invoice() -> None:
    agreed = {"1": InvoiceOverrides(agreed_due_date=date(2024, 3, 11))}
    # the ledger says due 1 March (10 days late: the late step); the agreed date makes today the due date
    [reminder] = only(planned([invoice("1", due=date(2024, 3, 1))], invoice_overrides=agreed), ActionKind.REMIND)
    assert (reminder.step_id, reminder.due_date) == ("due", date(2024, 3, 11))
    # a changed agreed date starts a fresh cycle: new keys
    moved = {"1": InvoiceOverrides(agreed_due_date=date(2024, 3, 4))}
    [again] = only(planned([invoice("1", due=date(2024, 3, 1))], invoice_overrides=moved), ActionKind.REMIND)
    assert again.key != reminder.key
    assert again.due_date == date(2024, 3, 4)


def test_preview_applies_invoice_overrides() -> None:
    pol = policies()
    state = PlanningState(
        ConnectionSettings("conn-1", time_zone="Europe/London"),
        (invoice("1", due=date(2024, 3, 1)),),
        pol.cadences["default"],
        pol,
        invoice_overrides={"1": InvoiceOverrides(excluded=True)},
    )
    actions = preview(state, utc(2024, 2, 26, 8), 10).actions
    assert {a.kind for a in actions} == {ActionKind.HOLD}
