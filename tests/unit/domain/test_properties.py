"""Hypothesis properties of the planner, the fees and preview."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.actions import ActionKind, History
from connector.domain.cadence import plan
from connector.domain.calendar import HolidayCalendar, zone
from connector.domain.fees import ReferenceRates, fee_cap_total
from connector.domain.model import CustomerOverrides, InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money, minor_units
from connector.domain.preview import ONE_DAY, PlanningState, preview
from tests.support.domain import CONN, policies

BASE = date(2024, 1, 1)
FAST = settings(max_examples=40, deadline=None)

POLICIES = policies(
    [
        {"id": "soon", "offset": -3, "remind": "friendly", "discount": "early"},
        {"id": "due", "offset": 0, "remind": "due"},
        {"id": "b2", "offset": 2, "days": "business", "remind": "late", "late_fee": "pct"},
        {"id": "late10", "offset": 10, "remind": "late", "note": "10 days late", "late_fee": "interest"},
        {"id": "call", "offset": 20, "call_task": "Phone"},
        {"id": "uk", "offset": 30, "remind": "final", "late_fee": "uk"},
        {"id": "esc", "offset": 45, "remind": "final", "escalate": True},
    ],
    late_fees={
        "pct": {"kind": "percent", "percent": 5, "repeat": 7, "max_count": 10, "total_cap": 40, "min_fee": "1.50"},
        "interest": {"kind": "interest", "annual_rate": 24, "repeat": "month", "max_count": 6, "total_cap_percent": 12},
        "uk": {"kind": "uk_statutory", "total_cap_percent": 15},
    },
    discounts={"early": {"percent": "2.5", "days": 10}},
    minimum_amount=1,
)
CONNECTION = CONN.__class__("conn-p", time_zone="Europe/London", rates=ReferenceRates(uk_base_rate=Decimal("5.25")))
ZONES = ["Europe/London", "America/New_York", "Australia/Sydney"]
CURRENCIES = ["GBP", "JPY", "BHD"]


@st.composite
def invoices(draw: Any, open_only: bool = False) -> list[InvoiceSnapshot]:
    count = draw(st.integers(1, 7))
    result = []
    for index in range(count):
        currency = draw(st.sampled_from(CURRENCIES))
        places = minor_units(currency)
        total = Decimal(draw(st.integers(1, 2_000_000))).scaleb(-places)
        paid_part = draw(st.sampled_from([0, 0, 0, 1, 2])) if not open_only else 0
        balance = total if paid_part == 0 else (total / paid_part).quantize(Decimal(1).scaleb(-places))
        status = (
            InvoiceStatus.OPEN
            if open_only
            else draw(
                st.sampled_from(
                    [InvoiceStatus.OPEN] * 4 + [InvoiceStatus.PAID, InvoiceStatus.VOIDED, InvoiceStatus.DELETED]
                )
            )
        )
        if status is InvoiceStatus.PAID:
            balance = Decimal(0)
        issue = BASE + timedelta(days=draw(st.integers(0, 60)))
        due = issue + timedelta(days=draw(st.sampled_from([0, 14, 29, 30, 60])))
        result.append(
            InvoiceSnapshot(
                external_id=f"inv-{index}",
                number=str(1000 + index),
                customer_external_id=f"c{draw(st.integers(0, 2))}",
                customer_name="C",
                currency=currency,
                total=Money(total, currency),
                balance=Money(balance, currency),
                issue_date=issue,
                due_date=due,
                status=status,
                updated_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        )
    return result


overrides = st.dictionaries(
    st.sampled_from(["c0", "c1", "c2"]),
    st.builds(
        CustomerOverrides,
        time_zone=st.sampled_from(ZONES),
        dispute=st.booleans(),
        paused_until=st.none() | st.dates(date(2024, 1, 1), date(2024, 4, 1)),
    ),
    max_size=3,
)
START = datetime(2024, 1, 1, tzinfo=UTC)
moments = st.integers(0, 150 * 24 * 60).map(lambda minutes: START + timedelta(minutes=minutes))


def state(invs: list[InvoiceSnapshot], over: dict[str, CustomerOverrides]) -> PlanningState:
    return PlanningState(CONNECTION, tuple(invs), POLICIES.cadences["default"], POLICIES, customers=over)


def run(invs: list[InvoiceSnapshot], over: dict[str, CustomerOverrides], history: History, now: datetime) -> Any:
    return plan(invs, over, POLICIES.cadences["default"], POLICIES, history, now, connection=CONNECTION)


@FAST
@given(invoices(), overrides, moments)
def test_no_action_for_paid_voided_or_deleted_invoices(invs: list[InvoiceSnapshot], over: Any, now: datetime) -> None:
    closed = {i.external_id for i in invs if i.status is not InvoiceStatus.OPEN or not i.balance.is_positive()}
    for action in run(invs, over, History(), now):
        assert not closed.intersection(action.invoice_external_ids)
    for action in preview(state(invs, over), now, 20).actions:
        assert not closed.intersection(action.invoice_external_ids)


@FAST
@given(invoices(), overrides, moments, st.integers(0, 3))
def test_planning_again_with_the_recorded_history_yields_nothing(
    invs: list[InvoiceSnapshot], over: Any, now: datetime, extra_hours: int
) -> None:
    first = run(invs, over, History(), now)
    history = History().record(first)
    assert run(invs, over, history, now) == []
    later = run(invs, over, history, now + timedelta(hours=extra_hours))
    assert not {a.key for a in later} & history.keys


@FAST
@given(invoices(), overrides, moments)
def test_at_most_one_reminder_per_customer_per_local_day(invs: list[InvoiceSnapshot], over: Any, now: datetime) -> None:
    actions = preview(state(invs, over), now, 70).actions
    days = Counter((a.customer_external_id, a.local_date) for a in actions if a.kind is ActionKind.REMIND)
    assert all(count == 1 for count in days.values())
    cadence = POLICIES.cadences["default"]
    calendar = HolidayCalendar("GB", "ENG")
    for action in actions:
        tz = zone(
            over[action.customer_external_id].time_zone or ""
            if action.customer_external_id in over
            else "Europe/London"
        )
        local = action.scheduled_at.astimezone(tz)
        assert local.date() == action.local_date
        if action.kind is ActionKind.REMIND:
            assert cadence.window.start <= local.time() < cadence.window.end
            assert local.weekday() in cadence.window.weekdays
            assert not calendar.is_holiday(local.date())


@FAST
@given(invoices(open_only=True), overrides, moments)
def test_fee_totals_never_exceed_the_caps(invs: list[InvoiceSnapshot], over: Any, now: datetime) -> None:
    timeline = preview(state(invs, over), now - timedelta(days=30), 200)
    charged: dict[str, Decimal] = defaultdict(Decimal)
    by_id = {i.external_id: i for i in invs}
    for action in timeline.actions:
        if action.kind is not ActionKind.LATE_FEE:
            continue
        assert action.amount is not None
        assert action.amount.is_positive()
        assert action.fee is not None
        inv = by_id[action.invoice_external_ids[0]]
        charged[inv.external_id] += action.amount.amount
        cap = fee_cap_total(POLICIES.late_fees[action.fee.policy], inv.total)
        assert cap is not None
        assert charged[inv.external_id] <= cap.amount  # every policy here is capped
    for invoice_id, facts in timeline.history.invoices.items():
        assert sum((f.amount.amount for f in facts.fees), Decimal(0)) == charged[invoice_id]


@FAST
@given(invoices(), overrides, moments)
def test_amounts_always_have_the_currency_precision(invs: list[InvoiceSnapshot], over: Any, now: datetime) -> None:
    for action in preview(state(invs, over), now, 60).actions:
        money_values = [action.amount] + [i.balance for i in action.items]
        if action.fee is not None:
            money_values += [amount for _, amount in action.fee.lines]
        if action.offer is not None:
            money_values += [action.offer.discount, action.offer.pay_amount]
        for value in money_values:
            if value is not None:
                assert value.amount.as_tuple().exponent == -minor_units(value.currency)


@settings(max_examples=25, deadline=None)
@given(invoices(), overrides, moments, st.integers(1, 40))
def test_preview_equals_daily_plans_fed_their_own_output(
    invs: list[InvoiceSnapshot], over: Any, now: datetime, days: int
) -> None:
    timeline = preview(state(invs, over), now, days)
    history = History()
    expected = []
    for index in range(days):
        actions = plan(
            invs,
            over,
            POLICIES.cadences["default"],
            POLICIES,
            history,
            now + index * ONE_DAY,
            connection=CONNECTION,
            horizon=ONE_DAY,
        )
        history = history.record(actions)
        expected.extend(actions)
    assert list(timeline.actions) == expected
    assert timeline.history == history
    assert len({a.key for a in expected}) == len(expected)
