"""RS-03 in the pure core: a late fee whose ledger record a retry found deleted (the action was superseded).

`recreate_deleted: false` (default) leaves the fee waived: never planned again, not counted toward caps,
its accrual period and compensation not charged again. `true` plans it once more under a generation key;
generation 0 keys are exactly the keys Nudge always computed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.actions import ActionKind, History, InvoiceFacts, action_key
from connector.domain.fees import FeeRecord, ReferenceRates, assess_fee
from connector.domain.model import InvoiceStatus, Payment
from connector.domain.policy import PolicyError
from connector.domain.policy_parsing import late_fee_from_dict
from tests.support.domain import CONN, invoice, money, only, policies, run, told, utc

STEPS = [{"id": "late", "offset": 5, "late_fee": "flat"}]
FIRST_DAY = utc(2024, 3, 6, 10)  # due Friday 1 March 2024 + 5: Wednesday 6 March, 09:00 London
NEXT_DAY = utc(2024, 3, 7, 10)


def flat(**extra: Any) -> dict[str, Any]:
    return {"flat": {"kind": "flat", "amount": 10, **extra}}


def superseded_first_fee(**extra: Any) -> tuple[Any, History, str]:
    """The policies, and a history whose generation-0 fee was superseded (its ledger record deleted)."""
    pol = policies(STEPS, late_fees=flat(**extra))
    [fee] = run([invoice()], pol, FIRST_DAY, history=told())
    return pol, told(History().supersede([fee])), fee.key


def test_recreate_deleted_parses_defaults_to_false_and_must_be_a_boolean() -> None:
    assert late_fee_from_dict("f", {"kind": "flat", "amount": 5}).recreate_deleted is False
    assert late_fee_from_dict("f", {"kind": "flat", "amount": 5, "recreate_deleted": True}).recreate_deleted
    with pytest.raises(PolicyError) as info:
        late_fee_from_dict("f", {"kind": "flat", "amount": 5, "recreate_deleted": "yes"})
    assert "late fee 'f', field 'recreate_deleted': expected true or false" in str(info.value)


def test_generation_zero_keys_are_unchanged_and_later_generations_differ() -> None:
    args = ("7", "42", "late-14", date(2026, 1, 31), ActionKind.LATE_FEE, 0)
    assert action_key(*args) == "87a0af11017f16fb848916759d518265622552c4"  # computed before generations existed
    assert action_key(*args, generation=0) == action_key(*args)
    assert len({action_key(*args, generation=g) for g in range(4)}) == 4


def test_the_planners_first_fee_key_is_the_generation_zero_key() -> None:
    [fee] = run([invoice()], policies(STEPS, late_fees=flat()), FIRST_DAY, history=told())
    assert fee.generation == 0
    assert fee.key == action_key(CONN.connection_id, "1", "late", date(2024, 3, 1), ActionKind.LATE_FEE, 0)


def test_a_deleted_fee_is_not_planned_again_by_default() -> None:
    pol, history, key = superseded_first_fee()
    assert history.superseded == {key}
    assert key in history.keys
    [record] = history.facts("1").fees
    assert record.superseded
    for day in range(7, 30):
        assert run([invoice()], pol, utc(2024, 3, day, 10), history=history) == []


def test_a_deleted_fee_is_recreated_once_under_a_new_generation_when_the_policy_says_so() -> None:
    pol, history, first_key = superseded_first_fee(recreate_deleted=True)
    [again] = run([invoice()], pol, NEXT_DAY, history=history)
    assert again.kind is ActionKind.LATE_FEE
    assert again.generation == 1
    assert again.key == action_key(
        CONN.connection_id, "1", "late", date(2024, 3, 1), ActionKind.LATE_FEE, 0, generation=1
    )
    assert again.key != first_key
    assert again.amount == money(10)  # the deleted fee is not counted: the full fee again
    assert "generation 1" in again.rule
    # at most one live generation: planned (or done), generation 1 blocks any further one
    live = history.record([again])
    assert run([invoice()], pol, utc(2024, 3, 8, 10), history=live) == []
    # ... until it too is superseded: then generation 2
    [third] = run([invoice()], pol, utc(2024, 3, 8, 10), history=history.supersede([again]))
    assert third.generation == 2


def test_a_deleted_fee_does_not_count_toward_the_total_cap() -> None:
    """Flat 10 a week, at most 2, capped at 15 in all: the deleted first fee leaves the second whole."""
    pol, history, _ = superseded_first_fee(repeat="week", max_count=2, total_cap=15)
    [second] = run([invoice()], pol, utc(2024, 3, 13, 10), history=history)
    assert (second.occurrence, second.amount) == (1, money(10))
    # whereas a fee on record counts: the second is cut to the cap
    [first] = run([invoice()], pol, FIRST_DAY, history=told())
    [capped] = run([invoice()], pol, utc(2024, 3, 13, 10), history=told(History().record([first])))
    assert capped.amount == money(5)


def _interest_fee(superseded: bool, assessed_on: date = date(2024, 4, 1)) -> FeeRecord:
    return FeeRecord(
        key="fee-0",
        policy="i",
        step_id="late",
        due_date=date(2024, 3, 1),
        occurrence=0,
        assessed_on=assessed_on,
        amount=money("12.00"),
        balance=money(1000),
        compensation=money(70),
        superseded=superseded,
    )


@pytest.mark.parametrize(("recreate", "start"), [(False, date(2024, 4, 1)), (True, date(2024, 3, 1))])
def test_a_waived_deleted_fee_keeps_its_period_and_compensation_uncharged(recreate: bool, start: date) -> None:
    """UK statutory, monthly: the next assessment after a deleted one accrues from it unless it is re-created."""
    policy = late_fee_from_dict(
        "i", {"kind": "uk_statutory", "repeat": "month", "max_count": 6, "recreate_deleted": recreate}
    )
    quote = assess_fee(
        policy,
        invoice_total=money(1000),
        balance=money(1000),
        due_date=date(2024, 3, 1),
        assessed_on=date(2024, 5, 1),
        prior_fees=[_interest_fee(superseded=True)],
        rates=ReferenceRates(uk_base_rate=Decimal(5)),
    )
    assert quote is not None
    assert quote.period_start == start
    assert (quote.compensation is None) is not recreate  # waived: the £70 is not charged again


def test_a_superseded_fee_is_never_reversed() -> None:
    pol = policies(STEPS, late_fees=flat())
    record = FeeRecord(
        key="fee-0",
        policy="flat",
        step_id="late",
        due_date=date(2024, 3, 1),
        occurrence=0,
        assessed_on=date(2024, 3, 6),
        amount=money(10),
        balance=money(100),
        superseded=True,
    )
    facts = InvoiceFacts(payments=(Payment(money(100), date(2024, 3, 5)),), fees=(record,))
    paid = invoice(balance="0", status=InvoiceStatus.PAID)
    assert only(run([paid], pol, NEXT_DAY, history=History(invoices={"1": facts})), ActionKind.FEE_REVERSAL) == []
