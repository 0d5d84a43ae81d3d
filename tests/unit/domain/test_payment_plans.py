"""Payment plans: splitting a balance into installments, and kept/broken status."""

from __future__ import annotations

from datetime import date

import pytest

from connector.domain.model import Installment, Payment, PaymentPlan
from connector.domain.money import Money
from connector.domain.payment_plans import PlanError, plan_status, split_installments
from connector.domain.policy import PaymentPlanPolicy

DATES = [date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 3)]


def gbp(amount: str | int) -> Money:
    return Money.of(amount, "GBP")


def test_equal_split_spreads_the_odd_pennies() -> None:
    parts = split_installments(gbp(100), DATES)
    assert [p.amount for p in parts] == [gbp("33.34"), gbp("33.33"), gbp("33.33")]
    assert sum((p.amount.amount for p in parts), start=gbp(0).amount) == 100
    yen = split_installments(Money.of(1000, "JPY"), DATES)
    assert [p.amount.amount for p in yen] == [334, 333, 333]


def test_custom_amounts_must_add_up_exactly() -> None:
    parts = split_installments(gbp(100), DATES, [gbp(50), gbp(30), gbp(20)])
    assert [p.due_date for p in parts] == DATES
    with pytest.raises(PlanError, match=r"add up to 99\.99"):
        split_installments(gbp(100), DATES, [gbp(50), gbp(30), gbp("19.99")])
    with pytest.raises(PlanError, match="3 dates"):
        split_installments(gbp(100), DATES, [gbp(100)])
    with pytest.raises(PlanError, match="positive"):
        split_installments(gbp(100), DATES, [gbp(110), gbp(-10), gbp(0)])
    with pytest.raises(PlanError, match="in GBP"):
        split_installments(gbp(100), DATES, [Money.of(100, "USD"), gbp(0), gbp(0)])


@pytest.mark.parametrize(
    ("balance", "dates", "message"),
    [
        ("100", [], "at least one"),
        ("100", [date(2024, 5, 1), date(2024, 4, 1)], "strictly increasing"),
        ("0", DATES, "nothing to split"),
        ("0.02", DATES, "cannot be split"),
    ],
)
def test_invalid_splits(balance: str, dates: list[date], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        split_installments(gbp(balance), dates)


def test_payment_plan_dataclass_validates() -> None:
    with pytest.raises(ValueError, match="at least one installment"):
        PaymentPlan("1", "p", date(2024, 3, 1), ())
    with pytest.raises(ValueError, match="strictly increasing"):
        PaymentPlan(
            "1", "p", date(2024, 3, 1), (Installment(date(2024, 4, 1), gbp(1)), Installment(date(2024, 4, 1), gbp(1)))
        )
    plan = PaymentPlan("1", "p", date(2024, 3, 1), split_installments(gbp(300), DATES))
    assert plan.total == gbp(300)


POLICY = PaymentPlanPolicy("monthly", grace_days=3)
PLAN = PaymentPlan("1", "monthly", date(2024, 3, 5), split_installments(gbp(300), DATES))


@pytest.mark.parametrize(
    ("payments", "today", "kept", "open_first", "broken_on"),
    [
        ([], date(2024, 3, 20), True, (0, "100.00"), None),
        ([], date(2024, 4, 4), True, (0, "100.00"), None),  # inside the grace
        ([], date(2024, 4, 5), False, None, date(2024, 4, 5)),  # 1 Apr + 3 days grace passed
        ([("100", date(2024, 4, 3))], date(2024, 4, 20), True, (1, "100.00"), None),
        ([("60", date(2024, 4, 1))], date(2024, 4, 2), True, (0, "40.00"), None),
        ([("60", date(2024, 4, 1))], date(2024, 4, 5), False, None, date(2024, 4, 5)),
        ([("150", date(2024, 3, 30))], date(2024, 4, 20), True, (1, "50.00"), None),
        ([("100", date(2024, 3, 1))], date(2024, 4, 5), False, None, date(2024, 4, 5)),  # before the plan
        (
            [("100", date(2024, 4, 1)), ("100", date(2024, 5, 10))],
            date(2024, 5, 10),
            False,
            None,
            date(2024, 5, 5),
        ),  # paid late: still broken
        ([("300", date(2024, 3, 6))], date(2024, 7, 1), True, None, None),
    ],
)
def test_plan_status(
    payments: list[tuple[str, date]],
    today: date,
    kept: bool,
    open_first: tuple[int, str] | None,
    broken_on: date | None,
) -> None:
    status = plan_status(PLAN, POLICY, [Payment(gbp(a), d) for a, d in payments], today)
    assert status.kept is kept
    assert status.broken_on == broken_on
    if open_first is None:
        assert not status.open
    else:
        assert (status.open[0].index, str(status.open[0].remaining.amount)) == open_first
    if not kept:
        assert status.missed is not None
