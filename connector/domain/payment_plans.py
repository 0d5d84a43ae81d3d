"""Payment plans: split a balance into installments, and tell whether a plan is kept or broken.

Dates are ledger dates (local calendar dates in the organisation's zone). Payments dated on or after
the plan's `created_on` count towards the installments in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from itertools import pairwise

from connector.domain.model import Installment, Payment, PaymentPlan
from connector.domain.money import Money, quantum
from connector.domain.policy import PaymentPlanPolicy


class PlanError(ValueError):
    """Installments that do not add up to the balance, or unusable dates."""


def split_installments(
    balance: Money, dates: Sequence[date], amounts: Sequence[Money] | None = None
) -> tuple[Installment, ...]:
    """Installments for `balance` on `dates` (strictly increasing local dates).

    Without `amounts` the balance is split equally; the minor units left over go one each to the first
    installments, so amounts differ by at most one minor unit. Custom `amounts` must add up to the
    balance exactly. Raises PlanError otherwise.
    """
    if not dates:
        raise PlanError("a payment plan needs at least one installment date")
    if any(later <= earlier for earlier, later in pairwise(dates)):
        raise PlanError("installment dates must be strictly increasing")
    if not balance.is_positive():
        raise PlanError(f"nothing to split: the balance is {balance}")
    if amounts is not None:
        if len(amounts) != len(dates):
            raise PlanError(f"{len(amounts)} amounts for {len(dates)} dates")
        if any(a.currency != balance.currency for a in amounts):
            raise PlanError(f"installments must be in {balance.currency}")
        if any(not a.is_positive() for a in amounts):
            raise PlanError("every installment must be positive")
        summed = sum((a.amount for a in amounts), Decimal(0))
        if summed != balance.amount:
            raise PlanError(f"installments add up to {summed}, the balance is {balance.amount}")
        return tuple(Installment(d, a) for d, a in zip(dates, amounts, strict=True))
    unit = quantum(balance.currency)
    count = len(dates)
    base = (balance.amount / count).quantize(unit, rounding=ROUND_DOWN)
    if base <= 0:
        raise PlanError(f"{balance} cannot be split into {count} positive installments")
    leftover = int((balance.amount - base * count) / unit)
    return tuple(
        Installment(d, Money(base + (unit if i < leftover else 0), balance.currency)) for i, d in enumerate(dates)
    )


@dataclass(frozen=True, slots=True)
class OpenInstallment:
    """An installment not yet fully paid: its index (0-based), date and what is left of it."""

    index: int
    due_date: date
    remaining: Money


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """Whether a plan is kept on local date `today`; when broken, the date it broke and the missed one."""

    kept: bool
    open: tuple[OpenInstallment, ...]
    broken_on: date | None = None
    missed: OpenInstallment | None = None


def plan_status(plan: PaymentPlan, policy: PaymentPlanPolicy, payments: Sequence[Payment], today: date) -> PlanStatus:
    """Evaluate `plan` on local date `today`.

    Installment i is kept when the payments dated from `created_on` up to its date + grace add up to
    the installments 0..i; once today is past that deadline without it, the plan is broken (on the day
    after the deadline) and the cadence resumes on the remaining balance.
    """
    counted = sorted((p for p in payments if p.paid_on >= plan.created_on), key=lambda p: p.paid_on)
    grace = timedelta(days=policy.grace_days)
    currency = plan.installments[0].amount.currency
    cumulative = Decimal(0)
    paid_total = sum((p.amount.amount for p in counted if p.paid_on <= today), Decimal(0))
    open_items: list[OpenInstallment] = []
    for index, inst in enumerate(plan.installments):
        before = cumulative
        cumulative += inst.amount.amount
        deadline = inst.due_date + grace
        if today > deadline:
            paid_by = sum((p.amount.amount for p in counted if p.paid_on <= deadline), Decimal(0))
            if paid_by < cumulative:
                missed = OpenInstallment(index, inst.due_date, Money(cumulative - max(paid_by, before), currency))
                return PlanStatus(kept=False, open=(), broken_on=deadline + timedelta(days=1), missed=missed)
        if paid_total < cumulative:
            remaining = cumulative - max(paid_total, before)
            open_items.append(OpenInstallment(index, inst.due_date, Money(remaining, currency)))
    return PlanStatus(kept=True, open=tuple(open_items))


def equal_amounts(balance: Money, count: int) -> tuple[Money, ...]:
    """`balance` split into `count` equal amounts rounded down to minor units, the remainder on the last
    (100.00 in 3: 33.33, 33.33, 33.34); the sum is exactly `balance`. PlanError when that is impossible."""
    if count < 1:
        raise PlanError("a payment plan needs at least one installment")
    if not balance.is_positive():
        raise PlanError(f"nothing to split: the balance is {balance}")
    unit = quantum(balance.currency)
    base = (balance.amount / count).quantize(unit, rounding=ROUND_DOWN)
    if base <= 0:
        raise PlanError(f"{balance} cannot be split into {count} positive installments")
    last = balance.amount - base * (count - 1)
    return (*(Money(base, balance.currency) for _ in range(count - 1)), Money(last, balance.currency))
