"""Cadences and the late-fee, discount and payment-plan policies they refer to: the types.

Parsing and validation from plain dicts live in `connector.domain.policy_parsing`; the format is
documented in CADENCES.md next to this file. Offsets are days relative to an invoice's due date, a
local calendar date in the customer's zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from connector.domain.calendar import SendWindow

MAX_OFFSET_DAYS = 366  # calendar days; business offsets are limited to 262 (a year of weekdays)
MAX_BUSINESS_OFFSET = 262
MAX_RECURRENCES = 120


class PolicyError(ValueError):
    """An invalid cadence or policy; the message names the cadence/policy, the step and the field."""


class DayKind(StrEnum):
    """How a step's offset counts: every calendar day, or business days only (weekdays, no holidays)."""

    CALENDAR = "calendar"
    BUSINESS = "business"


class CatchUp(StrEnum):
    """What happens to steps whose moment passed before Nudge could act (first seen late, paused).

    Either way an invoice first seen late is first contacted by a step whose tone fits a first contact
    (see `connector.domain.cadence`). `latest`: that step goes out at once and the later steps follow at
    the cadence's spacing; missed steps never burst, only the latest due fires. `skip`: steps that fell
    before the invoice came in never fire, the invoice waits for its next fitting step on its own day.
    """

    LATEST = "latest"
    SKIP = "skip"


class Approval(StrEnum):
    """Which planned actions wait for a user's approval: none, ledger writes only, or all."""

    NONE = "none"
    LEDGER = "ledger"
    ALL = "all"


class FeeKind(StrEnum):
    """Late-fee formulas (see `connector.domain.fees`)."""

    FLAT = "flat"
    PERCENT = "percent"
    INTEREST = "interest"
    UK_STATUTORY = "uk_statutory"
    EU_STATUTORY = "eu_statutory"


class DiscountBasis(StrEnum):
    """Where an early-payment deadline counts from: N days after issue, or N days before due."""

    ISSUE = "issue"
    DUE = "due"


class Tone(StrEnum):
    """How a reminder step speaks: a first contact must be friendly or firm, never final.

    A step without an explicit `tone` is `final` when it escalates or its template is the final notice,
    `friendly` on or before the due date, `firm` after it (see `tone_of`).
    """

    FRIENDLY = "friendly"
    FIRM = "firm"
    FINAL = "final"


FINAL_TEMPLATES = frozenset({"final_notice"})


class WriteBack(StrEnum):
    """How a late fee reaches the ledger: a separate fee invoice (default) or a line on the invoice."""

    FEE_INVOICE = "fee_invoice"
    FEE_LINE = "fee_line"


STATEMENT_TEMPLATE = "statement"  # the built-in email of a statement step (connector/mail/templates/statement)


@dataclass(frozen=True, slots=True)
class Step:
    """One cadence step: at `offset` days (calendar or business) from the due date, do its parts."""

    id: str
    offset: int
    days: DayKind = DayKind.CALENDAR
    remind: str | None = None  # template name
    note: str | None = None  # text of a note written on the invoice
    late_fee: str | None = None  # late-fee policy name
    discount: str | None = None  # discount policy name
    call_task: str | None = None  # text of a call task for the user
    escalate: bool = False
    tone: Tone | None = None  # None: derived (see `tone_of`)
    # A call task or escalation completed by a person: their note is also written on the invoice in the ledger.
    record_outcome_in_ledger: bool = False
    # The step's email is the customer's statement (every open invoice, aging, recent payments; PDF attached).
    statement: bool = False
    # `escalate: handoff`: the escalation also produces the hand-off pack (letter before action, evidence ZIP,
    # agency placement file) for the invoices concerned, exactly once (connector.handoff).
    handoff: bool = False

    @property
    def nominal_offset(self) -> Fraction:
        """Offset in approximate calendar days (business days x 7/5), used only for ordering checks."""
        return Fraction(self.offset) if self.days is DayKind.CALENDAR else Fraction(self.offset * 7, 5)


def tone_of(step: Step) -> Tone:
    """The step's tone: its explicit `tone`, else final (escalation, final-notice template), else
    friendly on or before the due date and firm after it."""
    if step.tone is not None:
        return step.tone
    if step.escalate or (step.remind is not None and step.remind in FINAL_TEMPLATES):
        return Tone.FINAL
    return Tone.FRIENDLY if step.offset <= 0 else Tone.FIRM


@dataclass(frozen=True, slots=True)
class HolidaySpec:
    """A holiday calendar by country (ISO 3166-1 alpha-2) and optional subdivision."""

    country: str
    subdiv: str | None = None


@dataclass(frozen=True, slots=True)
class Cadence:
    """An ordered list of steps plus when and how they may fire (times local to the customer)."""

    name: str
    steps: tuple[Step, ...]
    send_time: time = time(9, 0)
    window: SendWindow = field(default_factory=SendWindow)
    time_zone: str | None = None  # overrides the connection's zone; a customer's own zone wins
    holidays: HolidaySpec | None = None
    business_weekdays: frozenset[int] = frozenset(range(5))
    minimum_amount: Decimal = Decimal(0)  # below this balance nothing fires (a hold explains why)
    minimum_by_currency: Mapping[str, Decimal] = field(default_factory=dict)
    catch_up: CatchUp = CatchUp.LATEST
    approval: Approval = Approval.NONE

    def minimum_for(self, currency: str) -> Decimal:
        """The minimum balance that is chased, for invoices in `currency`."""
        return self.minimum_by_currency.get(currency, self.minimum_amount)

    def step(self, step_id: str) -> Step:
        """The step with id `step_id` (KeyError if none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A fee repeated every `every_days` days, or every calendar month when `monthly`."""

    every_days: int = 0
    monthly: bool = False


@dataclass(frozen=True, slots=True)
class LateFeePolicy:
    """A named late fee. Amounts are in the invoice's currency; rates are percentages (8 = 8 %).

    `annual_rate` applies to `interest` (simple, actual/365); statutory kinds take their reference
    rate from `ReferenceRates` and add `margin` points (8 by statute). Caps: `min_fee`/`max_fee` per
    assessment, `total_cap` / `total_cap_percent` (of the invoice total) over all fees of one invoice.
    """

    name: str
    kind: FeeKind
    amount: Decimal | None = None
    percent: Decimal | None = None
    annual_rate: Decimal | None = None
    margin: Decimal = Decimal(8)
    grace_days: int = 0
    recurrence: Recurrence | None = None
    max_count: int = 1
    min_fee: Decimal | None = None
    max_fee: Decimal | None = None
    total_cap: Decimal | None = None
    total_cap_percent: Decimal | None = None
    minimum_invoice_amount: Decimal | None = None
    compound: bool = False
    compensation: bool = True  # UK statutory only: the fixed £40/£70/£100 once per invoice
    description: str = "Late fee"
    write_back: WriteBack = WriteBack.FEE_INVOICE
    # A fee whose ledger record was found deleted or voided when Nudge retried writing it (RS-03):
    # False (default) leaves it waived, the user's decision; True charges it once more under a new key.
    recreate_deleted: bool = False
    # No fee without warning: charged only when a sent reminder stated this policy (amount or rate and the
    # date it applies from) at least `warning_days` days before the assessment date.
    warning_days: int = 7
    # False: the fee is already agreed in the customer's contract or printed terms, so no reminder needs to
    # announce it first (reminders still mention it); accrual then counts from the day Nudge started chasing.
    warning_required: bool = True
    # Interest and percentages count from the day Nudge started chasing the ledger (the onboarding review's
    # approval), never from earlier, unless this says so (and the review, which lists the fee, approved it).
    accrue_before_connected: bool = False


@dataclass(frozen=True, slots=True)
class DiscountPolicy:
    """'`percent` % off if paid by `days` days after issue (basis issue) / before due (basis due)'."""

    name: str
    percent: Decimal
    days: int
    basis: DiscountBasis = DiscountBasis.ISSUE
    offer_required: bool = True  # False: terms printed on the invoice are honoured without an offer


@dataclass(frozen=True, slots=True)
class PaymentPlanPolicy:
    """How installments are chased: reminders at `remind_offsets` days from each installment date,
    and a missed installment breaks the plan `grace_days` after its date."""

    name: str
    grace_days: int = 3
    remind_offsets: tuple[int, ...] = (-3, 0)
    template: str = "installment"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every named cadence and policy of a connection, plus the known template names (None: unchecked)."""

    cadences: Mapping[str, Cadence] = field(default_factory=dict)
    late_fees: Mapping[str, LateFeePolicy] = field(default_factory=dict)
    discounts: Mapping[str, DiscountPolicy] = field(default_factory=dict)
    payment_plans: Mapping[str, PaymentPlanPolicy] = field(default_factory=dict)
    templates: frozenset[str] | None = None
