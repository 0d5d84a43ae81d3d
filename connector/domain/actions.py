"""Actions the planner decides on, their deterministic keys, and the history fed back into planning.

`scheduled_at` is an aware UTC instant; `local_date` is its calendar date in the customer's zone (the
day "one reminder per customer per day" counts). Ledger dates (due, assessment) are local dates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from connector.domain.fees import FeeRecord
from connector.domain.model import Payment
from connector.domain.money import Money

KEY_LENGTH = 40  # hex characters: fits QuickBooks' 50-character requestid
_sha256 = hashlib.sha256


class ActionKind(StrEnum):
    """What an action does."""

    REMIND = "remind"  # one email to a customer listing one or more invoices
    NOTE = "note"  # a note written on the invoice in the ledger
    LATE_FEE = "late_fee"  # a fee invoice (or fee line) in the ledger
    FEE_REVERSAL = "fee_reversal"  # void or credit an earlier fee
    DISCOUNT_OFFER = "discount_offer"  # an early-payment offer was made (also listed in the reminder)
    DISCOUNT_CREDIT = "discount_credit"  # a credit for the remainder after an earned discount
    CALL_TASK = "call_task"  # a task for a user to phone the customer
    ESCALATE = "escalate"  # hand over (collections); stops further reminders
    HOLD = "hold"  # something would have gone out but is held; tells the user why
    PLAN_BROKEN = "plan_broken"  # a payment plan missed an installment past its grace


LEDGER_KINDS = frozenset({ActionKind.NOTE, ActionKind.LATE_FEE, ActionKind.FEE_REVERSAL, ActionKind.DISCOUNT_CREDIT})
CUSTOMER_FACING_KINDS = frozenset({ActionKind.REMIND})


class HoldReason(StrEnum):
    """Why nothing goes out for an invoice that would otherwise be chased."""

    DISPUTE = "dispute"
    PAUSED = "paused"
    EXCLUDED = "excluded"
    PROMISE_TO_PAY = "promise_to_pay"
    BELOW_MINIMUM = "below_minimum"
    UNAPPLIED_CREDIT = "unapplied_credit"
    UNKNOWN_CADENCE = "unknown_cadence"
    CONFIGURATION = "configuration"


def action_key(
    connection_id: str,
    subject_id: str,
    step_id: str,
    due_date: date | None,
    kind: str,
    occurrence: int | str,
    *,
    generation: int = 0,
) -> str:
    """Hex sha256 (first 40 characters) of (connection, invoice or customer, step, due date, kind, occurrence).

    `generation` > 0 (a fee re-created after its earlier keys' ledger records were deleted) is hashed
    too; generation 0 leaves the key exactly as it always was, so existing outboxes keep their keys.
    """
    raw = key_prefix(connection_id, subject_id) + key_tail(step_id, due_date, kind, occurrence)
    if generation:
        raw += f"\x1fgeneration {generation}"
    return _sha256(raw.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def key_prefix(connection_id: str, subject_id: str) -> str:
    """The first half of an action key's hashed text (connection, invoice or customer): see `action_key`."""
    return f"{connection_id}\x1f{subject_id}"


def key_tail(step_id: str, due_date: date | None, kind: str, occurrence: int | str) -> str:
    """The second half of an action key's hashed text (step, due date, kind, occurrence), the same for every
    invoice: the planner builds it once per step and due date (see `action_key`)."""
    return f"\x1f{step_id}\x1f{due_date or '-'}\x1f{kind}\x1f{occurrence}"


def key_from(prefix: str, tail: str) -> str:
    """`action_key` (generation 0) from its halves: `key_prefix(...)` and `key_tail(...)`."""
    return _sha256((prefix + tail).encode("utf-8")).hexdigest()[:KEY_LENGTH]


def group_key(member_keys: Iterable[str]) -> str:
    """Key of a grouped reminder: the member key itself for one member, else a hash of the sorted keys."""
    members = sorted(set(member_keys))
    if len(members) == 1:
        return members[0]
    return hashlib.sha256("+".join(members).encode("ascii")).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class DiscountOffer:
    """An early-payment offer: pay `pay_amount` by local date `deadline` instead of the total."""

    policy: str
    percent: Decimal
    discount: Money
    pay_amount: Money
    deadline: date


@dataclass(frozen=True, slots=True)
class FeeWarning:
    """What a reminder states about a late fee that is not charged yet (no fee without warning).

    `amount` for a flat fee, `percent` for a percentage of the balance, `annual_rate` for interest
    (statutory kinds: reference rate plus margin); `applies_from` is the local date from which the fee
    may be charged.
    """

    policy: str
    description: str
    kind: str
    applies_from: date
    amount: Money | None = None
    percent: Decimal | None = None
    annual_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReminderItem:
    """One invoice listed in a reminder, with what the email renderer needs about it."""

    invoice_external_id: str
    number: str
    due_date: date
    balance: Money  # what is asked for: the invoice balance, or the installment still due
    total: Money
    days_overdue: int  # negative before the due date
    step_id: str
    template: str
    member_key: str
    offer: DiscountOffer | None = None
    installment: int | None = None  # 1-based installment number for payment-plan reminders
    fee_warning: FeeWarning | None = None  # the late fee this reminder announces (not charged yet)
    # A statement step's item: the customer's email of the day (grouped or not) is their statement. Left out of
    # repr so the pinned plan digests (tests/unit/domain/test_plan_equivalence.py) of plans without one stay.
    statement: bool = field(default=False, repr=False)


@dataclass(frozen=True, slots=True)
class FeeDetail:
    """How a late fee was computed, for the executor (lines of the fee invoice) and later reversals."""

    policy: str
    assessed_on: date
    balance: Money
    lines: tuple[tuple[str, Money], ...]
    period_start: date | None = None
    period_end: date | None = None
    annual_rate: Decimal | None = None
    compensation: Money | None = None
    on_invoice: bool = False
    capped: bool = False


@dataclass(frozen=True, slots=True)
class BrokenPromise:
    """A promise to pay the customer did not keep: the reminder says so ("you told us you would pay by ...")."""

    promised_by: date
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """One planned effect with everything the executor and the email renderer need.

    `scheduled_at` is aware UTC, `local_date` its date in the customer's zone. `rule` says in words
    which rule produced it. Grouped reminders list their invoices in `items` and the per-invoice keys
    in `member_keys` (record those as done too: `History.record` does).
    """

    key: str
    kind: ActionKind
    connection_id: str
    customer_external_id: str
    invoice_external_ids: tuple[str, ...]
    scheduled_at: datetime
    local_date: date
    step_id: str
    rule: str
    amount: Money | None = None
    template: str | None = None
    requires_approval: bool = False
    due_date: date | None = None
    occurrence: int = 0
    customer_name: str = ""
    recipients: tuple[str, ...] = ()
    text: str | None = None
    hold_reason: HoldReason | None = None
    items: tuple[ReminderItem, ...] = ()
    member_keys: tuple[str, ...] = ()
    fee: FeeDetail | None = None
    offer: DiscountOffer | None = None
    reverses: str | None = None  # key of the late fee a reversal undoes
    generation: int = 0  # late fees: earlier keys of this fee superseded because their ledger record was deleted
    # call tasks and escalations: the person's note on completing the task is also written in the ledger
    record_outcome_in_ledger: bool = False
    # escalations of an `escalate: handoff` step: the executor also produces the hand-off pack. Left out of repr
    # so the pinned plan digests (tests/unit/domain/test_plan_equivalence.py) of plans without one stay.
    handoff: bool = field(default=False, repr=False)
    # A reminder to a customer whose promise to pay was not kept (issue 17): it is written in a "you promised" tone.
    # Out of the repr so the pinned plan digests of plans without one stay.
    broken_promise: BrokenPromise | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """What is known about one invoice beyond its snapshot.

    `first_seen`: local date Nudge first synced it (catch-up); `payments`: dated payments and applied
    credits (fee reversals, discounts, plans, interest on partly paid invoices); `fees`: late fees
    applied; `escalated`: an escalation was carried out (no more reminders); `fee_warned_on` and
    `reminded_on`: what reminders actually sent (not merely planned) said and when.
    """

    first_seen: date | None = None
    payments: tuple[Payment, ...] = ()
    fees: tuple[FeeRecord, ...] = ()
    escalated: bool = False
    fee_warned_on: date | None = None  # earliest local date a SENT reminder announced a late fee for it
    reminded_on: tuple[date, ...] = ()  # local dates reminders listing it were sent, oldest first


NO_FACTS = InvoiceFacts()
_EMPTY: Mapping[str, InvoiceFacts] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class History:
    """What was already planned or done, as the executor feeds it back into `plan`.

    `keys`: keys of every action planned or done (any state but cancelled), including grouped
    reminders' `member_keys`; `reminder_days`: (customer external id, local date) of every reminder
    planned or sent; `invoices`: per-invoice facts by external id; `superseded`: keys of ledger writes
    superseded because a retry found their ledger record deleted (also in `keys`: never planned again as such).
    """

    keys: frozenset[str] = frozenset()
    reminder_days: frozenset[tuple[str, date]] = frozenset()
    invoices: Mapping[str, InvoiceFacts] = field(default_factory=lambda: _EMPTY)
    superseded: frozenset[str] = frozenset()

    def facts(self, invoice_external_id: str) -> InvoiceFacts:
        """The facts of one invoice (empty when none are known)."""
        return self.invoices.get(invoice_external_id, NO_FACTS)

    def record(self, actions: Iterable[Action], *, delivered: bool = True) -> History:
        """A new history with `actions` carried out: their keys, reminder days, fees, reversals, escalations.

        `delivered=False` records actions planned but not (yet) sent: their keys and reminder days count,
        but their fee warnings and reminder dates do not (a fee needs a warning the customer received).
        """
        keys = set(self.keys)
        days = set(self.reminder_days)
        facts = dict(self.invoices)
        for action in actions:
            keys.add(action.key)
            keys.update(action.member_keys)
            if action.kind is ActionKind.REMIND:
                days.add((action.customer_external_id, action.local_date))
                if delivered:
                    _record_delivery(facts, action)
            elif (record := _fee_record(action)) is not None:
                known = facts.get(record.invoice_id, NO_FACTS)
                facts[record.invoice_id] = replace(known, fees=(*known.fees, record.fee))
            elif action.kind is ActionKind.FEE_REVERSAL and action.reverses is not None:
                invoice_id = action.invoice_external_ids[0]
                known = facts.get(invoice_id, NO_FACTS)
                fees = tuple(replace(f, reversed=True) if f.key == action.reverses else f for f in known.fees)
                facts[invoice_id] = replace(known, fees=fees)
            elif action.kind is ActionKind.ESCALATE:
                for invoice_id in action.invoice_external_ids:
                    facts[invoice_id] = replace(facts.get(invoice_id, NO_FACTS), escalated=True)
        return replace(self, keys=frozenset(keys), reminder_days=frozenset(days), invoices=MappingProxyType(facts))

    def supersede(self, actions: Iterable[Action]) -> History:
        """A new history with `actions` superseded: a retried ledger write found its record deleted (RS-03).

        Their keys are on record (never planned again under them) and in `superseded`; a late fee among
        them is kept as a `superseded` fee record, which charges nothing (see `fees.assess_fee`).
        """
        keys = set(self.keys)
        gone = set(self.superseded)
        facts = dict(self.invoices)
        for action in actions:
            keys.add(action.key)
            gone.add(action.key)
            if (record := _fee_record(action, superseded=True)) is not None:
                known = facts.get(record.invoice_id, NO_FACTS)
                facts[record.invoice_id] = replace(known, fees=(*known.fees, record.fee))
        return replace(self, keys=frozenset(keys), superseded=frozenset(gone), invoices=MappingProxyType(facts))

    def with_facts(self, invoice_external_id: str, facts: InvoiceFacts) -> History:
        """A new history with the facts of one invoice replaced."""
        merged = dict(self.invoices)
        merged[invoice_external_id] = facts
        return replace(self, invoices=MappingProxyType(merged))


def _record_delivery(facts: dict[str, InvoiceFacts], action: Action) -> None:
    """A sent reminder: the day it reached each listed invoice, and the fee warnings it carried."""
    for item in action.items or ():
        known = facts.get(item.invoice_external_id, NO_FACTS)
        warned = known.fee_warned_on
        if item.fee_warning is not None and (warned is None or action.local_date < warned):
            warned = action.local_date
        days = tuple(sorted({*known.reminded_on, action.local_date}))
        facts[item.invoice_external_id] = replace(known, fee_warned_on=warned, reminded_on=days)


@dataclass(frozen=True, slots=True)
class _InvoiceFee:
    invoice_id: str
    fee: FeeRecord


def _fee_record(action: Action, *, superseded: bool = False) -> _InvoiceFee | None:
    """The fee record a late-fee action leaves on its invoice (None for any other action)."""
    if action.kind is not ActionKind.LATE_FEE or action.fee is None or action.amount is None:
        return None
    assert action.due_date is not None
    record = FeeRecord(
        key=action.key,
        policy=action.fee.policy,
        step_id=action.step_id,
        due_date=action.due_date,
        occurrence=action.occurrence,
        assessed_on=action.fee.assessed_on,
        amount=action.amount,
        balance=action.fee.balance,
        period_start=action.fee.period_start,
        compensation=action.fee.compensation,
        on_invoice=action.fee.on_invoice,
        generation=action.generation,
        superseded=superseded,
    )
    return _InvoiceFee(action.invoice_external_ids[0], record)
