"""Fee maths, worked by hand: statutory interest, simple interest, caps, compounding, reversals, discounts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.fees import (
    FeeRecord,
    ReferenceRates,
    accrued_interest,
    assess_fee,
    balance_on,
    discount_amount,
    discount_credit,
    discount_deadline,
    fee_cap_total,
    fee_reversal,
    simple_interest,
    uk_compensation,
)
from connector.domain.model import Payment
from connector.domain.money import Money
from connector.domain.policy_parsing import discount_from_dict, late_fee_from_dict

DUE = date(2024, 3, 1)


def gbp(amount: str | int) -> Money:
    return Money.of(amount, "GBP")


def fee(kind: str, **body: Any) -> Any:
    return late_fee_from_dict("f", {"kind": kind, **body})


def record(
    amount: str,
    assessed_on: date,
    *,
    policy: str = "f",
    balance: str = "100.00",
    compensation: str | None = None,
    on_invoice: bool = False,
    key: str = "k1",
    period_start: date | None = None,
) -> FeeRecord:
    return FeeRecord(
        key=key,
        policy=policy,
        step_id="s",
        due_date=DUE,
        occurrence=0,
        assessed_on=assessed_on,
        amount=gbp(amount),
        balance=gbp(balance),
        period_start=period_start,
        compensation=None if compensation is None else gbp(compensation),
        on_invoice=on_invoice,
    )


def test_worked_example_uk_statutory_interest() -> None:
    """£10,000 at base rate 5 % for 45 days late: 10000 x 13 % x 45/365 = £160.27, plus £100 compensation."""
    policy = fee("uk_statutory")
    quote = assess_fee(
        policy,
        invoice_total=gbp(10000),
        balance=gbp(10000),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=45),
        rates=ReferenceRates(uk_base_rate=Decimal(5)),
    )
    assert quote is not None
    assert quote.annual_rate == Decimal(13)
    assert [amount for _, amount in quote.lines] == [gbp("160.27"), gbp(100)]
    assert quote.compensation == gbp(100)
    assert quote.amount == gbp("260.27")
    assert simple_interest(gbp(10000), Decimal(13), 45) == gbp("160.27")


def test_worked_example_monthly_interest_on_a_partly_paid_invoice() -> None:
    """1.5 %/month = 18 %/year, simple, actual/365. £1,000 due 1 Mar 2024, £400 paid 11 Mar, assessed 31 Mar:
    1 Mar-10 Mar (10 days) on £1,000 and 11 Mar-30 Mar (20 days) on £600:
    (1000 x 10 + 600 x 20) x 18 % / 365 = 3960 / 365 = £10.849... -> £10.85."""
    policy = fee("interest", rate_per_month="1.5", repeat="month", max_count=12)
    payments = (Payment(gbp(400), date(2024, 3, 11)),)
    quote = assess_fee(
        policy,
        invoice_total=gbp(1000),
        balance=gbp(600),
        due_date=DUE,
        assessed_on=date(2024, 3, 31),
        payments=payments,
    )
    assert quote is not None
    assert quote.amount == gbp("10.85")
    assert quote.period_start == DUE
    assert quote.period_end == date(2024, 3, 31)
    # the next month accrues only from the previous assessment, on £600: 600 x 18 % x 30/365 = 8.876 -> 8.88
    later = assess_fee(
        policy,
        invoice_total=gbp(1000),
        balance=gbp(600),
        due_date=DUE,
        assessed_on=date(2024, 4, 30),
        payments=payments,
        prior_fees=[record("10.85", date(2024, 3, 31), balance="600.00")],
    )
    assert later is not None
    assert later.amount == gbp("8.88")
    assert later.period_start == date(2024, 3, 31)


def test_eu_statutory_interest() -> None:
    """EUR 5,000, ECB reference rate 4.5 % + 8 points = 12.5 %, 30 days: 5000 x 12.5 % x 30/365 = 51.37."""
    quote = assess_fee(
        fee("eu_statutory"),
        invoice_total=Money.of(5000, "EUR"),
        balance=Money.of(5000, "EUR"),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=30),
        rates=ReferenceRates(eu_reference_rate=Decimal("4.5")),
    )
    assert quote is not None
    assert quote.amount == Money.of("51.37", "EUR")
    assert quote.compensation is None


def test_statutory_rates_must_be_configured() -> None:
    with pytest.raises(ValueError, match="UK base rate is not configured"):
        assess_fee(
            fee("uk_statutory"),
            invoice_total=gbp(100),
            balance=gbp(100),
            due_date=DUE,
            assessed_on=DUE + timedelta(days=5),
        )
    with pytest.raises(ValueError, match="EU reference rate"):
        assess_fee(
            fee("eu_statutory"),
            invoice_total=gbp(100),
            balance=gbp(100),
            due_date=DUE,
            assessed_on=DUE + timedelta(days=5),
        )


@pytest.mark.parametrize(
    ("debt", "expected"),
    [("0.01", 40), ("999.99", 40), ("1000.00", 70), ("9999.99", 70), ("10000.00", 100), ("250000", 100)],
)
def test_uk_compensation_tiers(debt: str, expected: int) -> None:
    assert uk_compensation(gbp(debt)) == gbp(expected)


def test_uk_compensation_is_gbp_only_and_once_per_invoice() -> None:
    with pytest.raises(ValueError, match="in GBP, not EUR"):
        uk_compensation(Money.of(100, "EUR"))
    policy = fee("uk_statutory")
    rates = ReferenceRates(uk_base_rate=Decimal(5))
    quote = assess_fee(
        policy,
        invoice_total=gbp(500),
        balance=gbp(500),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=60),
        rates=rates,
        prior_fees=[record("44.00", DUE + timedelta(days=30), policy="f", compensation="40.00")],
    )
    assert quote is not None
    assert quote.compensation is None
    # interest only from the previous assessment: 500 x 13 % x 30/365 = 5.342 -> 5.34
    assert quote.amount == gbp("5.34")
    usd = assess_fee(
        policy,
        invoice_total=Money.of(500, "USD"),
        balance=Money.of(500, "USD"),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=30),
        rates=rates,
    )
    assert usd is not None
    assert usd.compensation is None


@pytest.mark.parametrize(
    ("body", "balance", "expected"),
    [
        ({"kind": "flat", "amount": 25}, "100.00", "25.00"),
        ({"kind": "percent", "percent": "1.5"}, "1.00", "0.02"),  # 0.015 rounds half-up
        ({"kind": "percent", "percent": 10}, "333.33", "33.33"),
        ({"kind": "percent", "percent": 1, "min_fee": 5}, "100.00", "5.00"),
        ({"kind": "percent", "percent": 10, "max_fee": 20}, "500.00", "20.00"),
        ({"kind": "percent", "percent": 50, "total_cap": 30}, "100.00", "30.00"),
        ({"kind": "percent", "percent": 50, "total_cap_percent": 10}, "100.00", "10.00"),
        ({"kind": "interest", "annual_rate": 10}, "365.00", "1.00"),  # 365 x 10 % x 10/365
    ],
)
def test_fee_kinds_and_per_fee_caps(body: dict[str, Any], balance: str, expected: str) -> None:
    quote = assess_fee(
        late_fee_from_dict("f", body),
        invoice_total=gbp(balance),
        balance=gbp(balance),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=10),
    )
    assert quote is not None
    assert quote.amount == gbp(expected)


def test_currency_precision_half_up() -> None:
    policy = fee("percent", percent="1.5")
    yen = assess_fee(
        policy,
        invoice_total=Money.of(1001, "JPY"),
        balance=Money.of(1001, "JPY"),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=3),
    )
    assert yen is not None
    assert yen.amount == Money.of(15, "JPY")  # 15.015
    dinar = assess_fee(
        policy,
        invoice_total=Money.of("10.001", "BHD"),
        balance=Money.of("10.001", "BHD"),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=3),
    )
    assert dinar is not None
    assert dinar.amount.amount == Decimal("0.150")  # 0.150015


def test_total_cap_counts_earlier_fees_and_stops_at_zero() -> None:
    policy = fee("flat", amount=25, total_cap=50, repeat="month", max_count=5)
    quote = assess_fee(
        policy,
        invoice_total=gbp(1000),
        balance=gbp(1000),
        due_date=DUE,
        assessed_on=date(2024, 5, 1),
        prior_fees=[record("25", date(2024, 3, 10), key="a"), record("15", date(2024, 4, 10), key="b")],
    )
    assert quote is not None
    assert quote.amount == gbp(10)
    assert quote.capped
    assert quote.lines[0][0].endswith("(capped)")
    full = assess_fee(
        policy,
        invoice_total=gbp(1000),
        balance=gbp(1000),
        due_date=DUE,
        assessed_on=date(2024, 5, 1),
        prior_fees=[record("25", date(2024, 3, 10), key="a"), record("25", date(2024, 4, 10), key="b")],
    )
    assert full is None
    # a reversed fee no longer counts
    reversed_fee = FeeRecord(
        key="a",
        policy="f",
        step_id="s",
        due_date=DUE,
        occurrence=0,
        assessed_on=date(2024, 3, 10),
        amount=gbp(25),
        balance=gbp(1000),
        reversed=True,
    )
    again = assess_fee(
        policy,
        invoice_total=gbp(1000),
        balance=gbp(1000),
        due_date=DUE,
        assessed_on=date(2024, 5, 1),
        prior_fees=[reversed_fee, record("25", date(2024, 4, 10), key="b")],
    )
    assert again is not None
    assert again.amount == gbp(25)
    assert fee_cap_total(policy, gbp(1000)) == gbp(50)
    assert fee_cap_total(fee("flat", amount=1), gbp(1000)) is None


def test_total_cap_cuts_compensation_last() -> None:
    policy = fee("uk_statutory", total_cap=50)
    quote = assess_fee(
        policy,
        invoice_total=gbp(500),
        balance=gbp(500),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=365),
        rates=ReferenceRates(uk_base_rate=Decimal(5)),
    )
    # interest 500 x 13 % = 65.00 alone exceeds the cap: interest cut to 50, compensation dropped
    assert quote is not None
    assert quote.amount == gbp(50)
    assert quote.compensation is None


def test_never_compounds_unless_asked() -> None:
    separate = [record("10.00", DUE + timedelta(days=5))]
    plain = assess_fee(
        fee("percent", percent=10),
        invoice_total=gbp(100),
        balance=gbp(100),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=35),
        prior_fees=separate,
    )
    compound = assess_fee(
        fee("percent", percent=10, compound=True),
        invoice_total=gbp(100),
        balance=gbp(100),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=35),
        prior_fees=separate,
    )
    assert plain is not None
    assert plain.amount == gbp(10)
    assert compound is not None
    assert compound.amount == gbp(11)
    # a fee added as a line is inside the balance: it is taken out again unless compounding
    on_invoice = [record("10.00", DUE + timedelta(days=5), on_invoice=True)]
    line = assess_fee(
        fee("percent", percent=10),
        invoice_total=gbp(110),
        balance=gbp(110),
        due_date=DUE,
        assessed_on=DUE + timedelta(days=35),
        prior_fees=on_invoice,
    )
    assert line is not None
    assert line.amount == gbp(10)
    assert line.balance == gbp(100)


def test_grace_and_minimum_invoice_amount() -> None:
    policy = fee("flat", amount=10, grace_days=7, minimum_invoice_amount=50)
    kwargs: dict[str, Any] = {"invoice_total": gbp(100), "balance": gbp(100), "due_date": DUE}
    assert assess_fee(policy, assessed_on=DUE + timedelta(days=7), **kwargs) is None
    assert assess_fee(policy, assessed_on=DUE + timedelta(days=8), **kwargs) is not None
    assert (
        assess_fee(policy, assessed_on=DUE + timedelta(days=30), invoice_total=gbp(49), balance=gbp(49), due_date=DUE)
        is None
    )
    interest = fee("interest", annual_rate=365, grace_days=7)
    quote = assess_fee(interest, assessed_on=DUE + timedelta(days=10), **kwargs)
    assert quote is not None
    assert quote.period_start == DUE + timedelta(days=7)
    assert quote.amount == gbp(3)  # 100 x 365 % x 3/365


def test_interest_over_29_february() -> None:
    # 28 Feb 2024 -> 1 Mar 2024 is two days in a leap year (actual/365 counts the 29th)
    assert accrued_interest(gbp(36500), (), date(2024, 2, 28), date(2024, 3, 1), Decimal(1)) == gbp(2)
    assert accrued_interest(gbp(36500), (), date(2023, 2, 28), date(2023, 3, 1), Decimal(1)) == gbp(1)
    assert accrued_interest(gbp(100), (), DUE, DUE, Decimal(10)) == gbp(0)


def test_balance_on_adds_back_later_payments() -> None:
    payments = (Payment(gbp(30), date(2024, 3, 5)), Payment(gbp(20), date(2024, 3, 9)))
    assert balance_on(gbp(50), payments, date(2024, 3, 4)) == gbp(100)
    assert balance_on(gbp(50), payments, date(2024, 3, 5)) == gbp(70)
    assert balance_on(gbp(50), payments, date(2024, 3, 9)) == gbp(50)


def test_reversal_when_a_late_reported_payment_settled_the_invoice_first() -> None:
    policy = fee("flat", amount=25)
    applied = record("25.00", date(2024, 3, 10), balance="100.00")
    paid_before = (Payment(gbp(100), date(2024, 3, 9)),)
    assert fee_reversal(policy, applied, invoice_total=gbp(100), balance_now=gbp(0), payments=paid_before) == gbp(25)
    paid_same_day = (Payment(gbp(100), date(2024, 3, 10)),)
    assert fee_reversal(policy, applied, invoice_total=gbp(100), balance_now=gbp(0), payments=paid_same_day) == gbp(25)
    paid_after = (Payment(gbp(100), date(2024, 3, 11)),)
    assert fee_reversal(policy, applied, invoice_total=gbp(100), balance_now=gbp(0), payments=paid_after) is None
    # already known at assessment (the fee saw the lower balance): nothing to reverse
    partial = (Payment(gbp(40), date(2024, 3, 2)),)
    seen = record("25.00", date(2024, 3, 10), balance="60.00")
    assert fee_reversal(policy, seen, invoice_total=gbp(100), balance_now=gbp(60), payments=partial) is None
    # no payment facts at all: never reverse blindly
    assert fee_reversal(policy, applied, invoice_total=gbp(100), balance_now=gbp(0), payments=()) is None


def test_partial_reversal_of_interest_recomputed_on_the_true_balance() -> None:
    """Interest 1000 x 18 % x 30/365 = 14.79 was charged; a £400 payment dated 11 Mar shows up later, so the
    fee should have been 10.85 (worked example above): reverse 3.94."""
    policy = fee("interest", rate_per_month="1.5")
    applied = record("14.79", date(2024, 3, 31), balance="1000.00", period_start=DUE)
    refund = fee_reversal(
        policy, applied, invoice_total=gbp(1000), balance_now=gbp(600), payments=(Payment(gbp(400), date(2024, 3, 11)),)
    )
    assert refund == gbp("3.94")


def test_discount_worked_example_2_10_net_30() -> None:
    """'2/10 net 30': £1,000 issued 1 Mar 2024, due 31 Mar; 2 % off if paid by 11 Mar. £980 paid on 9 Mar
    leaves £20 open: a £20 credit closes the invoice."""
    policy = discount_from_dict("2/10", {"percent": 2, "days": 10, "basis": "issue"})
    issue, due = date(2024, 3, 1), date(2024, 3, 31)
    assert discount_deadline(policy, issue, due) == date(2024, 3, 11)
    assert discount_amount(policy, gbp(1000)) == gbp(20)
    on_time = (Payment(gbp(980), date(2024, 3, 9)),)
    assert discount_credit(
        policy, invoice_total=gbp(1000), balance=gbp(20), payments=on_time, issue_date=issue, due_date=due
    ) == gbp(20)
    on_deadline = (Payment(gbp(980), date(2024, 3, 11)),)
    assert discount_credit(
        policy, invoice_total=gbp(1000), balance=gbp(20), payments=on_deadline, issue_date=issue, due_date=due
    ) == gbp(20)
    too_late = (Payment(gbp(980), date(2024, 3, 12)),)
    assert (
        discount_credit(
            policy, invoice_total=gbp(1000), balance=gbp(20), payments=too_late, issue_date=issue, due_date=due
        )
        is None
    )
    too_little = (Payment(gbp(970), date(2024, 3, 9)),)
    assert (
        discount_credit(
            policy, invoice_total=gbp(1000), balance=gbp(30), payments=too_little, issue_date=issue, due_date=due
        )
        is None
    )
    overpaid = (Payment(gbp(990), date(2024, 3, 9)),)
    assert discount_credit(
        policy, invoice_total=gbp(1000), balance=gbp(10), payments=overpaid, issue_date=issue, due_date=due
    ) == gbp(10)


def test_discount_before_due_basis() -> None:
    policy = discount_from_dict("d", {"percent": "2.5", "days": 5, "basis": "due"})
    assert discount_deadline(policy, None, date(2024, 3, 1)) == date(2024, 2, 25)
    assert discount_deadline(policy, date(2024, 1, 1), None) is None
    assert discount_amount(policy, gbp("99.99")) == gbp("2.50")  # 2.49975 rounds half-up
