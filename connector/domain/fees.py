"""Late fees, statutory interest, fee reversals and early-payment discounts; `Decimal` maths only.

Dates are ledger dates: local calendar dates in the organisation's zone (due, payment, assessment
dates). Interest is simple, accrued daily on actual/365; every amount is rounded half-up to the
currency's minor unit by `Money`. Fees never compound on earlier fees unless the policy says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from connector.domain.model import Payment
from connector.domain.money import Money
from connector.domain.policy import DiscountBasis, DiscountPolicy, FeeKind, LateFeePolicy

_HUNDRED = Decimal(100)
_DAYS_PER_YEAR = Decimal(365)
UK_COMPENSATION_TIERS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(1000), Decimal(40)),  # debt below £1,000
    (Decimal(10000), Decimal(70)),  # £1,000 - £9,999.99
)
UK_COMPENSATION_TOP = Decimal(100)  # £10,000 and more
# The same as Money, built once: the planner states it in every warning of a statutory fee.
_UK_COMPENSATION_MONEY = tuple((below, Money(amount, "GBP")) for below, amount in UK_COMPENSATION_TIERS)
_UK_COMPENSATION_TOP_MONEY = Money(UK_COMPENSATION_TOP, "GBP")


@dataclass(frozen=True, slots=True)
class ReferenceRates:
    """Statutory reference rates from config, in percent a year (5 = 5 %).

    `uk_base_rate`: Bank of England base rate in force on the reference date (UK Late Payment of
    Commercial Debts (Interest) Act 1998); `eu_reference_rate`: ECB main refinancing rate (Directive
    2011/7/EU). None when not configured: a statutory fee then cannot be assessed.
    """

    uk_base_rate: Decimal | None = None
    eu_reference_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FeeRecord:
    """A late fee already applied to an invoice (fed back by the executor through the history).

    `assessed_on` is the local date the fee was computed for; `balance` the invoice balance it saw;
    `period_start` where its interest started accruing (interest kinds); `compensation` the fixed
    statutory compensation it included; `on_invoice` whether it was added as a line of the invoice
    itself (then the invoice balance includes it); `reversed` once a reversal has been carried out;
    `generation` counts the fee's earlier keys whose ledger record was deleted (0: its first key);
    `superseded` when a retried write found its ledger record deleted or voided (RS-03): it charges nothing.
    """

    key: str
    policy: str
    step_id: str
    due_date: date
    occurrence: int
    assessed_on: date
    amount: Money
    balance: Money
    period_start: date | None = None
    compensation: Money | None = None
    on_invoice: bool = False
    reversed: bool = False
    generation: int = 0
    superseded: bool = False


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """The result of assessing a fee: the total `amount` and its `lines` (description, amount)."""

    amount: Money
    lines: tuple[tuple[str, Money], ...]
    balance: Money
    period_start: date | None = None
    period_end: date | None = None
    annual_rate: Decimal | None = None
    compensation: Money | None = None
    capped: bool = False


def uk_compensation(debt: Money) -> Money:
    """Fixed compensation of the UK Late Payment Act: £40 below £1,000, £70 to £9,999.99, £100 from £10,000.

    Due once per invoice; `debt` is the unpaid sum in GBP.
    """
    if debt.currency != "GBP":
        raise ValueError(f"UK statutory compensation is in GBP, not {debt.currency}")
    for below, amount in _UK_COMPENSATION_MONEY:
        if debt.amount < below:
            return amount
    return _UK_COMPENSATION_TOP_MONEY


def simple_interest(principal: Money, annual_rate: Decimal, days: int) -> Money:
    """principal x rate % x days / 365, rounded half-up (actual/365, no compounding)."""
    return Money(principal.amount * annual_rate * days / (_HUNDRED * _DAYS_PER_YEAR), principal.currency)


def balance_on(balance_now: Money, payments: Sequence[Payment], day: date) -> Money:
    """The balance at the end of local `day`: today's balance plus payments dated after `day`."""
    later = sum((p.amount.amount for p in payments if p.paid_on > day), Decimal(0))
    return Money(balance_now.amount + later, balance_now.currency)


def accrued_interest(
    balance_now: Money,
    payments: Sequence[Payment],
    start: date,
    end: date,
    annual_rate: Decimal,
    extra: Decimal = Decimal(0),
) -> Money:
    """Simple interest for each day d with start <= d < end on the balance at the end of day d (actual/365).

    The balance at the end of day d is `balance_now` plus the payments dated after d (a payment reduces
    interest from its own date on); `extra` is added to every day's balance (compounded fees).
    """
    if end <= start:
        return Money.zero(balance_now.currency)
    cuts = sorted({p.paid_on for p in payments if start < p.paid_on < end})
    weighted = Decimal(0)
    for left, right in pairwise([start, *cuts, end]):
        day_balance = (
            balance_now.amount + extra + sum((p.amount.amount for p in payments if p.paid_on > left), Decimal(0))
        )
        if day_balance > 0:
            weighted += day_balance * (right - left).days
    return Money(weighted * annual_rate / (_HUNDRED * _DAYS_PER_YEAR), balance_now.currency)


def annual_rate_for(policy: LateFeePolicy, rates: ReferenceRates) -> Decimal | None:
    """The annual interest rate in percent a policy charges (statutory: reference rate + margin)."""
    if policy.kind is FeeKind.INTEREST:
        return policy.annual_rate
    if policy.kind is FeeKind.UK_STATUTORY:
        if rates.uk_base_rate is None:
            raise ValueError(f"late fee {policy.name!r}: the UK base rate is not configured")
        return rates.uk_base_rate + policy.margin
    if policy.kind is FeeKind.EU_STATUTORY:
        if rates.eu_reference_rate is None:
            raise ValueError(f"late fee {policy.name!r}: the EU reference rate is not configured")
        return rates.eu_reference_rate + policy.margin
    return None


@dataclass(frozen=True, slots=True)
class _FeeBasis:
    """What every fee kind computes from: the invoice's state on the assessment date, fees set apart."""

    currency: str
    balance: Money  # the invoice balance as the ledger shows it (fees added on the invoice included)
    principal: Money  # the balance without fees added on the invoice
    basis: Money  # what a percent fee is a percentage of: the principal, plus earlier fees when compound
    extra: Decimal  # added to each day's balance for interest: earlier fees when compound, else minus fee lines
    grace_end: date
    assessed_on: date
    payments: Sequence[Payment]
    live: Sequence[FeeRecord]
    waived: Sequence[FeeRecord]  # superseded fees left deleted: not charged, but not charged again either
    rate: Decimal | None
    accrual_floor: date | None


@dataclass(slots=True)
class _Charge:
    """One fee kind's lines (description, amount) after min/max, with its accrual period and compensation."""

    lines: list[tuple[str, Money]]
    period_start: date | None = None
    compensation: Money | None = None


def assess_fee(
    policy: LateFeePolicy,
    *,
    invoice_total: Money,
    balance: Money,
    due_date: date,
    assessed_on: date,
    payments: Sequence[Payment] = (),
    prior_fees: Sequence[FeeRecord] = (),
    rates: ReferenceRates = ReferenceRates(),
    accrual_floor: date | None = None,
    apply_caps: bool = True,
) -> FeeQuote | None:
    """The fee `policy` charges on local date `assessed_on`, or None when nothing is due.

    Nothing is charged on or before due date + grace, below the policy's minimum invoice amount, or
    when the capped amount is zero. Percent and interest fees use the invoice balance without earlier
    fees (with them when `compound`); interest accrues from due date + grace, or from the previous
    assessment of the same policy, or `accrual_floor` (a broken payment plan), whichever is latest.
    `prior_fees` are the invoice's fees not reversed (all cycles): caps and the once-per-invoice UK
    compensation count them. A superseded fee (its ledger record was deleted) is on no ledger, so caps
    never count it; unless the policy re-creates deleted fees it stays waived: its accrual period and
    its compensation are not charged again by a later assessment.
    """
    currency = balance.currency
    if policy.minimum_invoice_amount is not None and invoice_total.amount < policy.minimum_invoice_amount:
        return None
    grace_end = due_date + timedelta(days=policy.grace_days)
    if assessed_on <= grace_end:
        return None
    live = [fee for fee in prior_fees if not fee.reversed and not fee.superseded]
    waived = [] if policy.recreate_deleted else [fee for fee in prior_fees if fee.superseded and not fee.reversed]
    on_invoice = sum((f.amount.amount for f in live if f.on_invoice), Decimal(0))
    separate = sum((f.amount.amount for f in live if not f.on_invoice), Decimal(0))
    principal = Money(max(balance.amount - on_invoice, Decimal(0)), currency)
    if not principal.is_positive():
        return None
    fee_basis = _FeeBasis(
        currency=currency,
        balance=balance,
        principal=principal,
        basis=Money(balance.amount + separate, currency) if policy.compound else principal,
        extra=separate if policy.compound else -on_invoice,
        grace_end=grace_end,
        assessed_on=assessed_on,
        payments=payments,
        live=live,
        waived=waived,
        rate=annual_rate_for(policy, rates),
        accrual_floor=accrual_floor,
    )
    charge = _CHARGE_BY_KIND[policy.kind](policy, fee_basis)
    lines, compensation = charge.lines, charge.compensation
    total = sum((amount.amount for _, amount in lines), Decimal(0))
    capped = False
    if apply_caps:
        headroom = _headroom(policy, invoice_total, live)
        if headroom is not None and total > headroom:
            capped = True
            total = max(headroom, Decimal(0))
            lines = _shrink(lines, total, currency)
            if compensation is not None:
                kept = [amount for text, amount in lines if text.startswith("Fixed compensation")]
                compensation = kept[0] if kept else None
    if total <= 0 or not lines:
        return None
    return FeeQuote(
        amount=Money(total, currency),
        lines=tuple(lines),
        balance=principal,
        period_start=charge.period_start,
        period_end=assessed_on if charge.period_start is not None else None,
        annual_rate=fee_basis.rate,
        compensation=compensation,
        capped=capped,
    )


def _within_fee_limits(policy: LateFeePolicy, text: str, charge: Money) -> list[tuple[str, Money]]:
    """The fee line with the policy's per-assessment min_fee/max_fee applied; no line when nothing is owed."""
    if not charge.is_positive():
        return []
    if policy.min_fee is not None and charge.amount < policy.min_fee:
        charge = Money(policy.min_fee, charge.currency)
    if policy.max_fee is not None and charge.amount > policy.max_fee:
        charge = Money(policy.max_fee, charge.currency)
    return [(text, charge)]


def _flat_charge(policy: LateFeePolicy, fee_basis: _FeeBasis) -> _Charge:
    """`flat`: the policy's fixed amount."""
    assert policy.amount is not None
    return _Charge(_within_fee_limits(policy, policy.description, Money(policy.amount, fee_basis.currency)))


def _percent_charge(policy: LateFeePolicy, fee_basis: _FeeBasis) -> _Charge:
    """`percent`: a percentage of the balance (with earlier fees when compound)."""
    assert policy.percent is not None
    basis = fee_basis.basis
    charge = Money(basis.amount * policy.percent / _HUNDRED, fee_basis.currency)
    return _Charge(
        _within_fee_limits(policy, f"{policy.description} ({_pct(policy.percent)} % of {basis.amount})", charge)
    )


def _interest_charge(policy: LateFeePolicy, fee_basis: _FeeBasis) -> _Charge:
    """`interest` and the EU statutory rate: simple daily interest since the accrual start."""
    rate = fee_basis.rate
    assert rate is not None
    start = _accrual_start(policy, fee_basis)
    assessed_on = fee_basis.assessed_on
    charge = accrued_interest(fee_basis.balance, fee_basis.payments, start, assessed_on, rate, fee_basis.extra)
    text = (
        f"{policy.description}: interest at {_pct(rate)} % a year for {(assessed_on - start).days} days "
        f"({start.isoformat()} to {assessed_on.isoformat()})"
    )
    return _Charge(_within_fee_limits(policy, text, charge), period_start=start)


def _uk_statutory_charge(policy: LateFeePolicy, fee_basis: _FeeBasis) -> _Charge:
    """`uk_statutory`: statutory interest plus, once per invoice in GBP, the fixed compensation."""
    charge = _interest_charge(policy, fee_basis)
    already_compensated = any(f.compensation is not None for f in (*fee_basis.live, *fee_basis.waived))
    if policy.compensation and fee_basis.currency == "GBP" and not already_compensated:
        charge.compensation = uk_compensation(fee_basis.principal)
        charge.lines.append((_COMPENSATION_LINE, charge.compensation))
    return charge


def _accrual_start(policy: LateFeePolicy, fee_basis: _FeeBasis) -> date:
    """Due date + grace, or this policy's latest earlier assessment (a waived one too), or the accrual floor."""
    start = fee_basis.grace_end
    for fee in (*fee_basis.live, *fee_basis.waived):
        if fee.policy == policy.name and start < fee.assessed_on <= fee_basis.assessed_on:
            start = fee.assessed_on
    if fee_basis.accrual_floor is not None and fee_basis.accrual_floor > start:
        start = fee_basis.accrual_floor
    return start


_COMPENSATION_LINE = "Fixed compensation (Late Payment of Commercial Debts (Interest) Act 1998)"
_CHARGE_BY_KIND: dict[FeeKind, Callable[[LateFeePolicy, _FeeBasis], _Charge]] = {
    FeeKind.FLAT: _flat_charge,
    FeeKind.PERCENT: _percent_charge,
    FeeKind.INTEREST: _interest_charge,
    FeeKind.UK_STATUTORY: _uk_statutory_charge,
    FeeKind.EU_STATUTORY: _interest_charge,
}


def _pct(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _headroom(policy: LateFeePolicy, invoice_total: Money, live: Sequence[FeeRecord]) -> Decimal | None:
    caps: list[Decimal] = []
    if policy.total_cap is not None:
        caps.append(policy.total_cap)
    if policy.total_cap_percent is not None:
        caps.append(Money(invoice_total.amount * policy.total_cap_percent / _HUNDRED, invoice_total.currency).amount)
    if not caps:
        return None
    so_far = sum((f.amount.amount for f in live), Decimal(0))
    return min(caps) - so_far


def _shrink(lines: list[tuple[str, Money]], limit: Decimal, currency: str) -> list[tuple[str, Money]]:
    """Cut lines (latest first) so they add up to `limit`."""
    result: list[tuple[str, Money]] = []
    remaining = limit
    for text, amount in lines:
        take = min(amount.amount, remaining)
        if take > 0:
            result.append((text if take == amount.amount else f"{text} (capped)", Money(take, currency)))
            remaining -= take
    return result


def fee_cap_total(policy: LateFeePolicy, invoice_total: Money) -> Money | None:
    """The most all fees of one invoice may add up to under `policy`'s total caps (None: no cap)."""
    headroom = _headroom(policy, invoice_total, ())
    return None if headroom is None else Money(headroom, invoice_total.currency)


def fee_reversal(
    policy: LateFeePolicy,
    fee: FeeRecord,
    *,
    invoice_total: Money,
    balance_now: Money,
    payments: Sequence[Payment],
    prior_fees: Sequence[FeeRecord] = (),
    rates: ReferenceRates = ReferenceRates(),
) -> Money | None:
    """How much of an applied fee to reverse because a payment dated on or before its assessment
    date showed up later (bank lag), or None.

    The fee is recomputed on the true balance at the end of its assessment date (today's balance
    plus payments dated after it); the reversal is the difference, the whole fee when the invoice
    was settled by then. Dates are the organisation's local ledger dates.
    """
    if fee.reversed or fee.superseded:
        return None
    if not any(p.paid_on <= fee.assessed_on for p in payments):
        return None
    true_balance = balance_on(balance_now, payments, fee.assessed_on)
    if true_balance.amount >= fee.balance.amount:
        return None
    earlier = [p for p in payments if p.paid_on <= fee.assessed_on]
    quote = (
        assess_fee(
            policy,
            invoice_total=invoice_total,
            balance=true_balance,
            due_date=fee.due_date,
            assessed_on=fee.assessed_on,
            payments=earlier,
            prior_fees=[f for f in prior_fees if f.assessed_on < fee.assessed_on and f.key != fee.key],
            rates=rates,
            accrual_floor=fee.period_start,
            apply_caps=False,
        )
        if true_balance.is_positive()
        else None
    )
    kept = Money.zero(fee.amount.currency) if quote is None else quote.amount.min(fee.amount)
    refund = fee.amount - kept
    return refund if refund.is_positive() else None


# ---------------------------------------------------------------------------------------------------
# early-payment discounts


def discount_deadline(policy: DiscountPolicy, issue_date: date | None, due_date: date | None) -> date | None:
    """Last local date the discount can be earned: issue + N days, or due - N days (None if unknown)."""
    if policy.basis is DiscountBasis.ISSUE:
        return None if issue_date is None else issue_date + timedelta(days=policy.days)
    return None if due_date is None else due_date - timedelta(days=policy.days)


def discount_amount(policy: DiscountPolicy, invoice_total: Money) -> Money:
    """The discount on the invoice total (X % of it), rounded half-up."""
    return Money(invoice_total.amount * policy.percent / _HUNDRED, invoice_total.currency)


def discount_credit(
    policy: DiscountPolicy,
    *,
    invoice_total: Money,
    balance: Money,
    payments: Sequence[Payment],
    issue_date: date | None,
    due_date: date | None,
) -> Money | None:
    """The credit that closes an invoice whose customer paid total - discount by the deadline, or None.

    Payments count when dated (local ledger date) on or before the deadline; the credit is the
    remaining balance, at most the discount.
    """
    deadline = discount_deadline(policy, issue_date, due_date)
    if deadline is None or not balance.is_positive():
        return None
    discount = discount_amount(policy, invoice_total)
    paid = sum((p.amount.amount for p in payments if p.paid_on <= deadline), Decimal(0))
    if paid < invoice_total.amount - discount.amount or balance > discount:
        return None
    return balance
