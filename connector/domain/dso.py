"""Days sales outstanding (DSO): how many days of sales are still owed, a headline collections measure.

    DSO = receivables / (sales over the period / days in the period)

`receivables` is the open balance of the customers' invoices at the end of the period; `sales` is the
total of invoices issued during the period (the `period_days` local dates ending on, and including, the
period's last day). Both are amounts in one currency (a ledger's home currency): `Decimal` maths only.
The result is rounded to a tenth of a day, half to even (Decimal's default). With no sales in the period
DSO is undefined and reported as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

DEFAULT_PERIOD_DAYS = 60
_TENTH_OF_A_DAY = Decimal("0.1")


def sales_in_period(sales: Iterable[tuple[date, Decimal]], *, period_end: date, period_days: int) -> Decimal:
    """The total of `(issued_on, amount)` sales issued within the `period_days` days ending on `period_end`."""
    _check_period(period_days)
    day_before_period = period_end - timedelta(days=period_days)
    return sum((amount for issued_on, amount in sales if day_before_period < issued_on <= period_end), Decimal(0))


def days_sales_outstanding(receivables: Decimal, sales: Decimal, period_days: int = DEFAULT_PERIOD_DAYS) -> Decimal:
    """DSO in days: `receivables` over the average daily `sales` of a `period_days` period (0 without sales)."""
    _check_period(period_days)
    if sales <= 0:
        return Decimal(0)
    daily_sales = sales / period_days
    return (receivables / daily_sales).quantize(_TENTH_OF_A_DAY, rounding=ROUND_HALF_EVEN)


def _check_period(period_days: int) -> None:
    if period_days < 1:
        raise ValueError(f"a DSO period is at least one day, got {period_days}")
