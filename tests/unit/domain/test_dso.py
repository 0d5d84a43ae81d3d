"""Days sales outstanding: receivables over average daily sales, Decimal maths, tenths of a day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.dso import DEFAULT_PERIOD_DAYS, days_sales_outstanding, sales_in_period

END = date(2024, 3, 31)


def test_receivables_equal_to_a_months_sales_over_a_month_is_thirty_days() -> None:
    assert days_sales_outstanding(Decimal(3000), Decimal(3000), period_days=30) == Decimal("30.0")


def test_the_default_period_is_sixty_days() -> None:
    assert DEFAULT_PERIOD_DAYS == 60
    # 6,000 of sales over 60 days is 100 a day; 4,550 owed is 45.5 days of sales.
    assert days_sales_outstanding(Decimal(4550), Decimal(6000)) == Decimal("45.5")


def test_rounds_to_a_tenth_of_a_day_half_to_even() -> None:
    # 100 a day: 1,225 owed is exactly 12.25 days, which rounds to the even tenth.
    assert days_sales_outstanding(Decimal(1225), Decimal(6000)) == Decimal("12.2")
    assert days_sales_outstanding(Decimal(1235), Decimal(6000)) == Decimal("12.4")
    assert days_sales_outstanding(Decimal(1000), Decimal(3000), period_days=90) == Decimal("30.0")
    assert days_sales_outstanding(Decimal(1000), Decimal(7000), period_days=60) == Decimal("8.6")


def test_no_sales_in_the_period_reports_zero() -> None:
    assert days_sales_outstanding(Decimal(500), Decimal(0)) == Decimal(0)


def test_nothing_owed_is_zero_days() -> None:
    assert days_sales_outstanding(Decimal(0), Decimal(6000)) == Decimal("0.0")


@pytest.mark.parametrize("period_days", [0, -1])
def test_a_period_is_at_least_one_day(period_days: int) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        days_sales_outstanding(Decimal(1), Decimal(1), period_days=period_days)
    with pytest.raises(ValueError, match="at least one day"):
        sales_in_period([], period_end=END, period_days=period_days)


def test_sales_in_period_counts_the_last_period_days_ending_on_the_last_day() -> None:
    sales = [
        (date(2024, 3, 1), Decimal("100.00")),  # 30 days before the end: outside a 30-day period
        (date(2024, 3, 2), Decimal("20.50")),  # the period's first day
        (date(2024, 3, 31), Decimal("5.25")),  # the period's last day
        (date(2024, 4, 1), Decimal(1000)),  # after the period
    ]
    assert sales_in_period(sales, period_end=END, period_days=30) == Decimal("25.75")
    assert sales_in_period(sales, period_end=END, period_days=31) == Decimal("125.75")
    assert sales_in_period([], period_end=END, period_days=30) == Decimal(0)


_amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


@given(receivables=_amounts, sales=_amounts, period_days=st.integers(min_value=1, max_value=730))
def test_dso_is_receivables_times_period_over_sales_to_a_tenth(
    receivables: Decimal, sales: Decimal, period_days: int
) -> None:
    dso = days_sales_outstanding(receivables, sales, period_days)
    assert dso >= 0
    if sales > 0:
        assert abs(dso - receivables * period_days / sales) <= Decimal("0.05")
        assert dso == dso.quantize(Decimal("0.1"))


@given(receivables=_amounts, sales=st.decimals(min_value="0.01", max_value=10**9, places=2))
def test_more_owed_on_the_same_sales_is_never_fewer_days(receivables: Decimal, sales: Decimal) -> None:
    assert days_sales_outstanding(receivables + 1, sales) >= days_sales_outstanding(receivables, sales)
