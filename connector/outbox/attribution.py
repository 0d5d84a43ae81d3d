"""Recovery attribution: each payment goes to the last customer-facing step that preceded it (or none).

A reminder counts for every invoice it listed, on the local date it was sent; a payment (the ledger's
`payment`, `overpayment` or `prepayment` money applied to an invoice, never a credit and never Nudge's
own documents) is attributed to the last reminder of its invoice sent on or before the payment's date.
Per cadence step: reminders sent, invoices paid within `PAID_WITHIN` after one, amount recovered.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from connector.domain.actions import ActionKind
from connector.domain.model import ActionState, PaymentKind
from connector.outbox.codec import action_from_json
from connector.storage import UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Payment as PaymentRow

PAID_WITHIN = timedelta(days=7)
LOOKBACK = timedelta(days=365)  # a reminder sent this long before the window may still have earned a payment in it
NO_STEP = "(none)"  # payments no reminder preceded
CUSTOMER_MONEY = (PaymentKind.PAYMENT.value, PaymentKind.OVERPAYMENT.value, PaymentKind.PREPAYMENT.value)


@dataclass
class StepRecovery:
    """One cadence step's results: reminders sent, invoices paid within 7 days after one, amount recovered."""

    step_id: str
    reminders_sent: int = 0
    paid_within_7_days: int = 0
    payments: int = 0
    recovered: dict[str, Decimal] = field(default_factory=dict)  # by currency

    def recovered_text(self) -> str:
        """The amount recovered per currency, e.g. "1,200.00 GBP; 30.00 USD" ("" for none)."""
        return "; ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(self.recovered.items()))


@dataclass(frozen=True, slots=True)
class Attribution:
    """One payment row attributed to a step (NO_STEP when no reminder preceded it)."""

    connection_id: int
    invoice_external_id: str
    payment_external_id: str
    paid_on: date
    step_id: str
    reminded_on: date | None


def step_name(step_id: str) -> str:
    """The cadence step a reminder counts for: payment-plan steps ("plan:<plan>:installment-<n>:<offset>")
    are one step per offset, whatever the plan and installment."""
    parts = step_id.split(":")
    if parts[0] == "plan" and len(parts) >= 4:
        return f"plan installment {parts[-1]}"
    return step_id


Sent = dict[tuple[int, str], list[tuple[date, str]]]
Amounts = dict[tuple[int, str, str], tuple[Decimal, str]]


def _reminders(uow: UnitOfWork, connection_ids: list[int], since: date) -> Sent:
    """(connection, invoice) -> [(local date sent, step id)] of every reminder done, oldest first."""
    found: Sent = defaultdict(list)
    rows = uow.session.execute(
        select(ActionRow.connection_id, ActionRow.payload).where(
            ActionRow.connection_id.in_(connection_ids),
            ActionRow.kind == ActionKind.REMIND.value,
            ActionRow.state == ActionState.DONE.value,
        )
    )
    for connection_id, payload in rows:
        if not payload:
            continue
        action = action_from_json(payload)
        if action.local_date < since - LOOKBACK:
            continue
        items = [(i.invoice_external_id, i.step_id) for i in action.items] or [
            (invoice, action.step_id) for invoice in action.invoice_external_ids
        ]
        for invoice, step in items:
            found[(connection_id, invoice)].append((action.local_date, step_name(step)))
    for sent in found.values():
        sent.sort()
    return found


def attribute(uow: UnitOfWork, connection_ids: list[int], since: date) -> list[Attribution]:
    """Every customer payment dated on or after `since`, attributed to the last reminder before it."""
    reminders = _reminders(uow, connection_ids, since)
    result: list[Attribution] = []
    rows = uow.session.execute(
        select(PaymentRow.connection_id, PaymentRow.invoice_external_id, PaymentRow.external_id, PaymentRow.paid_on)
        .where(
            PaymentRow.connection_id.in_(connection_ids),
            PaymentRow.kind.in_(CUSTOMER_MONEY),
            PaymentRow.voided.is_(False),
            PaymentRow.invoice_external_id != "",
            PaymentRow.paid_on >= since,
        )
        .order_by(PaymentRow.paid_on, PaymentRow.id)
    )
    for connection_id, invoice, external_id, paid_on in rows:
        sent = reminders.get((connection_id, invoice), [])
        index = bisect.bisect_right(sent, (paid_on, "\uffff"))
        reminded_on, step = sent[index - 1] if index else (None, NO_STEP)
        result.append(Attribution(connection_id, invoice, external_id, paid_on, step, reminded_on))
    return result


def recovery_by_step(uow: UnitOfWork, connection_ids: list[int], since: date) -> list[StepRecovery]:
    """Per cadence step (and NO_STEP): reminders sent since `since`, invoices paid within 7 days, amount recovered."""
    steps: dict[str, StepRecovery] = {}

    def step_of(step_id: str) -> StepRecovery:
        return steps.setdefault(step_id, StepRecovery(step_id))

    for sent in _reminders(uow, connection_ids, since).values():
        for on, step_id in sent:
            if on >= since:
                step_of(step_id).reminders_sent += 1
    amounts = _amounts(uow, connection_ids, since)
    paid_invoices: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for item in attribute(uow, connection_ids, since):
        row = step_of(item.step_id)
        row.payments += 1
        amount, currency = amounts[(item.connection_id, item.payment_external_id, item.invoice_external_id)]
        row.recovered[currency] = row.recovered.get(currency, Decimal(0)) + amount
        if item.reminded_on is not None and item.paid_on - item.reminded_on <= PAID_WITHIN:
            paid_invoices[item.step_id].add((item.connection_id, item.invoice_external_id))
    for step_id, invoices in paid_invoices.items():
        step_of(step_id).paid_within_7_days = len(invoices)
    return sorted(steps.values(), key=lambda s: (s.step_id == NO_STEP, s.step_id))


def _amounts(uow: UnitOfWork, connection_ids: list[int], since: date) -> Amounts:
    totals: Amounts = {}
    rows = uow.session.execute(
        select(
            PaymentRow.connection_id,
            PaymentRow.external_id,
            PaymentRow.invoice_external_id,
            PaymentRow.amount,
            PaymentRow.currency,
        ).where(PaymentRow.connection_id.in_(connection_ids), PaymentRow.paid_on >= since)
    )
    for connection_id, external_id, invoice, amount, currency in rows:
        known = totals.get((connection_id, external_id, invoice), (Decimal(0), currency))
        totals[(connection_id, external_id, invoice)] = (known[0] + amount, currency)
    return totals
