"""Parsing cadences and policies from plain dicts; invalid input names the step and field."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.policy import Approval, CatchUp, DayKind, DiscountBasis, FeeKind, PolicyError
from connector.domain.policy_parsing import (
    cadence_from_dict,
    discount_from_dict,
    late_fee_from_dict,
    payment_plan_policy_from_dict,
    policy_from_dict,
    validate_cadence,
)


def cadence(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "default",
        "steps": [
            {"id": "soon", "offset": -3, "remind": "friendly"},
            {"id": "late", "offset": 5, "days": "business", "remind": {"template": "overdue"}, "late_fee": "std"},
        ],
    }
    body.update(extra)
    return body


def test_full_cadence_parses() -> None:
    parsed = cadence_from_dict(
        cadence(
            send_time="10:30",
            window={"weekdays": "mon tue wed thu fri sat", "start": "07:00", "end": "19:00"},
            time_zone="America/New_York",
            holidays={"country": "US", "subdiv": "NY"},
            minimum_amount={"USD": 5, "GBP": "2.50"},
            catch_up="skip",
            approval="ledger",
        )
    )
    assert parsed.name == "default"
    assert [s.id for s in parsed.steps] == ["soon", "late"]
    assert parsed.steps[1].days is DayKind.BUSINESS
    assert parsed.steps[1].remind == "overdue"
    assert parsed.send_time == time(10, 30)
    assert parsed.window.weekdays == frozenset(range(6))
    assert parsed.holidays is not None
    assert parsed.holidays.subdiv == "NY"
    assert parsed.minimum_for("GBP") == Decimal("2.50")
    assert parsed.minimum_for("EUR") == 0
    assert parsed.catch_up is CatchUp.SKIP
    assert parsed.approval is Approval.LEDGER


def test_yaml_sexagesimal_time_is_understood() -> None:
    # YAML 1.1 turns an unquoted 09:30 into 570
    assert cadence_from_dict(cadence(send_time=570)).send_time == time(9, 30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"steps": [{"id": "a", "offset": 3, "remind": "x"}, {"id": "b", "offset": 3, "remind": "y"}]},
            "cadence 'default', step 'b', field 'offset': 3 calendar days overlaps step 'a'",
        ),
        (
            {"steps": [{"id": "a", "offset": 10, "remind": "x"}, {"id": "b", "offset": 2, "remind": "y"}]},
            "step 'b', field 'offset'",
        ),
        (
            {
                "steps": [
                    {"id": "a", "offset": 5, "days": "business", "remind": "x"},
                    {"id": "b", "offset": 7, "remind": "y"},
                ]
            },
            "step 'b', field 'offset': 7 calendar days overlaps step 'a' (5 business days)",
        ),
        (
            {"steps": [{"id": "a", "offset": -2, "late_fee": "std"}]},
            "step 'a', field 'late_fee': a late fee cannot be applied before the due date",
        ),
        ({"steps": [{"id": "a", "offset": 0, "late_fee": "std"}]}, "step 'a', field 'late_fee'"),
        (
            {"steps": [{"id": "a", "offset": 400, "remind": "x"}]},
            "step 'a', field 'offset': 400 calendar days is beyond a year",
        ),
        (
            {"steps": [{"id": "a", "offset": -300, "days": "business", "remind": "x"}]},
            "step 'a', field 'offset': -300 business days is beyond a year",
        ),
        (
            {"steps": [{"id": "a", "offset": 1, "remind": "x"}, {"id": "a", "offset": 2, "remind": "x"}]},
            "step 'a', field 'id': duplicate step id",
        ),
        ({"steps": [{"id": "a", "remind": "x"}]}, "step 'a', field 'offset': missing"),
        ({"steps": [{"id": "a", "offset": 1}]}, "step 'a', field 'remind': the step does nothing"),
        ({"steps": [{"offset": 1, "remind": "x"}]}, "field 'steps[0].id'"),
        ({"steps": [{"id": "a", "offset": 1, "remind": "x", "colour": "red"}]}, "step 'a', field 'colour'"),
        ({"steps": [{"id": "a", "offset": "one", "remind": "x"}]}, "field 'offset': expected a whole number"),
        ({"steps": [{"id": "a", "offset": 1, "days": "lunar", "remind": "x"}]}, "field 'days'"),
        ({"steps": []}, "field 'steps'"),
        ({"send_time": "20:00"}, "field 'send_time': 20:00 is outside the send window"),
        ({"send_time": "9 o'clock"}, "field 'send_time'"),
        ({"window": {"start": "18:00", "end": "08:00"}}, "window, field 'end'"),
        ({"window": {"weekdays": ["funday"]}}, "window, field 'weekdays': unknown weekday"),
        ({"time_zone": "Mars/Olympus"}, "field 'time_zone': unknown time zone"),
        ({"holidays": {"country": "XX"}}, "holidays, field 'country'"),
        ({"holidays": {"country": "GB", "subdiv": "ZZZ"}}, "holidays, field 'subdiv'"),
        ({"minimum_amount": -5}, "field 'minimum_amount'"),
        ({"minimum_amount": {"XYZ": 5}}, "minimum_amount, field 'XYZ'"),
        ({"catch_up": "all"}, "field 'catch_up'"),
        ({"approval": "sometimes"}, "field 'approval'"),
        ({"speed": "fast"}, "field 'speed': unknown field"),
    ],
)
def test_invalid_cadences_name_step_and_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        cadence_from_dict(cadence(**change))
    assert message in str(info.value)


def test_cadence_needs_a_name() -> None:
    with pytest.raises(PolicyError, match="field 'name'"):
        cadence_from_dict({"steps": [{"id": "a", "offset": 1, "remind": "x"}]})


def everything(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "templates": ["friendly", "overdue", "installment"],
        "late_fees": {"std": {"kind": "flat", "amount": 25}},
        "discounts": {"early": {"percent": 2, "days": 10}},
        "payment_plans": {"monthly": {"grace_days": 5, "remind_offsets": [-3, 0, 2]}},
        "cadences": {
            "default": {
                "steps": [
                    {"id": "soon", "offset": -3, "remind": "friendly", "discount": "early"},
                    {"id": "late", "offset": 7, "remind": "overdue", "late_fee": "std"},
                ]
            }
        },
    }
    data.update(extra)
    return data


def test_policy_set_parses_and_cross_checks() -> None:
    policies = policy_from_dict(everything())
    assert set(policies.cadences) == {"default"}
    assert policies.late_fees["std"].amount == Decimal(25)
    assert policies.discounts["early"].basis is DiscountBasis.ISSUE
    assert policies.payment_plans["monthly"].remind_offsets == (-3, 0, 2)
    assert policies.templates == frozenset({"friendly", "overdue", "installment"})
    validate_cadence(policies.cadences["default"], policies)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"id": "x", "offset": 9, "late_fee": "nope"},
            "cadence 'default', step 'x', field 'late_fee': unknown late-fee policy 'nope' (known: std)",
        ),
        ({"id": "x", "offset": 9, "discount": "nope"}, "step 'x', field 'discount': unknown discount policy"),
        ({"id": "x", "offset": 9, "remind": "shouty"}, "step 'x', field 'remind': unknown template 'shouty'"),
    ],
)
def test_unknown_references_are_rejected(step: dict[str, Any], message: str) -> None:
    data = everything()
    data["cadences"]["default"]["steps"].append(step)
    with pytest.raises(PolicyError) as info:
        policy_from_dict(data)
    assert message in str(info.value)


def test_templates_unchecked_when_not_listed() -> None:
    data = everything()
    del data["templates"]
    data["cadences"]["default"]["steps"].append({"id": "x", "offset": 9, "remind": "anything"})
    assert policy_from_dict(data).templates is None


def test_payment_plan_template_must_be_known() -> None:
    data = everything(payment_plans={"p": {"template": "missing"}})
    with pytest.raises(PolicyError, match="payment plan 'p', field 'template'"):
        policy_from_dict(data)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "flat"}, "late fee 'f', field 'amount': a flat fee needs an amount"),
        ({"kind": "percent"}, "field 'percent'"),
        ({"kind": "interest"}, "field 'annual_rate'"),
        ({"kind": "magic"}, "field 'kind'"),
        ({"kind": "flat", "amount": 5, "percent": 3}, "field 'percent': does not apply to a flat fee"),
        ({"kind": "interest", "annual_rate": 8, "rate_per_month": 1}, "field 'rate_per_month'"),
        ({"kind": "flat", "amount": -5}, "field 'amount': must be above zero"),
        ({"kind": "flat", "amount": 5, "repeat": "month"}, "field 'max_count': a recurring fee needs max_count"),
        ({"kind": "flat", "amount": 5, "max_count": 3}, "field 'max_count': max_count above 1 needs repeat"),
        ({"kind": "flat", "amount": 5, "repeat": "fortnightly", "max_count": 2}, "field 'repeat'"),
        ({"kind": "flat", "amount": 5, "repeat": 30, "max_count": 500}, "field 'max_count'"),
        ({"kind": "percent", "percent": 5, "min_fee": 10, "max_fee": 5}, "field 'min_fee'"),
        ({"kind": "percent", "percent": 150}, "field 'percent': must be at most 100"),
        ({"kind": "flat", "amount": 5, "write_back": "email"}, "field 'write_back'"),
        ({"kind": "flat", "amount": 5, "grace_days": -1}, "field 'grace_days'"),
        ({"kind": "flat", "amount": 5, "compound": "yes"}, "field 'compound': expected true or false"),
        ({"kind": "flat", "amount": "lots"}, "field 'amount': expected a number"),
    ],
)
def test_invalid_late_fees(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        late_fee_from_dict("f", body)
    assert message in str(info.value)


def test_late_fee_variants() -> None:
    monthly = late_fee_from_dict("i", {"kind": "interest", "rate_per_month": 1.5, "repeat": "month", "max_count": 6})
    assert monthly.annual_rate == Decimal("18.0")
    assert monthly.recurrence is not None
    assert monthly.recurrence.monthly
    uk = late_fee_from_dict("uk", {"kind": "uk_statutory"})
    assert uk.kind is FeeKind.UK_STATUTORY
    assert uk.margin == 8
    assert uk.compensation
    weekly = late_fee_from_dict("w", {"kind": "flat", "amount": "2.50", "repeat": "week", "max_count": 4})
    assert weekly.recurrence is not None
    assert weekly.recurrence.every_days == 7


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"days": 10}, "discount 'd', field 'percent': missing"),
        ({"percent": 100, "days": 10}, "field 'percent': must be below 100"),
        ({"percent": 2}, "field 'days'"),
        ({"percent": 2, "days": 10, "basis": "payday"}, "field 'basis'"),
    ],
)
def test_invalid_discounts(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        discount_from_dict("d", body)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"grace_days": 100}, "payment plan 'p', field 'grace_days'"),
        ({"remind_offsets": "soon"}, "field 'remind_offsets'"),
        ({"grace_days": 2, "remind_offsets": [5]}, "field 'remind_offsets': offsets must lie between"),
    ],
)
def test_invalid_payment_plan_policies(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        payment_plan_policy_from_dict("p", body)
    assert message in str(info.value)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
    with pytest.raises(PolicyError, match="policies, field 'surprise'"):
        policy_from_dict({"surprise": 1})


def test_the_documented_example_parses() -> None:
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[3] / "connector" / "domain" / "CADENCES.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    parsed = policy_from_dict(yaml.safe_load(block))
    standard = parsed.cadences["standard"]
    assert [s.id for s in standard.steps] == ["courtesy", "due", "late-3bd", "late-14", "call", "final"]
    assert standard.send_time == time(9, 30)
    assert parsed.late_fees["monthly_interest"].annual_rate == Decimal("18.0")
    assert parsed.payment_plans["monthly"].remind_offsets == (-3, 0, 2)


@pytest.mark.parametrize("value", ["1e308", "Infinity", "NaN", "-Infinity", 10**13])
def test_numbers_a_policy_cannot_mean_are_refused_by_field(value: object) -> None:
    """A fee of 1e308 (or NaN) would pass "at least zero" and then break money rounding in the planner."""
    with pytest.raises(PolicyError, match="field 'amount'"):
        policy_from_dict({"late_fees": {"f": {"kind": "flat", "amount": value}}})
