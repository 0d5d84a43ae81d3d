"""Cadences and policies from plain dicts (parsed from YAML), and the checks that tie them together.

The config layer hands plain dicts to `cadence_from_dict` / `policy_from_dict`; anything invalid
raises `PolicyError` naming the cadence, step (or policy) and field. The format is documented in
CADENCES.md next to this file; the types are in `connector.domain.policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from connector.domain.calendar import WEEKDAY_NAMES, HolidayCalendar, SendWindow, zone
from connector.domain.money import CurrencyError, normalize_currency, to_decimal
from connector.domain.policy import (
    MAX_BUSINESS_OFFSET,
    MAX_OFFSET_DAYS,
    MAX_RECURRENCES,
    STATEMENT_TEMPLATE,
    Approval,
    Cadence,
    CatchUp,
    DayKind,
    DiscountBasis,
    DiscountPolicy,
    FeeKind,
    HolidaySpec,
    LateFeePolicy,
    PaymentPlanPolicy,
    PolicyError,
    PolicySet,
    Recurrence,
    Step,
    Tone,
    WriteBack,
)

# ---------------------------------------------------------------------------------------------------
# parsing helpers

_Choice = TypeVar("_Choice", bound=StrEnum)


class _Where:
    """Builds error messages naming where a problem is."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def error(self, field_name: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.prefix}, field {field_name!r}: {problem}")

    def child(self, suffix: str) -> _Where:
        return _Where(f"{self.prefix}, {suffix}")


def _mapping(value: object, where: _Where, field_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(field_name, f"expected a mapping, got {type(value).__name__}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: _Where) -> None:
    for key in data:
        if key not in allowed:
            raise where.error(str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _text(data: Mapping[str, Any], key: str, where: _Where, default: str | None = None) -> str | None:
    value = data.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _word(data: Mapping[str, Any], key: str, where: _Where, default: str) -> str:
    value = _text(data, key, where, default)
    return default if value is None else value


def _choice(
    data: Mapping[str, Any], key: str, where: _Where, enum: type[_Choice], default: str, expected: str
) -> _Choice:
    """The member of `enum` named by `data[key]` (else `default`); the error lists the `expected` names."""
    text = _word(data, key, where, default)
    try:
        return enum(text)
    except ValueError as exc:
        raise where.error(key, f"expected {expected}, got {text!r}") from exc


def _int(data: Mapping[str, Any], key: str, where: _Where, default: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"expected a whole number, got {value!r}")
    return value


def _bool(data: Mapping[str, Any], key: str, where: _Where, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"expected true or false, got {value!r}")
    return value


# Amounts, rates and caps beyond this are typing mistakes, and would overflow money's rounding (and the
# database's NUMERIC(20, 4)) further on; an amount stored there is at most 10^16.
MAX_POLICY_NUMBER = Decimal(10) ** 12


def _decimal(data: Mapping[str, Any], key: str, where: _Where, *, positive: bool = False) -> Decimal | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, float):
        # YAML gives floats for 1.5; their shortest repr is what the user typed.
        value = repr(value)
    if isinstance(value, bool):
        raise where.error(key, f"expected a number, got {value!r}")
    try:
        number = to_decimal(value)
    except (TypeError, ValueError) as exc:
        raise where.error(key, f"expected a number, got {value!r}") from exc
    if not number.is_finite():
        raise where.error(key, f"expected a number, got {value!r}")
    if number < 0 or (positive and number == 0):
        raise where.error(key, f"must be {'above' if positive else 'at least'} zero, got {value!r}")
    if number > MAX_POLICY_NUMBER:
        raise where.error(key, f"must be at most {MAX_POLICY_NUMBER:,}, got {value!r}")
    return number


def _time(data: Mapping[str, Any], key: str, where: _Where, default: time) -> time:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads 09:00 as sexagesimal 540 (minutes).
        return time(value // 60, value % 60)
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise where.error(key, f'expected a local time such as "09:00", got {value!r}')


def _weekdays(value: object, where: _Where, key: str) -> frozenset[int]:
    if isinstance(value, str):
        value = [part.strip() for part in value.replace(",", " ").split()]
    if not isinstance(value, list | tuple) or not value:
        raise where.error(key, "expected a list of weekdays such as [mon, tue, wed, thu, fri]")
    days: set[int] = set()
    for item in value:
        name = str(item).strip().lower()[:3]
        if name not in WEEKDAY_NAMES:
            raise where.error(key, f"unknown weekday {item!r} (expected mon .. sun)")
        days.add(WEEKDAY_NAMES.index(name))
    return frozenset(days)


def _name(value: object, where: _Where, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"expected a non-empty name, got {value!r}")
    return value.strip()


# ---------------------------------------------------------------------------------------------------
# cadences

_STEP_FIELDS = {
    "id",
    "offset",
    "days",
    "remind",
    "template",
    "note",
    "late_fee",
    "discount",
    "call_task",
    "escalate",
    "tone",
    "record_outcome_in_ledger",
    "statement",
}
_CADENCE_FIELDS = {
    "name",
    "steps",
    "send_time",
    "window",
    "time_zone",
    "holidays",
    "business_days",
    "minimum_amount",
    "catch_up",
    "approval",
    "description",
}


def _step_email(data: Mapping[str, Any], here: _Where) -> tuple[str | None, bool]:
    """The step's reminder template (None: no email) and whether its email is the customer's statement."""
    remind: str | None = None
    raw_remind = data.get("remind")
    if isinstance(raw_remind, Mapping):
        remind = _text(raw_remind, "template", here.child("remind"))
    elif raw_remind is True:
        remind = _text(data, "template", here) or "reminder"
    elif raw_remind is not None and raw_remind is not False:
        remind = _text(data, "remind", here)
    elif data.get("template") is not None:
        remind = _text(data, "template", here)
    # `remind: statement` is the same step (the statement template renders only a statement): how the cadence
    # editor's form, which knows templates, writes it.
    statement = _bool(data, "statement", here, False) or remind == STATEMENT_TEMPLATE
    if statement:
        if remind is not None and remind != STATEMENT_TEMPLATE:
            raise here.error(
                "statement",
                "a statement step sends the customer's statement email; leave out remind and template "
                f"(or edit the {STATEMENT_TEMPLATE!r} template)",
            )
        remind = STATEMENT_TEMPLATE
    return remind, statement


HANDOFF = "handoff"  # `escalate: handoff`: escalate and produce the hand-off pack


def _escalation(data: Mapping[str, Any], here: _Where) -> tuple[bool, bool]:
    """(escalate, hand-off pack) of a step: `escalate: true | false | handoff`."""
    value = data.get("escalate", False)
    if value == HANDOFF:
        return True, True
    if not isinstance(value, bool):
        raise here.error("escalate", f"expected true, false or {HANDOFF!r}, got {value!r}")
    return value, False


def _step_from_dict(data: object, index: int, where: _Where) -> Step:
    data = _mapping(data, where, f"steps[{index}]")
    step_id = data.get("id")
    if not isinstance(step_id, str) or not step_id.strip():
        raise where.error(f"steps[{index}].id", f"every step needs an id, got {step_id!r}")
    here = where.child(f"step {step_id.strip()!r}")
    _check_keys(data, _STEP_FIELDS, here)
    offset = _int(data, "offset", here)
    if offset is None:
        raise here.error("offset", "missing (days from the due date; negative = before)")
    kind = _choice(data, "days", here, DayKind, "calendar", "calendar or business")
    remind, statement = _step_email(data, here)
    escalate, handoff = _escalation(data, here)
    step = Step(
        id=step_id.strip(),
        offset=offset,
        days=kind,
        remind=remind,
        note=_text(data, "note", here),
        late_fee=_text(data, "late_fee", here),
        discount=_text(data, "discount", here),
        call_task=_text(data, "call_task", here),
        escalate=escalate,
        tone=_choice(data, "tone", here, Tone, "", "friendly, firm or final") if data.get("tone") is not None else None,
        record_outcome_in_ledger=_bool(data, "record_outcome_in_ledger", here, False),
        statement=statement,
        handoff=handoff,
    )
    if step.record_outcome_in_ledger and not (step.call_task or step.escalate):
        raise here.error("record_outcome_in_ledger", "only a call_task or escalate step has an outcome to record")
    if not (step.remind or step.note or step.late_fee or step.discount or step.call_task or step.escalate):
        raise here.error(
            "remind", "the step does nothing (give remind, note, late_fee, discount, call_task or escalate)"
        )
    return step


def cadence_from_dict(data: Mapping[str, Any], name: str | None = None) -> Cadence:
    """Parse one cadence from a plain dict (see CADENCES.md) and check it on its own.

    References to policies and templates are checked by `validate_cadence` / `policy_from_dict`.
    Raises PolicyError naming the cadence, step and field.
    """
    cadence_name = name or data.get("name") if isinstance(data, Mapping) else name
    where = _Where(f"cadence {cadence_name!r}" if cadence_name else "cadence")
    data = _mapping(data, where, "cadence")
    _check_keys(data, _CADENCE_FIELDS, where)
    if not isinstance(cadence_name, str) or not cadence_name.strip():
        raise where.error("name", "every cadence needs a name")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise where.error("steps", "expected a non-empty list of steps")
    steps = tuple(_step_from_dict(raw, i, where) for i, raw in enumerate(raw_steps))
    window = _send_window(data, where)
    send_time = _time(data, "send_time", where, time(9, 0))
    if not window.start <= send_time < window.end:
        raise where.error(
            "send_time", f"{send_time:%H:%M} is outside the send window {window.start:%H:%M}-{window.end:%H:%M}"
        )
    tz_name = _time_zone(data, where)
    holiday_spec = _holiday_spec(data, where)
    business = (
        _weekdays(data["business_days"], where, "business_days") if "business_days" in data else frozenset(range(5))
    )
    minimum, by_currency = _minimum_amounts(data, where)
    cadence = Cadence(
        name=cadence_name.strip(),
        steps=steps,
        send_time=send_time,
        window=window,
        time_zone=tz_name,
        holidays=holiday_spec,
        business_weekdays=business,
        minimum_amount=minimum,
        minimum_by_currency=by_currency,
        catch_up=_choice(data, "catch_up", where, CatchUp, "latest", "latest or skip"),
        approval=_choice(data, "approval", where, Approval, "none", "none, ledger or all"),
    )
    validate_cadence(cadence)
    return cadence


def _send_window(data: Mapping[str, Any], where: _Where) -> SendWindow:
    """A cadence's `window`: weekdays and local start/end times (default Monday-Friday, 08:00-18:00)."""
    window_data = _mapping(data.get("window", {}), where, "window")
    window_where = where.child("window")
    _check_keys(window_data, {"weekdays", "start", "end"}, window_where)
    weekdays = (
        _weekdays(window_data["weekdays"], window_where, "weekdays")
        if "weekdays" in window_data
        else frozenset(range(5))
    )
    start = _time(window_data, "start", window_where, time(8, 0))
    end = _time(window_data, "end", window_where, time(18, 0))
    if not start < end:
        raise window_where.error("end", f"must be after start ({start:%H:%M}), got {end:%H:%M}")
    return SendWindow(weekdays=weekdays, start=start, end=end)


def _time_zone(data: Mapping[str, Any], where: _Where) -> str | None:
    """A cadence's optional `time_zone`, checked to be a known IANA zone."""
    tz_name = _text(data, "time_zone", where)
    if tz_name is not None:
        try:
            zone(tz_name)
        except ValueError as exc:
            raise where.error("time_zone", str(exc)) from exc
    return tz_name


def _holiday_spec(data: Mapping[str, Any], where: _Where) -> HolidaySpec | None:
    """A cadence's optional `holidays`: a country code, or a mapping of country and subdivision."""
    raw_holidays = data.get("holidays")
    if raw_holidays is None:
        return None
    if isinstance(raw_holidays, str):
        raw_holidays = {"country": raw_holidays}
    hol = _mapping(raw_holidays, where, "holidays")
    hol_where = where.child("holidays")
    _check_keys(hol, {"country", "subdiv"}, hol_where)
    country = _text(hol, "country", hol_where)
    if country is None:
        raise hol_where.error("country", "missing (ISO 3166-1 code such as GB)")
    subdiv = _text(hol, "subdiv", hol_where)
    try:
        HolidayCalendar(country, subdiv)
    except ValueError as exc:
        raise hol_where.error("subdiv" if subdiv and "subdivision" in str(exc) else "country", str(exc)) from exc
    return HolidaySpec(country.upper(), subdiv.upper() if subdiv else None)


def _minimum_amounts(data: Mapping[str, Any], where: _Where) -> tuple[Decimal, dict[str, Decimal]]:
    """A cadence's `minimum_amount`: one amount for every currency, or a mapping currency -> amount."""
    raw_min = data.get("minimum_amount")
    if not isinstance(raw_min, Mapping):
        minimum = _decimal(data, "minimum_amount", where) if raw_min is not None else None
        return minimum or Decimal(0), {}
    min_where = where.child("minimum_amount")
    by_currency: dict[str, Decimal] = {}
    for code, amount in raw_min.items():
        try:
            currency = normalize_currency(str(code))
        except CurrencyError as exc:
            raise min_where.error(str(code), str(exc)) from exc
        by_currency[currency] = _decimal({"v": amount}, "v", min_where) or Decimal(0)
    return Decimal(0), by_currency


def validate_cadence(cadence: Cadence, policies: PolicySet | None = None) -> None:
    """Check a cadence's steps, and (given `policies`) that the policies and templates it names exist.

    Rules: unique step ids; offsets within a year; steps in strictly increasing order of offset
    (business days count as 7/5 calendar days for this check), so no two steps overlap; a late fee only
    after the due date (offset >= 1); known late-fee/discount policies and templates.
    Raises PolicyError naming the cadence, the step and the field.
    """
    where = _Where(f"cadence {cadence.name!r}")
    seen: dict[str, Step] = {}
    previous: Step | None = None
    for step in cadence.steps:
        here = where.child(f"step {step.id!r}")
        if step.id in seen:
            raise here.error("id", "duplicate step id")
        seen[step.id] = step
        limit = MAX_OFFSET_DAYS if step.days is DayKind.CALENDAR else MAX_BUSINESS_OFFSET
        if abs(step.offset) > limit:
            raise here.error("offset", f"{step.offset} {step.days.value} days is beyond a year (at most {limit})")
        if previous is not None and step.nominal_offset <= previous.nominal_offset:
            raise here.error(
                "offset",
                f"{step.offset} {step.days.value} days overlaps step {previous.id!r} "
                f"({previous.offset} {previous.days.value} days); steps must be "
                "listed in strictly increasing order of offset",
            )
        if step.late_fee is not None and step.offset < 1:
            raise here.error(
                "late_fee",
                f"a late fee cannot be applied before the due date (offset {step.offset}; it must be 1 or more)",
            )
        previous = step
        if policies is None:
            continue
        if step.late_fee is not None and step.late_fee not in policies.late_fees:
            raise here.error(
                "late_fee",
                f"unknown late-fee policy {step.late_fee!r} (known: {', '.join(sorted(policies.late_fees)) or 'none'})",
            )
        if step.discount is not None and step.discount not in policies.discounts:
            raise here.error(
                "discount",
                f"unknown discount policy {step.discount!r} (known: {', '.join(sorted(policies.discounts)) or 'none'})",
            )
        if (
            step.remind is not None
            and not step.statement
            and policies.templates is not None
            and step.remind not in policies.templates
        ):
            raise here.error(
                "remind", f"unknown template {step.remind!r} (known: {', '.join(sorted(policies.templates)) or 'none'})"
            )


# ---------------------------------------------------------------------------------------------------
# policies

_FEE_FIELDS = {
    "kind",
    "amount",
    "percent",
    "annual_rate",
    "rate_per_month",
    "margin",
    "grace_days",
    "repeat",
    "max_count",
    "min_fee",
    "max_fee",
    "total_cap",
    "total_cap_percent",
    "minimum_invoice_amount",
    "compound",
    "compensation",
    "description",
    "write_back",
    "recreate_deleted",
    "warning_days",
    "warning_required",
    "accrue_before_connected",
}


def late_fee_from_dict(name: str, data: Mapping[str, Any]) -> LateFeePolicy:
    """Parse one late-fee policy (see CADENCES.md); raises PolicyError naming the policy and field."""
    where = _Where(f"late fee {name!r}")
    data = _mapping(data, where, "late_fee")
    _check_keys(data, _FEE_FIELDS, where)
    kind = _choice(data, "kind", where, FeeKind, "", f"one of {', '.join(k.value for k in FeeKind)}")
    amount, percent, annual = _fee_rates(data, where, kind)
    grace = _int(data, "grace_days", where, 0) or 0
    if not 0 <= grace <= MAX_OFFSET_DAYS:
        raise where.error("grace_days", f"must be between 0 and {MAX_OFFSET_DAYS}, got {grace}")
    recurrence = _recurrence(data, where)
    max_count = _max_count(data, where, recurrence)
    min_fee = _decimal(data, "min_fee", where)
    max_fee = _decimal(data, "max_fee", where, positive=True)
    if min_fee is not None and max_fee is not None and min_fee > max_fee:
        raise where.error("min_fee", f"{min_fee} is above max_fee {max_fee}")
    cap_percent = _decimal(data, "total_cap_percent", where, positive=True)
    write_back = _choice(data, "write_back", where, WriteBack, "fee_invoice", "fee_invoice or fee_line")
    margin = _decimal(data, "margin", where)
    warning_days = _int(data, "warning_days", where, 7)
    assert warning_days is not None
    if not 0 <= warning_days <= MAX_OFFSET_DAYS:
        raise where.error("warning_days", f"must be between 0 and {MAX_OFFSET_DAYS}, got {warning_days}")
    return LateFeePolicy(
        name=name,
        kind=kind,
        amount=amount,
        percent=percent,
        annual_rate=annual,
        margin=Decimal(8) if margin is None else margin,
        grace_days=grace,
        recurrence=recurrence,
        max_count=max_count,
        min_fee=min_fee,
        max_fee=max_fee,
        total_cap=_decimal(data, "total_cap", where, positive=True),
        total_cap_percent=cap_percent,
        minimum_invoice_amount=_decimal(data, "minimum_invoice_amount", where),
        compound=_bool(data, "compound", where, False),
        compensation=_bool(data, "compensation", where, True),
        description=_text(data, "description", where, "Late fee") or "Late fee",
        write_back=write_back,
        recreate_deleted=_bool(data, "recreate_deleted", where, False),
        warning_days=warning_days,
        warning_required=_bool(data, "warning_required", where, True),
        accrue_before_connected=_bool(data, "accrue_before_connected", where, False),
    )


_RATE_FIELD_KINDS = (("amount", FeeKind.FLAT), ("percent", FeeKind.PERCENT), ("annual_rate", FeeKind.INTEREST))


def _fee_rates(
    data: Mapping[str, Any], where: _Where, kind: FeeKind
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """A late fee's amount, percent and annual rate: the one its kind needs, and none that it does not."""
    amount = _decimal(data, "amount", where, positive=True)
    percent = _decimal(data, "percent", where, positive=True)
    annual = _decimal(data, "annual_rate", where, positive=True)
    monthly = _decimal(data, "rate_per_month", where, positive=True)
    if annual is not None and monthly is not None:
        raise where.error("rate_per_month", "give annual_rate or rate_per_month, not both")
    if monthly is not None:
        annual = monthly * 12
    if kind is FeeKind.FLAT and amount is None:
        raise where.error("amount", "a flat fee needs an amount")
    if kind is FeeKind.PERCENT and percent is None:
        raise where.error("percent", "a percent fee needs a percent of the outstanding balance")
    if kind is FeeKind.INTEREST and annual is None:
        raise where.error("annual_rate", "an interest fee needs annual_rate (or rate_per_month)")
    for (key, applies_to), value in zip(_RATE_FIELD_KINDS, (amount, percent, annual), strict=True):
        if value is not None and kind is not applies_to:
            raise where.error(key, f"does not apply to a {kind.value} fee")
    if percent is not None and percent > 100:
        raise where.error("percent", f"must be at most 100, got {percent}")
    return amount, percent, annual


def _recurrence(data: Mapping[str, Any], where: _Where) -> Recurrence | None:
    """A late fee's `repeat`: month, week or a number of days (None: charged once)."""
    raw_repeat = data.get("repeat")
    if raw_repeat is None:
        return None
    if raw_repeat in ("month", "monthly"):
        return Recurrence(monthly=True)
    if raw_repeat in ("week", "weekly"):
        return Recurrence(every_days=7)
    if isinstance(raw_repeat, int) and not isinstance(raw_repeat, bool) and 1 <= raw_repeat <= 366:
        return Recurrence(every_days=raw_repeat)
    raise where.error("repeat", f"expected month, week or a number of days (1-366), got {raw_repeat!r}")


def _max_count(data: Mapping[str, Any], where: _Where, recurrence: Recurrence | None) -> int:
    """How many times a late fee is charged at most: 1 unless it repeats, and then it must be given."""
    max_count = _int(data, "max_count", where, 1 if recurrence is None else None)
    if max_count is None:
        raise where.error("max_count", "a recurring fee needs max_count (how many times at most)")
    if not 1 <= max_count <= MAX_RECURRENCES:
        raise where.error("max_count", f"must be between 1 and {MAX_RECURRENCES}, got {max_count}")
    if max_count > 1 and recurrence is None:
        raise where.error("max_count", "max_count above 1 needs repeat (month, week or days)")
    return max_count


def discount_from_dict(name: str, data: Mapping[str, Any]) -> DiscountPolicy:
    """Parse one early-payment discount policy; raises PolicyError naming the policy and field."""
    where = _Where(f"discount {name!r}")
    data = _mapping(data, where, "discount")
    _check_keys(data, {"percent", "days", "basis", "offer_required"}, where)
    percent = _decimal(data, "percent", where, positive=True)
    if percent is None:
        raise where.error("percent", "missing (e.g. 2 for 2 %)")
    if percent >= 100:
        raise where.error("percent", f"must be below 100, got {percent}")
    days = _int(data, "days", where)
    if days is None or not 0 <= days <= MAX_OFFSET_DAYS:
        raise where.error("days", f"expected a number of days between 0 and {MAX_OFFSET_DAYS}, got {days!r}")
    basis = _choice(data, "basis", where, DiscountBasis, "issue", "issue or due")
    return DiscountPolicy(
        name=name, percent=percent, days=days, basis=basis, offer_required=_bool(data, "offer_required", where, True)
    )


def payment_plan_policy_from_dict(name: str, data: Mapping[str, Any]) -> PaymentPlanPolicy:
    """Parse one payment-plan policy; raises PolicyError naming the policy and field."""
    where = _Where(f"payment plan {name!r}")
    data = _mapping(data, where, "payment_plan")
    _check_keys(data, {"grace_days", "remind_offsets", "template"}, where)
    grace = _int(data, "grace_days", where, 3) or 0
    if not 0 <= grace <= 60:
        raise where.error("grace_days", f"must be between 0 and 60, got {grace}")
    raw = data.get("remind_offsets", [-3, 0])
    if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise where.error("remind_offsets", f"expected a list of day offsets such as [-3, 0], got {raw!r}")
    offsets = tuple(sorted(set(raw)))
    if any(not -60 <= v <= grace for v in offsets):
        raise where.error("remind_offsets", f"offsets must lie between -60 and grace_days ({grace})")
    template = _text(data, "template", where, "installment") or "installment"
    return PaymentPlanPolicy(name=name, grace_days=grace, remind_offsets=offsets, template=template)


def policy_from_dict(data: Mapping[str, Any]) -> PolicySet:
    """Parse every cadence and policy of a connection (the `cadences:` block of the config).

    Keys: `templates` (list of known template names; omitted = unchecked), `late_fees`, `discounts`,
    `payment_plans` (mappings name -> policy), `cadences` (mapping name -> cadence). Every reference is
    checked; raises PolicyError naming the cadence or policy, the step and the field.
    """
    where = _Where("policies")
    data = _mapping(data, where, "policies")
    _check_keys(data, {"templates", "late_fees", "discounts", "payment_plans", "cadences"}, where)
    templates: frozenset[str] | None = None
    if "templates" in data:
        raw = data["templates"]
        if not isinstance(raw, list | tuple) or not all(isinstance(t, str) and t for t in raw):
            raise where.error("templates", "expected a list of template names")
        templates = frozenset(raw)

    def named(key: str) -> dict[str, Any]:
        block = _mapping(data.get(key, {}), where, key)
        return {_name(n, where.child(key), "name"): v for n, v in block.items()}

    late_fees = {n: late_fee_from_dict(n, v) for n, v in named("late_fees").items()}
    discounts = {n: discount_from_dict(n, v) for n, v in named("discounts").items()}
    plans = {n: payment_plan_policy_from_dict(n, v) for n, v in named("payment_plans").items()}
    if templates is not None:
        for plan_policy in plans.values():
            if plan_policy.template not in templates:
                raise _Where(f"payment plan {plan_policy.name!r}").error(
                    "template", f"unknown template {plan_policy.template!r}"
                )
    cadences = {n: cadence_from_dict(_mapping(v, where.child("cadences"), n), n) for n, v in named("cadences").items()}
    policies = PolicySet(
        cadences=cadences, late_fees=late_fees, discounts=discounts, payment_plans=plans, templates=templates
    )
    for cadence in cadences.values():
        validate_cadence(cadence, policies)
    return policies
