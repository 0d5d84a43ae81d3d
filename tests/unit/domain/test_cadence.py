"""The planner, table-driven: send times across DST, holidays, month ends, 29 February; catch-up;
grouping; stop conditions; keys; fees, reversals, discounts, payment plans, approval, escalation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.actions import KEY_LENGTH, ActionKind, History, HoldReason, InvoiceFacts, action_key
from connector.domain.cadence import ConnectionSettings, plan
from connector.domain.fees import FeeRecord, ReferenceRates
from connector.domain.model import CustomerOverrides, InvoiceStatus, Payment, PaymentPlan
from connector.domain.payment_plans import split_installments
from connector.domain.preview import PlanningState, preview
from tests.support.domain import CONN, invoice, kinds, money, only, policies, run, told, utc


def timeline(pol: Any, invoices: list[Any], start: datetime, days: int, **state: Any) -> list[Any]:
    connection = state.pop("connection", CONN)
    st = PlanningState(connection, tuple(invoices), pol.cadences["default"], pol, **state)
    return list(preview(st, start, days).actions)


def reminders(actions: list[Any]) -> list[tuple[str, datetime]]:
    return [(a.step_id, a.scheduled_at) for a in actions if a.kind is ActionKind.REMIND]


@pytest.mark.parametrize(
    ("tz", "holidays", "due", "expected"),
    [
        # Good Friday due date; the clocks go forward on 31 March; Easter Monday is skipped.
        (
            "Europe/London",
            {"country": "GB", "subdiv": "ENG"},
            date(2024, 3, 29),
            [
                ("before", utc(2024, 3, 26, 9)),
                ("due", utc(2024, 4, 2, 8)),
                ("late7", utc(2024, 4, 5, 8)),
                ("late30", utc(2024, 4, 29, 8)),
            ],
        ),
        # 29 February; the +30 step lands on Saturday 30 March, Easter Monday follows: Tuesday 2 April (BST).
        (
            "Europe/London",
            {"country": "GB", "subdiv": "ENG"},
            date(2024, 2, 29),
            [
                ("before", utc(2024, 2, 26, 9)),
                ("due", utc(2024, 2, 29, 9)),
                ("late7", utc(2024, 3, 7, 9)),
                ("late30", utc(2024, 4, 2, 8)),
            ],
        ),
        # month and year end: the -3 step lands on Saturday 28 December -> Monday 30 December.
        (
            "Europe/London",
            {"country": "GB", "subdiv": "ENG"},
            date(2024, 12, 31),
            [
                ("before", utc(2024, 12, 30, 9)),
                ("due", utc(2024, 12, 31, 9)),
                ("late7", utc(2025, 1, 7, 9)),
                ("late30", utc(2025, 1, 30, 9)),
            ],
        ),
        # autumn: BST ends on 27 October 2024.
        (
            "Europe/London",
            {"country": "GB", "subdiv": "ENG"},
            date(2024, 10, 25),
            [
                ("before", utc(2024, 10, 22, 8)),
                ("due", utc(2024, 10, 25, 8)),
                ("late7", utc(2024, 11, 1, 9)),
                ("late30", utc(2024, 11, 25, 9)),
            ],
        ),
        # New York: EDT from 10 March 2024; +30 is Sunday 7 April -> Monday.
        (
            "America/New_York",
            {"country": "US", "subdiv": "NY"},
            date(2024, 3, 8),
            [
                ("before", utc(2024, 3, 5, 14)),
                ("due", utc(2024, 3, 8, 14)),
                ("late7", utc(2024, 3, 15, 13)),
                ("late30", utc(2024, 4, 8, 13)),
            ],
        ),
        # New York: Thanksgiving (28 Nov) due date, EST from 3 November.
        (
            "America/New_York",
            {"country": "US"},
            date(2024, 11, 28),
            [
                ("before", utc(2024, 11, 25, 14)),
                ("due", utc(2024, 11, 29, 14)),
                ("late7", utc(2024, 12, 5, 14)),
                ("late30", utc(2024, 12, 30, 14)),
            ],
        ),
        # Sydney: AEDT (+11) ends 7 April 2024; +30 is Sunday 5 May -> Monday 6 May 09:00 AEST.
        (
            "Australia/Sydney",
            {"country": "AU", "subdiv": "NSW"},
            date(2024, 4, 5),
            [
                ("before", utc(2024, 4, 1, 22)),
                ("due", utc(2024, 4, 4, 22)),
                ("late7", utc(2024, 4, 11, 23)),
                ("late30", utc(2024, 5, 5, 23)),
            ],
        ),
        # Sydney: AEST (+10) until 6 October 2024, AEDT (+11) after.
        (
            "Australia/Sydney",
            {"country": "AU", "subdiv": "NSW"},
            date(2024, 10, 4),
            [
                ("before", utc(2024, 9, 30, 23)),
                ("due", utc(2024, 10, 3, 23)),
                ("late7", utc(2024, 10, 10, 22)),
                ("late30", utc(2024, 11, 3, 22)),
            ],
        ),
    ],
)
def test_steps_fire_at_local_send_time_on_send_days(
    tz: str, holidays: dict[str, str], due: date, expected: list[tuple[str, datetime]]
) -> None:
    pol = policies(time_zone=tz, holidays=holidays)
    actions = timeline(
        pol,
        [invoice(due=due)],
        datetime.combine(due - timedelta(days=10), datetime.min.time(), UTC),
        50,
        connection=ConnectionSettings("c", tz),
    )
    assert reminders(actions) == expected
    # the last step escalates
    assert [a.step_id for a in only(actions, ActionKind.ESCALATE)] == ["late30"]


def test_sydney_labour_day_is_skipped() -> None:
    # 4 Oct 2024 + 7 = Friday 11 Oct (no shift); check the Monday holiday separately
    pol = policies(
        [{"id": "a", "offset": 3, "remind": "x"}],
        time_zone="Australia/Sydney",
        holidays={"country": "AU", "subdiv": "NSW"},
    )
    actions = timeline(pol, [invoice(due=date(2024, 10, 4))], utc(2024, 10, 1), 10)
    # +3 = Monday 7 October, Labour Day -> Tuesday 8 October 09:00 AEDT = 7 Oct 22:00 UTC
    assert reminders(actions) == [("a", utc(2024, 10, 7, 22))]


def test_business_day_offsets() -> None:
    pol = policies(
        [
            {"id": "b1", "offset": 1, "days": "business", "remind": "x"},
            {"id": "b5", "offset": 5, "days": "business", "remind": "y"},
        ]
    )
    actions = timeline(pol, [invoice(due=date(2024, 3, 28))], utc(2024, 3, 20), 20)
    # Thursday 28 March + 1 business day: Good Friday, weekend and Easter Monday skipped.
    assert reminders(actions) == [("b1", utc(2024, 4, 2, 8)), ("b5", utc(2024, 4, 8, 8))]


def test_customer_time_zone_wins_over_connection_and_cadence() -> None:
    pol = policies([{"id": "due", "offset": 0, "remind": "x"}], holidays=None)
    overrides = {"cust-a": CustomerOverrides(time_zone="America/New_York", holiday_country="US")}
    actions = timeline(pol, [invoice(due=date(2024, 7, 3))], utc(2024, 7, 1), 5, customers=overrides)
    assert reminders(actions) == [("due", utc(2024, 7, 3, 13))]
    holiday = timeline(pol, [invoice(due=date(2024, 7, 4))], utc(2024, 7, 1), 5, customers=overrides)
    assert reminders(holiday) == [("due", utc(2024, 7, 5, 13))]  # Independence Day


def test_send_window_hours_hold_overdue_moments_until_the_window_opens() -> None:
    pol = policies()
    late = [invoice(due=date(2024, 3, 1))]
    assert run(late, pol, utc(2024, 3, 11, 20)) == []  # 20:00 GMT: window closed
    morning = run(late, pol, utc(2024, 3, 12, 7, 59))
    assert morning == []
    opened = run(late, pol, utc(2024, 3, 12, 8, 5))
    assert reminders(opened) == [("late7", utc(2024, 3, 12, 8, 5))]
    # a look-ahead plan (as preview runs it) schedules it at the opening of the window
    ahead = plan(
        late,
        {},
        pol.cadences["default"],
        pol,
        History(),
        utc(2024, 3, 11, 20),
        connection=CONN,
        horizon=timedelta(days=1),
    )
    assert reminders(ahead) == [("late7", utc(2024, 3, 12, 8))]


def test_catch_up_starts_friendly_and_keeps_the_cadences_spacing() -> None:
    pol = policies()
    # due 1 Feb 2024, first seen 40 days late (Tuesday 12 March): the first contact is the earliest step after
    # the due date that is not final ('late7'), never the final notice with its escalation
    inv = invoice(due=date(2024, 2, 1))
    history = History(invoices={"1": InvoiceFacts(first_seen=date(2024, 3, 12))})
    actions = run([inv], pol, utc(2024, 3, 12, 10), history=history)
    assert reminders(actions) == [("late7", utc(2024, 3, 12, 10))]
    assert kinds(actions) == ["remind"]
    again = run([inv], pol, utc(2024, 3, 13, 10), history=history.record(actions))
    assert again == []
    # 'late30' follows 23 days later, as in the cadence (+7 -> +30): Thursday 4 April 09:00 BST
    later = timeline(pol, [inv], utc(2024, 3, 12, 10), 40, history=history)
    assert reminders(later) == [("late7", utc(2024, 3, 12, 10)), ("late30", utc(2024, 4, 4, 8))]


def test_catch_up_skip_waits_for_the_next_step() -> None:
    steps = [
        {"id": "a", "offset": 7, "remind": "x"},
        {"id": "b", "offset": 30, "remind": "y"},
        {"id": "c", "offset": 60, "remind": "z"},
    ]
    pol = policies(steps, catch_up="skip")
    history = History(invoices={"1": InvoiceFacts(first_seen=date(2024, 3, 12))})
    st = PlanningState(CONN, (invoice(due=date(2024, 2, 1)),), pol.cadences["default"], pol, history=history)
    actions = preview(st, utc(2024, 3, 12, 10), 30).actions
    # +60 is Easter Monday 1 April -> Tuesday 2 April 09:00 BST
    assert reminders(list(actions)) == [("c", utc(2024, 4, 2, 8))]


def test_steps_missed_by_an_outage_never_burst() -> None:
    pol = policies()
    inv = invoice(due=date(2024, 3, 1))
    first = run([inv], pol, utc(2024, 2, 27, 10))
    assert reminders(first) == [("before", utc(2024, 2, 27, 10))]
    # no run until 9 March: "due" and "late7" both passed, only late7 goes
    later = run([inv], pol, utc(2024, 3, 11, 10), history=History().record(first))
    assert reminders(later) == [("late7", utc(2024, 3, 11, 10))]


def test_one_grouped_reminder_per_customer_per_day() -> None:
    pol = policies()
    invoices = [
        invoice("1", due=date(2024, 3, 1)),
        invoice("2", due=date(2024, 2, 23)),
        invoice("3", due=date(2024, 3, 1), customer="cust-b"),
    ]
    actions = run(invoices, pol, utc(2024, 3, 1, 9, 30))
    grouped = only(actions, ActionKind.REMIND)
    assert [(a.customer_external_id, a.invoice_external_ids) for a in grouped] == [
        ("cust-a", ("2", "1")),
        ("cust-b", ("3",)),
    ]
    lead = grouped[0]
    assert lead.template == "overdue"  # the most advanced step leads
    assert lead.amount == money(200)
    assert lead.recipients == ("cust-a@example.com",)
    assert [(i.invoice_external_id, i.step_id, i.days_overdue) for i in lead.items] == [
        ("2", "late7", 7),
        ("1", "due", 0),
    ]
    assert set(lead.member_keys) == {i.member_key for i in lead.items}
    assert len(lead.key) == KEY_LENGTH
    assert lead.key not in lead.member_keys
    assert grouped[1].key == grouped[1].member_keys[0]
    assert "one reminder per customer per day" in lead.rule


def test_a_customer_reminded_today_waits_for_tomorrow() -> None:
    pol = policies()
    first = run([invoice("1", due=date(2024, 3, 1))], pol, utc(2024, 3, 1, 9))
    history = History().record(first)
    both = [invoice("1", due=date(2024, 3, 1)), invoice("2", due=date(2024, 3, 1))]
    assert run(both, pol, utc(2024, 3, 1, 15), history=history) == []
    tomorrow = run(both, pol, utc(2024, 3, 4, 9), history=history)  # Monday
    assert [(a.invoice_external_ids, a.local_date) for a in tomorrow] == [(("2",), date(2024, 3, 4))]


HOLD_CASES: list[tuple[str, dict[str, Any], dict[str, Any], HoldReason | None]] = [
    ("dispute", {}, {"dispute": True}, HoldReason.DISPUTE),
    ("excluded", {}, {"excluded": True}, HoldReason.EXCLUDED),
    ("paused", {}, {"paused_until": date(2024, 3, 20)}, HoldReason.PAUSED),
    ("pause over", {}, {"paused_until": date(2024, 3, 11)}, None),
    ("promise", {}, {"promise_to_pay": date(2024, 3, 11)}, HoldReason.PROMISE_TO_PAY),
    ("promise broken", {}, {"promise_to_pay": date(2024, 3, 10)}, None),
    ("below minimum", {"balance": "4.99"}, {}, HoldReason.BELOW_MINIMUM),
    ("at minimum", {"balance": "5.00"}, {}, None),
    ("unknown cadence", {}, {"cadence": "gentle"}, HoldReason.UNKNOWN_CADENCE),
]


@pytest.mark.parametrize(("name", "inv_args", "override", "reason"), HOLD_CASES, ids=[c[0] for c in HOLD_CASES])
def test_stop_conditions_become_holds(
    name: str, inv_args: dict[str, Any], override: dict[str, Any], reason: HoldReason | None
) -> None:
    pol = policies(minimum_amount=5)
    actions = run(
        [invoice(due=date(2024, 3, 1), **inv_args)],
        pol,
        utc(2024, 3, 11, 10),
        overrides={"cust-a": CustomerOverrides(**override)},
    )
    if reason is None:
        assert kinds(actions) == ["remind"]
    else:
        assert kinds(actions) == ["hold"]
        assert actions[0].hold_reason is reason
        assert actions[0].text
        assert not actions[0].requires_approval
        assert (
            run(
                [invoice(due=date(2024, 3, 1), **inv_args)],
                pol,
                utc(2024, 3, 11, 11),
                overrides={"cust-a": CustomerOverrides(**override)},
                history=History().record(actions),
            )
            == []
        )


@pytest.mark.parametrize(
    "status", [InvoiceStatus.PAID, InvoiceStatus.VOIDED, InvoiceStatus.DELETED, InvoiceStatus.DRAFT]
)
def test_closed_invoices_get_nothing(status: InvoiceStatus) -> None:
    assert run([invoice(due=date(2024, 3, 1), status=status)], policies(), utc(2024, 3, 11, 10)) == []


def test_zero_balance_and_missing_due_date_get_nothing() -> None:
    pol = policies()
    assert run([invoice(due=date(2024, 3, 1), balance="0")], pol, utc(2024, 3, 11, 10)) == []
    assert run([invoice(due=None)], pol, utc(2024, 3, 11, 10)) == []


def test_unapplied_credit_covering_the_balance_holds() -> None:
    pol = policies()
    inv = invoice(due=date(2024, 3, 1))
    held = run([inv], pol, utc(2024, 3, 11, 10), credit={"cust-a": money(100)})
    assert [a.hold_reason for a in held] == [HoldReason.UNAPPLIED_CREDIT]
    assert "apply it in the ledger" in (held[0].text or "")
    assert kinds(run([inv], pol, utc(2024, 3, 11, 10), credit={"cust-a": money("99.99")})) == ["remind"]
    assert kinds(run([inv], pol, utc(2024, 3, 11, 10), credit={"cust-a": money(500, "USD")})) == ["remind"]


def test_customer_cadence_override() -> None:
    base = policies()
    gentle = replace(
        base.cadences["default"], name="gentle", steps=(replace(base.cadences["default"].steps[1], id="only"),)
    )
    pol = replace(base, cadences={**base.cadences, "gentle": gentle})
    actions = run(
        [invoice(due=date(2024, 3, 1))],
        pol,
        utc(2024, 3, 1, 10),
        overrides={"cust-a": CustomerOverrides(cadence="gentle")},
    )
    assert reminders(actions) == [("only", utc(2024, 3, 1, 10))]


def test_keys_are_deterministic_and_a_new_due_date_starts_a_fresh_cycle() -> None:
    pol = policies()
    first = run([invoice(due=date(2024, 3, 1))], pol, utc(2024, 3, 1, 10))
    assert [a.key for a in first] == [a.key for a in run([invoice(due=date(2024, 3, 1))], pol, utc(2024, 3, 1, 10))]
    expected = action_key("conn-1", "1", "due", date(2024, 3, 1), "remind", 0)
    assert first[0].key == expected
    assert len(expected) == 40
    int(expected, 16)
    history = History().record(first)
    moved = run([invoice(due=date(2024, 3, 4))], pol, utc(2024, 3, 4, 10), history=history)
    assert reminders(moved) == [("due", utc(2024, 3, 4, 10))]
    assert moved[0].key != first[0].key
    # the day's reminder limit still holds across cycles
    same_day = run([invoice(due=date(2024, 3, 1) + timedelta(days=1))], pol, utc(2024, 3, 1, 15), history=history)
    assert only(same_day, ActionKind.REMIND) == []


def test_escalation_stops_further_reminders() -> None:
    steps = [
        {"id": "a", "offset": 1, "remind": "x"},
        {"id": "esc", "offset": 10, "escalate": True},
        {"id": "b", "offset": 20, "remind": "y", "call_task": "call them"},
    ]
    pol = policies(steps)
    actions = timeline(pol, [invoice(due=date(2024, 3, 1))], utc(2024, 2, 28), 60)
    assert [(a.kind.value, a.step_id) for a in actions] == [("remind", "a"), ("escalate", "esc")]


def test_notes_call_tasks_and_rules() -> None:
    steps = [{"id": "late", "offset": 5, "remind": "overdue", "note": "Reminder sent", "call_task": "Phone AP"}]
    actions = run([invoice(due=date(2024, 3, 1))], policies(steps), utc(2024, 3, 6, 10))
    assert sorted(kinds(actions)) == ["call_task", "note", "remind"]
    note = only(actions, ActionKind.NOTE)[0]
    assert note.text == "Reminder sent"
    assert note.rule.startswith("cadence 'default' step 'late' (5 days after")
    assert only(actions, ActionKind.CALL_TASK)[0].text == "Phone AP"
    for action in actions:
        assert action.scheduled_at.tzinfo is UTC
        assert action.connection_id == "conn-1"
        assert action.customer_external_id == "cust-a"
        assert action.due_date == date(2024, 3, 1)


def test_approval_modes() -> None:
    steps = [{"id": "late", "offset": 5, "remind": "overdue", "late_fee": "flat"}]
    fees = {"flat": {"kind": "flat", "amount": 10}}
    inv = [invoice(due=date(2024, 3, 1))]
    plain = run(inv, policies(steps, late_fees=fees), utc(2024, 3, 6, 10), history=told())
    assert not any(a.requires_approval for a in plain)
    ledger = run(inv, policies(steps, late_fees=fees, approval="ledger"), utc(2024, 3, 6, 10), history=told())
    assert {a.kind.value: a.requires_approval for a in ledger} == {"late_fee": True, "remind": False}
    everything = run(
        inv,
        policies(steps, late_fees=fees),
        utc(2024, 3, 6, 10),
        connection=replace(CONN, approval_mode=True),
        history=told(),
    )
    assert all(a.requires_approval for a in everything)


def test_uk_statutory_fee_through_the_planner_on_29_february() -> None:
    """£10,000 due Monday 15 January 2024; the step 45 days later is Thursday 29 February:
    10000 x 13 % x 45/365 = 160.27, plus £100 compensation = £260.27."""
    steps = [{"id": "statutory", "offset": 45, "late_fee": "uk"}]
    pol = policies(steps, late_fees={"uk": {"kind": "uk_statutory"}})
    conn = replace(CONN, rates=ReferenceRates(uk_base_rate=Decimal(5)))
    actions = run(
        [invoice(due=date(2024, 1, 15), total="10000.00")], pol, utc(2024, 2, 29, 9), connection=conn, history=told()
    )
    fee = only(actions, ActionKind.LATE_FEE)[0]
    assert fee.amount == money("260.27")
    assert fee.fee is not None
    assert fee.fee.assessed_on == date(2024, 2, 29)
    assert [amount for _, amount in fee.fee.lines] == [money("160.27"), money(100)]
    # without a configured base rate the fee is held, never guessed
    held = run([invoice(due=date(2024, 1, 15), total="10000.00")], pol, utc(2024, 2, 29, 9), history=told())
    assert [a.hold_reason for a in held] == [HoldReason.CONFIGURATION]


def test_recurring_monthly_fee_with_a_maximum_count_and_month_ends() -> None:
    steps = [{"id": "fee", "offset": 1, "late_fee": "monthly"}]
    pol = policies(steps, late_fees={"monthly": {"kind": "flat", "amount": 15, "repeat": "month", "max_count": 3}})
    actions = timeline(pol, [invoice(due=date(2024, 1, 30))], utc(2024, 1, 29), 150, history=told())
    fees = only(actions, ActionKind.LATE_FEE)
    # 31 Jan, 29 Feb (clamped from 31), 31 Mar is a Sunday -> Tue 2 April after Easter Monday (BST)
    assert [(f.scheduled_at, f.occurrence) for f in fees] == [
        (utc(2024, 1, 31, 9), 0),
        (utc(2024, 2, 29, 9), 1),
        (utc(2024, 4, 2, 8), 2),
    ]
    assert len({f.key for f in fees}) == 3
    assert "occurrence 3 of 3" in fees[2].rule


def test_monthly_interest_through_the_planner_on_a_partly_paid_invoice() -> None:
    steps = [{"id": "interest", "offset": 30, "late_fee": "interest"}]
    pol = policies(steps, late_fees={"interest": {"kind": "interest", "rate_per_month": 1.5}})
    history = told(History(invoices={"1": InvoiceFacts(payments=(Payment(money(400), date(2024, 3, 11)),))}))
    actions = run(
        [invoice(due=date(2024, 3, 1), total="1000.00", balance="600.00")], pol, utc(2024, 4, 2, 9), history=history
    )
    # 31 March is Easter Sunday, 1 April Easter Monday: assessed Tuesday 2 April, 32 days:
    # (1000 x 10 + 600 x 22) x 18 % / 365 = 4176 / 365 = 11.441 -> 11.44
    assert [a.amount for a in actions] == [money("11.44")]


FLAT_FEE = {"flat": {"kind": "flat", "amount": 10}}


def fee_record(amount: str, assessed_on: date, key: str = "fee-key") -> FeeRecord:
    return FeeRecord(
        key=key,
        policy="flat",
        step_id="late",
        due_date=date(2024, 3, 1),
        occurrence=0,
        assessed_on=assessed_on,
        amount=money(amount),
        balance=money(100),
    )


def test_fee_reversal_for_a_payment_dated_before_the_assessment() -> None:
    pol = policies([{"id": "late", "offset": 5, "late_fee": "flat"}], late_fees=FLAT_FEE)
    facts = InvoiceFacts(payments=(Payment(money(100), date(2024, 3, 5)),), fees=(fee_record("10", date(2024, 3, 6)),))
    paid = invoice(due=date(2024, 3, 1), balance="0", status=InvoiceStatus.PAID)
    actions = run([paid], pol, utc(2024, 3, 8, 10), history=History(invoices={"1": facts}))
    assert kinds(actions) == ["fee_reversal"]
    assert actions[0].amount == money(10)
    assert actions[0].reverses == "fee-key"
    recorded = History(invoices={"1": facts}).record(actions)
    assert recorded.facts("1").fees[0].reversed
    assert run([paid], pol, utc(2024, 3, 9, 10), history=recorded) == []
    # a payment after the assessment date: the fee stands
    later = InvoiceFacts(payments=(Payment(money(100), date(2024, 3, 7)),), fees=(fee_record("10", date(2024, 3, 6)),))
    assert run([paid], pol, utc(2024, 3, 8, 10), history=History(invoices={"1": later})) == []


def test_fee_is_not_charged_twice_and_history_records_it() -> None:
    pol = policies([{"id": "late", "offset": 5, "late_fee": "flat"}], late_fees=FLAT_FEE)
    inv = [invoice(due=date(2024, 3, 1))]
    first = run(inv, pol, utc(2024, 3, 6, 10), history=told())
    history = told(History().record(first))
    assert history.facts("1").fees[0].amount == money(10)
    assert run(inv, pol, utc(2024, 3, 7, 10), history=history) == []


DISCOUNTS = {"2-10": {"percent": 2, "days": 10}}
DISCOUNT_STEPS = [
    {"id": "offer", "offset": -25, "remind": "terms", "discount": "2-10"},
    {"id": "due", "offset": 0, "remind": "due_today"},
]


def test_discount_offer_appears_in_reminders_before_the_deadline() -> None:
    """'2/10 net 30': issued Friday 1 March 2024, due Sunday 31 March; the offer step is 6 March."""
    pol = policies(DISCOUNT_STEPS, discounts=DISCOUNTS)
    inv = invoice(issue=date(2024, 3, 1), due=date(2024, 3, 31), total="1000.00")
    actions = run([inv], pol, utc(2024, 3, 6, 10))
    assert sorted(kinds(actions)) == ["discount_offer", "remind"]
    reminder = only(actions, ActionKind.REMIND)[0]
    assert reminder.offer is not None
    assert (reminder.offer.discount, reminder.offer.pay_amount, reminder.offer.deadline) == (
        money(20),
        money(980),
        date(2024, 3, 11),
    )
    assert reminder.items[0].offer == reminder.offer
    # after the deadline the same step offers nothing
    late = invoice(issue=date(2024, 2, 20), due=date(2024, 3, 31), total="1000.00")
    assert kinds(run([late], pol, utc(2024, 3, 6, 10))) == ["remind"]


def test_discount_credit_closes_an_invoice_paid_early() -> None:
    pol = policies(DISCOUNT_STEPS, discounts=DISCOUNTS)
    open_inv = invoice(issue=date(2024, 3, 1), due=date(2024, 3, 31), total="1000.00")
    offered = History().record(run([open_inv], pol, utc(2024, 3, 6, 10)))
    paid = invoice(issue=date(2024, 3, 1), due=date(2024, 3, 31), total="1000.00", balance="20.00")
    history = offered.with_facts("1", InvoiceFacts(payments=(Payment(money(980), date(2024, 3, 9)),)))
    actions = run([paid], pol, utc(2024, 4, 2, 10), history=history)
    assert kinds(actions) == ["discount_credit"]
    assert actions[0].amount == money(20)
    assert run([paid], pol, utc(2024, 4, 3, 10), history=history.record(actions)) == []
    # without the offer on record, the early payment earns nothing and chasing continues
    unoffered = History().with_facts("1", InvoiceFacts(payments=(Payment(money(980), date(2024, 3, 9)),)))
    assert kinds(run([paid], pol, utc(2024, 4, 2, 10), history=unoffered)) == ["remind"]


def plan_setup() -> tuple[Any, PaymentPlan]:
    steps = [
        {"id": "due", "offset": 0, "remind": "due_today"},
        {"id": "fee", "offset": 3, "late_fee": "flat", "remind": "overdue"},
    ]
    pol = policies(
        steps,
        late_fees={"flat": {"kind": "flat", "amount": 10}},
        payment_plans={"monthly": {"grace_days": 3, "remind_offsets": [-2, 0]}},
    )
    installments = split_installments(money(300), [date(2024, 4, 3), date(2024, 5, 3), date(2024, 6, 4)])
    return pol, PaymentPlan("1", "monthly", date(2024, 3, 5), installments, plan_id="p1")


def test_payment_plan_reminders_follow_installments_and_fees_pause() -> None:
    pol, plan_obj = plan_setup()
    inv = invoice(due=date(2024, 3, 1), total="300.00")
    history = History().record(run([inv], pol, utc(2024, 3, 4, 10)))  # the fee step fired before the plan
    st = PlanningState(
        CONN, (inv,), pol.cadences["default"], pol, history=history, payment_plans={"1": plan_obj}, customers={}
    )
    # the customer pays the first two installments on their dates (payments are ledger facts)
    paying = history.with_facts(
        "1", InvoiceFacts(payments=(Payment(money(100), date(2024, 4, 3)), Payment(money(100), date(2024, 5, 3))))
    )
    st = replace(st, history=paying, invoices=(replace(inv, balance=money(100)),))
    actions = preview(st, utc(2024, 3, 20), 80).actions
    # two days before each open installment, and on its date unless paid by then; 1 April is Easter
    # Monday (-> 2 April), 2 June a Sunday (-> 3 June). No fee, no cadence step while the plan is kept.
    assert [(a.local_date, a.amount, a.items[0].installment) for a in actions] == [
        (date(2024, 4, 2), money(100), 1),
        (date(2024, 5, 1), money(100), 2),
        (date(2024, 6, 3), money(100), 3),
        (date(2024, 6, 4), money(100), 3),
    ]
    assert all(a.kind is ActionKind.REMIND and a.template == "installment" for a in actions)


def test_broken_payment_plan_resumes_the_cadence() -> None:
    pol, plan_obj = plan_setup()
    inv = invoice(due=date(2024, 3, 1), total="300.00")
    actions = run([inv], pol, utc(2024, 4, 8, 10), plans={"1": plan_obj}, history=told())
    assert sorted(kinds(actions)) == ["late_fee", "plan_broken", "remind"]
    broken = only(actions, ActionKind.PLAN_BROKEN)[0]
    assert broken.amount == money(100)
    assert "installment 1" in broken.rule
    again = run([inv], pol, utc(2024, 4, 9, 10), plans={"1": plan_obj}, history=told(History().record(actions)))
    assert again == []
