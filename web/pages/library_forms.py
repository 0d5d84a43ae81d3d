"""The library editors' forms: a cadence, its steps and a policy as the editors show them (text as typed), turned
into the YAML format the library stores (connector/domain/CADENCES.md), and the library's refusals placed next to
the field they name.

Keys the editors do not show are kept from the stored body, and a default the stored body left out is not written,
so saving an unchanged form makes no new version. Numbers are checked here first (a whole number of days, a
decimal amount, nothing absurdly long), then by the library with the whole library applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from werkzeug.datastructures import MultiDict

from connector.domain.policy import MAX_OFFSET_DAYS
from connector.errors import InvalidInput
from connector.library.resolve import DISCOUNT, LATE_FEE, PAYMENT_PLAN

MAX_STEPS = 60
MAX_TEXT = 500
MAX_ID = 2**31 - 1
POLICY_KINDS = (LATE_FEE, DISCOUNT, PAYMENT_PLAN)
WEEKDAYS = (
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
)
TONES = (("", "Automatic"), ("friendly", "Friendly"), ("firm", "Firm"), ("final", "Final"))
DAY_KINDS = (("calendar", "calendar days"), ("business", "business days"))
APPROVALS = (
    ("none", "Nothing waits: everything goes out on its day"),
    ("ledger", "Fees, credits and notes wait for a person's approval"),
    ("all", "Everything waits for a person's approval"),
)
CATCH_UPS = (
    ("latest", "Start with the first fitting late step on the day it comes in"),
    ("skip", "Wait for the next step on its own day"),
)


def int_arg(value: str | None) -> int | None:
    """A positive row id from a form or query value (None for anything else)."""
    if value is None or not re.fullmatch(r"\d{1,10}", value.strip()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def clean(text: str) -> str:
    """A service's message as a sentence: first letter capital (unless it starts with a field's name)."""
    text = text.strip()
    if not text or "_" in text.split(" ", 1)[0]:
        return text
    return text[:1].upper() + text[1:]


# -- the cadence form ----------------------------------------------------------------------------------------
_STEP_TEXT = ("id", "note", "call_task")
_STEP_CHOICES = ("days", "remind", "tone", "late_fee", "discount")
_TIME = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
_WHOLE = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^\d{1,13}(\.\d{1,6})?$")
_CURRENCY_AMOUNT = re.compile(r"^([A-Za-z]{3})\s*[:=]?\s*(\S+)$")


@dataclass
class StepForm:
    """One step as the editor shows it (text as typed)."""

    id: str = ""
    offset: str = "0"
    days: str = "calendar"
    remind: str = ""
    tone: str = ""
    note: str = ""
    late_fee: str = ""
    discount: str = ""
    call_task: str = ""
    escalate: bool = False
    handoff: bool = False  # `escalate: handoff`: the escalation also makes the hand-off pack (docs/handoff.md)
    record_outcome: bool = False

    @classmethod
    def of(cls, step: Any) -> StepForm:
        """A stored step (the YAML format) as the editor shows it."""
        if not isinstance(step, Mapping):
            return cls()
        remind = step.get("remind")
        if isinstance(remind, Mapping):
            remind = remind.get("template")
        elif remind is True:
            remind = step.get("template") or "reminder"
        elif remind in (None, False):
            remind = step.get("template") if remind is None else None
        if step.get("statement") is True:  # a statement step (docs/statements.md): the form's template "statement"
            remind = "statement"
        return cls(
            id=_text(step.get("id")),
            offset=_text(step.get("offset", 0)),
            days=_text(step.get("days")) or "calendar",
            remind=_text(remind),
            tone=_text(step.get("tone")),
            note=_text(step.get("note")),
            late_fee=_text(step.get("late_fee")),
            discount=_text(step.get("discount")),
            call_task=_text(step.get("call_task")),
            escalate=step.get("escalate") is True or step.get("escalate") == "handoff",
            handoff=step.get("escalate") == "handoff",
            record_outcome=step.get("record_outcome_in_ledger") is True,
        )

    @classmethod
    def of_form(cls, form: MultiDict[str, str], index: int) -> StepForm:
        """Step `index` of a posted form (fields steps-<index>-<name>)."""
        prefix = f"steps-{index}-"
        values = {name: form.get(prefix + name, "")[:MAX_TEXT] for name in (*_STEP_TEXT, *_STEP_CHOICES)}
        return cls(
            offset=form.get(prefix + "offset", "")[:40],
            escalate=form.get(prefix + "escalate") == "on",
            handoff=form.get(prefix + "handoff") == "on",
            record_outcome=form.get(prefix + "record_outcome") == "on",
            **values,
        )

    def body(self, index: int, errors: dict[str, str]) -> dict[str, Any]:
        """The step in the YAML format; problems found here go into `errors` (keyed by the form field)."""
        prefix = f"steps-{index}-"
        out: dict[str, Any] = {"id": self.id.strip()}
        offset = self.offset.strip()
        if not _WHOLE.match(offset):
            errors[prefix + "offset"] = "Enter a whole number of days (negative is before the due date)."
        elif len(offset.lstrip("+-")) > 6:
            errors[prefix + "offset"] = f"Too far: at most {MAX_OFFSET_DAYS} days from the due date."
        else:
            out["offset"] = int(offset)
        if self.days == "business":
            out["days"] = "business"
        for key in ("remind", "tone", "late_fee", "discount"):
            if getattr(self, key).strip():
                out[key] = getattr(self, key).strip()
        for key in ("note", "call_task"):
            if getattr(self, key).strip():
                out[key] = getattr(self, key).strip()
        if self.handoff or self.escalate:
            out["escalate"] = "handoff" if self.handoff else True
        if self.record_outcome:
            out["record_outcome_in_ledger"] = True
        return out


@dataclass
class CadenceForm:
    """A cadence as the editor shows it: its steps, when it sends, what waits for approval."""

    steps: list[StepForm] = field(default_factory=list)
    send_time: str = "09:00"
    weekdays: list[str] = field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    start: str = "08:00"
    end: str = "18:00"
    time_zone: str = ""
    holiday_country: str = ""
    holiday_subdiv: str = ""
    approval: str = "none"
    catch_up: str = "latest"
    minimum: str = ""
    base_version: int = 0
    too_many: bool = False  # more steps were posted than the editor takes: refused, never cut silently

    @classmethod
    def of(cls, body: Mapping[str, Any], version: int) -> CadenceForm:
        """A stored cadence body (the YAML format) as the editor shows it."""
        raw_window = body.get("window")
        window: Mapping[str, Any] = raw_window if isinstance(raw_window, Mapping) else {}
        raw_holidays = body.get("holidays")
        if isinstance(raw_holidays, str):
            raw_holidays = {"country": raw_holidays}
        holidays: Mapping[str, Any] = raw_holidays if isinstance(raw_holidays, Mapping) else {}
        weekdays = window.get("weekdays", ["mon", "tue", "wed", "thu", "fri"])
        if isinstance(weekdays, str):
            weekdays = weekdays.replace(",", " ").split()
        steps = body.get("steps")
        return cls(
            steps=[StepForm.of(step) for step in steps] if isinstance(steps, list) else [],
            send_time=_clock(body.get("send_time"), "09:00"),
            weekdays=[str(day).strip().lower()[:3] for day in weekdays] if isinstance(weekdays, list) else [],
            start=_clock(window.get("start"), "08:00"),
            end=_clock(window.get("end"), "18:00"),
            time_zone=_text(body.get("time_zone")),
            holiday_country=_text(holidays.get("country")),
            holiday_subdiv=_text(holidays.get("subdiv")),
            approval=_text(body.get("approval")) or "none",
            catch_up=_text(body.get("catch_up")) or "latest",
            minimum=_minimum_text(body.get("minimum_amount")),
            base_version=version,
        )

    @classmethod
    def of_form(cls, form: MultiDict[str, str]) -> CadenceForm:
        """The posted editor form."""
        count = 0
        while count < MAX_STEPS and f"steps-{count}-id" in form:
            count += 1
        base = int_arg(form.get("base_version")) or 0
        return cls(
            steps=[StepForm.of_form(form, index) for index in range(count)],
            send_time=form.get("send_time", "")[:20],
            weekdays=[day for day in form.getlist("weekdays") if day in dict(WEEKDAYS)],
            start=form.get("start", "")[:20],
            end=form.get("end", "")[:20],
            time_zone=form.get("time_zone", "")[:64],
            holiday_country=form.get("holiday_country", "")[:10],
            holiday_subdiv=form.get("holiday_subdiv", "")[:10],
            approval=form.get("approval", "none")[:20],
            catch_up=form.get("catch_up", "latest")[:20],
            minimum=form.get("minimum", "")[:300],
            base_version=base,
            too_many=f"steps-{MAX_STEPS}-id" in form,
        )

    def body(self, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The cadence in the YAML format (keys the editor does not show kept from `base`) and the problems
        found before the library checks it, keyed by form field."""
        errors: dict[str, str] = {}
        body = {key: value for key, value in base.items() if key not in _CONTROLLED}
        if not self.steps:
            errors["form"] = "A cadence needs at least one step."
        if self.too_many:
            errors["form"] = f"A cadence has at most {MAX_STEPS} steps."
        body["steps"] = [step.body(index, errors) for index, step in enumerate(self.steps)]
        for key, value in (("send_time", self.send_time), ("start", self.start), ("end", self.end)):
            if not _TIME.match(value.strip()):
                errors[key] = "Enter a time such as 09:30 (24-hour clock)."
        _put(body, base, "send_time", _hhmm(self.send_time), "09:00")
        if not self.weekdays:
            errors["weekdays"] = "Choose at least one weekday."
        window = {
            "weekdays": [day for day, _ in WEEKDAYS if day in self.weekdays],
            "start": _hhmm(self.start),
            "end": _hhmm(self.end),
        }
        _put(
            body,
            base,
            "window",
            window,
            {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
        )
        if self.time_zone.strip():
            body["time_zone"] = self.time_zone.strip()
        self._holidays(body, errors)
        _put(body, base, "approval", self.approval, "none")
        _put(body, base, "catch_up", self.catch_up, "latest")
        minimum = _parse_minimum(self.minimum, errors)
        if minimum is not None:
            body["minimum_amount"] = minimum
        return body, errors

    def _holidays(self, body: dict[str, Any], errors: dict[str, str]) -> None:
        """The public holidays: a country and an optional region (a region alone is refused)."""
        if self.holiday_country.strip():
            holidays = {"country": self.holiday_country.strip().upper()}
            if self.holiday_subdiv.strip():
                holidays["subdiv"] = self.holiday_subdiv.strip().upper()
            body["holidays"] = holidays
        elif self.holiday_subdiv.strip():
            errors["holiday_country"] = "Give the country of the region."

    def apply(self, op: str) -> set[int]:
        """Add a step, or remove / move step i ("remove-i", "up-i", "down-i"); anything else is ignored. Returns
        the steps to show open (the new one, or the one moved)."""
        verb, _, raw = op.partition("-")
        if verb == "add" and len(self.steps) < MAX_STEPS:
            self.steps.append(self._new_step())
            return {len(self.steps) - 1}
        if not raw.isdigit() or not 0 <= int(raw) < len(self.steps):
            return set()
        index = int(raw)
        if verb == "remove":
            del self.steps[index]
            return set()
        if verb == "up" and index > 0:
            self.steps[index - 1], self.steps[index] = self.steps[index], self.steps[index - 1]
            return {index - 1}
        if verb == "down" and index < len(self.steps) - 1:
            self.steps[index + 1], self.steps[index] = self.steps[index], self.steps[index + 1]
            return {index + 1}
        return set()

    def _new_step(self) -> StepForm:
        taken = {step.id for step in self.steps}
        number = len(self.steps) + 1
        while f"step-{number}" in taken:
            number += 1
        offsets = [
            int(step.offset)
            for step in self.steps
            if _WHOLE.match(step.offset.strip() or "x") and len(step.offset.strip()) < 7
        ]
        return StepForm(id=f"step-{number}", offset=str(max(offsets) + 7 if offsets else 0))


_CONTROLLED = frozenset(
    {"steps", "send_time", "window", "time_zone", "holidays", "approval", "catch_up", "minimum_amount"}
)


def _put(body: dict[str, Any], base: Mapping[str, Any], key: str, value: Any, default: Any) -> None:
    """Set `key` unless the stored body left it out and the value is the default (so an unchanged cadence
    saves no new version)."""
    if key in base or value != default:
        body[key] = value


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    return str(value)


def _clock(value: Any, default: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"  # YAML 1.1 read 09:30 as minutes
    return str(value) if isinstance(value, str) and value else default


def _hhmm(value: str) -> str:
    value = value.strip()
    return value.zfill(5) if _TIME.match(value) else value


def _minimum_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{code} {amount}" for code, amount in value.items())
    return _text(value)


def _parse_minimum(text: str, errors: dict[str, str]) -> Any:
    """ "5" (every currency) or "GBP 5, USD 10" (per currency); None when empty."""
    text = text.strip()
    if not text:
        return None
    if _NUMBER.match(text):
        return _number(text)
    found: dict[str, Any] = {}
    for part in text.split(","):
        matched = _CURRENCY_AMOUNT.match(part.strip())
        if matched is None or not _NUMBER.match(matched.group(2)):
            errors["minimum"] = "Write one amount (5) or amounts per currency (GBP 5, USD 10), zero or more."
            return None
        found[matched.group(1).upper()] = _number(matched.group(2))
    return found


def _number(text: str) -> int | float:
    """A checked decimal text as the YAML would hold it (a whole number, or its shortest float)."""
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(text)


# -- refusals next to their fields -------------------------------------------------------------------------------
_WHERE_STEP = re.compile(r"step '([^']*)'")
_WHERE_INDEX = re.compile(r"steps\[(\d+)\]")
_WHERE_FIELD = re.compile(r"field '([^']+)': (.*)$", re.DOTALL)
_STEP_FIELDS = {
    "offset": "offset",
    "days": "days",
    "remind": "remind",
    "template": "remind",
    "note": "note",
    "late_fee": "late_fee",
    "discount": "discount",
    "call_task": "call_task",
    "escalate": "escalate",
    "tone": "tone",
    "record_outcome_in_ledger": "record_outcome",
    "id": "id",
}
_CADENCE_FIELDS = {
    "send_time": "send_time",
    "weekdays": "weekdays",
    "start": "start",
    "end": "end",
    "time_zone": "time_zone",
    "country": "holiday_country",
    "subdiv": "holiday_subdiv",
    "approval": "approval",
    "catch_up": "catch_up",
}


def cadence_errors(exc: InvalidInput, form: CadenceForm) -> dict[str, str]:
    """The library's refusal of a cadence, keyed by the form field it names (else "form")."""
    message = exc.user_message
    found = _WHERE_FIELD.search(message)
    if found is None:
        return {"form": clean(message)}
    name, reason = found.group(1), clean(found.group(2))
    index_match = _WHERE_INDEX.search(name)
    step_match = _WHERE_STEP.search(message)
    if index_match is not None:
        return {f"steps-{index_match.group(1)}-id": reason}
    if step_match is not None and name in _STEP_FIELDS:
        ids = [step.id.strip() for step in form.steps]
        if step_match.group(1) in ids:
            position = (
                len(ids) - 1 - ids[::-1].index(step_match.group(1)) if name == "id" else ids.index(step_match.group(1))
            )
            return {f"steps-{position}-{_STEP_FIELDS[name]}": reason}
    if "minimum_amount" in message:
        return {"minimum": reason}
    if name in _CADENCE_FIELDS:
        return {_CADENCE_FIELDS[name]: reason}
    return {"form": clean(message)}


# -- policies -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyField:
    """One field of a policy's editor: its YAML key, label, kind of value, hint, choices and default."""

    key: str
    label: str
    type: str  # decimal | int | text | choice | bool | repeat | offsets | template
    hint: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = None


FEE_KINDS = (
    ("flat", "A flat amount"),
    ("percent", "A percent of the outstanding balance"),
    ("interest", "Interest, accrued daily"),
    ("uk_statutory", "UK statutory late-payment interest"),
    ("eu_statutory", "EU late-payment directive interest"),
)
POLICY_FIELDS: dict[str, tuple[PolicyField, ...]] = {
    LATE_FEE: (
        PolicyField("kind", "Kind of fee", "choice", choices=FEE_KINDS),
        PolicyField("amount", "Amount of a flat fee", "decimal", "In the invoice's currency."),
        PolicyField("percent", "Percent of the outstanding balance", "decimal", "For a percent fee, e.g. 5."),
        PolicyField("annual_rate", "Annual interest rate, %", "decimal", "For interest, e.g. 18."),
        PolicyField("rate_per_month", "Or a monthly interest rate, %", "decimal", "Instead of the annual rate."),
        PolicyField("margin", "Points above the reference rate", "decimal", "Statutory kinds only (default 8)."),
        PolicyField("grace_days", "Grace days after the due date", "int", "No fee before due date + grace."),
        PolicyField("repeat", "Repeat", "repeat", "month, week, a number of days, or empty to charge once."),
        PolicyField("max_count", "At most this many times", "int", "Required when the fee repeats."),
        PolicyField("min_fee", "Smallest fee", "decimal"),
        PolicyField("max_fee", "Largest fee", "decimal"),
        PolicyField("total_cap", "All fees of one invoice at most", "decimal", "In the invoice's currency."),
        PolicyField("total_cap_percent", "All fees at most, % of the invoice", "decimal"),
        PolicyField("minimum_invoice_amount", "No fee on invoices below", "decimal"),
        PolicyField("description", "Text of the fee line", "text", "Shown on the fee invoice."),
        PolicyField(
            "write_back",
            "How the fee is written to the ledger",
            "choice",
            choices=(
                ("fee_invoice", "A separate fee invoice"),
                ("fee_line", "A line on the invoice (QuickBooks only)"),
            ),
            default="fee_invoice",
        ),
        PolicyField("warning_days", "Announce it this many days before charging", "int", default=7),
        PolicyField("warning_required", "Charge only after a reminder announced it", "bool", default=True),
        PolicyField("compound", "Charge fees on earlier fees", "bool", default=False),
        PolicyField("compensation", "Add the fixed UK compensation (UK statutory only)", "bool", default=True),
        PolicyField(
            "accrue_before_connected", "Accrue from due date + grace, not from the first warning", "bool", default=False
        ),
        PolicyField(
            "recreate_deleted", "Charge again when someone deletes the fee in the ledger", "bool", default=False
        ),
    ),
    DISCOUNT: (
        PolicyField("percent", "Discount, % of the invoice total", "decimal", "e.g. 2 for 2 %."),
        PolicyField("days", "Days", "int", "Counted from the issue date, or before the due date."),
        PolicyField(
            "basis",
            "Counted",
            "choice",
            choices=(("issue", "after the issue date"), ("due", "before the due date")),
            default="issue",
        ),
        PolicyField("offer_required", "Honoured only when a step offered it", "bool", default=True),
    ),
    PAYMENT_PLAN: (
        PolicyField(
            "grace_days", "Grace days for an installment", "int", "Later than this breaks the plan.", default=3
        ),
        PolicyField(
            "remind_offsets",
            "Reminders, days from each installment",
            "offsets",
            "e.g. -3, 0, 2 (negative is before the installment's date).",
            default=[-3, 0],
        ),
        PolicyField("template", "Email template", "template", default="installment"),
    ),
}
NEW_POLICY: dict[str, dict[str, Any]] = {
    LATE_FEE: {"kind": "flat", "amount": 25},
    DISCOUNT: {"percent": 2, "days": 10},
    PAYMENT_PLAN: {"grace_days": 3, "remind_offsets": [-3, 0]},
}


def policy_values(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A stored policy body as the editor's field values (text; bools as bools)."""
    values: dict[str, Any] = {}
    for spec in POLICY_FIELDS[kind]:
        raw = body.get(spec.key, spec.default)
        if spec.type == "bool":
            values[spec.key] = bool(raw)
        elif spec.type == "offsets":
            values[spec.key] = ", ".join(str(v) for v in raw) if isinstance(raw, list) else _text(raw)
        else:
            values[spec.key] = _text(raw)
    return values


def policy_values_of(kind: str, form: MultiDict[str, str]) -> dict[str, Any]:
    """The posted policy form's values."""
    return {
        spec.key: form.get(spec.key) == "on" if spec.type == "bool" else form.get(spec.key, "")[:MAX_TEXT]
        for spec in POLICY_FIELDS[kind]
    }


def policy_body(kind: str, values: Mapping[str, Any], base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The policy in the YAML format from the editor's values, and the problems found before the library checks
    it (keyed by field). Fields left empty are left out (the policy's default applies)."""
    errors: dict[str, str] = {}
    keys = {spec.key for spec in POLICY_FIELDS[kind]}
    body = {key: value for key, value in base.items() if key not in keys}
    for spec in POLICY_FIELDS[kind]:
        value = _policy_value(spec, values.get(spec.key), errors)
        if value is None:
            continue
        if spec.type in ("bool", "choice", "template") and spec.default is not None:
            _put(body, base, spec.key, value, spec.default)
        else:
            body[spec.key] = value
    return body, errors


def _policy_value(spec: PolicyField, raw: Any, errors: dict[str, str]) -> Any:
    if spec.type == "bool":
        return bool(raw)
    text = str(raw or "").strip()
    if not text:
        return None
    parse = _PARSERS.get(spec.type)
    if parse is None:
        return text
    try:
        return parse(text)
    except ValueError as exc:
        errors[spec.key] = str(exc)
        return None


def _parse_decimal(text: str) -> int | float:
    if text.startswith("-") and _NUMBER.match(text[1:]):
        raise ValueError("Must be zero or more.")
    if re.fullmatch(r"\d{14,}(\.\d*)?", text):
        raise ValueError("Far too large: at most 1,000,000,000,000.")
    if not _NUMBER.match(text):
        raise ValueError("Enter a number such as 25 or 1.5 (at most 6 decimals).")
    return _number(text)


def _parse_int(text: str) -> int:
    if not _WHOLE.match(text):
        raise ValueError("Enter a whole number.")
    if len(text.lstrip("+-")) > 6:
        raise ValueError("Far too large.")
    return int(text)


def _parse_repeat(text: str) -> int | str:
    if text.lower() in ("month", "monthly", "week", "weekly"):
        return text.lower()
    if re.fullmatch(r"\d{1,3}", text):
        return int(text)
    raise ValueError("Write month, week or a number of days from 1 to 366 (empty: charged once).")


def _parse_offsets(text: str) -> list[int]:
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not parts or len(parts) > 20 or not all(re.fullmatch(r"[+-]?\d{1,3}", part) for part in parts):
        raise ValueError("Write days such as -3, 0, 2 (whole numbers, separated by commas).")
    return [int(part) for part in parts]


_PARSERS = {"decimal": _parse_decimal, "int": _parse_int, "repeat": _parse_repeat, "offsets": _parse_offsets}


def policy_errors(exc: InvalidInput, kind: str) -> dict[str, str]:
    """The library's refusal of a policy, keyed by the field it names (else "form")."""
    found = _WHERE_FIELD.search(exc.user_message)
    keys = {spec.key for spec in POLICY_FIELDS[kind]}
    if found is not None and found.group(1) in keys:
        return {found.group(1): clean(found.group(2))}
    return {"form": clean(exc.user_message)}


def labelled(errors: Mapping[str, str], form: CadenceForm | None = None) -> list[str]:
    """Problems as sentences naming where they are (for the preview and impact panels)."""
    out = []
    for key, message in errors.items():
        where = _field_label(key, form)
        out.append(f"{where}: {message}" if where else message)
    return out


_FIELD_LABELS = {
    "send_time": "Send time",
    "weekdays": "Weekdays",
    "start": "Window start",
    "end": "Window end",
    "time_zone": "Time zone",
    "holiday_country": "Holidays country",
    "holiday_subdiv": "Holidays region",
    "approval": "Approval",
    "catch_up": "Late invoices",
    "minimum": "Minimum balance",
    "preview_client": "Client",
    "offset": "offset",
    "id": "step name",
    "record_outcome": "record the outcome",
    "remind": "reminder",
    "late_fee": "late fee",
    "call_task": "call task",
}


def _field_label(key: str, form: CadenceForm | None) -> str:
    matched = re.match(r"steps-(\d+)-(\w+)$", key)
    if matched:
        index, name = int(matched.group(1)), matched.group(2)
        step = form.steps[index].id if form is not None and index < len(form.steps) else ""
        label = f"Step {index + 1}" + (f" “{step}”" if step else "")
        return f"{label}, {_FIELD_LABELS.get(name, name.replace('_', ' '))}"
    return "" if key == "form" else _FIELD_LABELS.get(key, key.replace("_", " ").capitalize())
