"""What a hand-off pack is made of, read from the store: the debts, and every interaction with the customer.

`read_evidence` reads, for one customer of a client and the invoices handed over: the invoices as last synced,
their payments, the late fees and reversals Nudge carried out (with their calculation), the notes written to the
ledger, completed call and hand-over tasks, every email sent to the customer (with its exact bytes), the
customer's replies, the promise to pay on record and the payment plans (kept, active or broken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from connector.domain.actions import Action, ActionKind, History
from connector.domain.handoff import DebtFacts
from connector.domain.model import ActionState
from connector.domain.model import Payment as PaymentFact
from connector.domain.money import Money
from connector.outbox.codec import action_from_json
from connector.storage import UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import (
    ClientSettings,
    Connection,
    Customer,
    InboundMessage,
    Invoice,
    InvoiceOverride,
    Payment,
    PaymentPlan,
    SentMessage,
    Task,
)

_DONE = (ActionState.DONE.value,)
_EVIDENCE_KINDS = (
    ActionKind.NOTE.value,
    ActionKind.LATE_FEE.value,
    ActionKind.FEE_REVERSAL.value,
    ActionKind.PLAN_BROKEN.value,
)


@dataclass(frozen=True)
class SentRecord:
    """An email sent to the customer: when, to whom, what, and how its hand-over ended (sent | uncertain)."""

    sent_at: datetime
    subject: str
    to: tuple[str, ...]
    state: str
    message_id: str
    invoices: tuple[str, ...]  # the numbers of the invoices it listed
    raw: bytes


@dataclass(frozen=True)
class ReplyRecord:
    """A reply received from the customer (human or automatic)."""

    received_at: datetime
    from_address: str
    subject: str
    kind: str
    text: str


@dataclass(frozen=True)
class NoteRecord:
    """A note: written on an invoice in the ledger, or a person's outcome of a call or hand-over task."""

    at: datetime
    source: str  # ledger note | call task | hand-over task
    invoice: str
    text: str


@dataclass(frozen=True)
class FeeLine:
    """A late fee (or its reversal) Nudge carried out, with how it was computed."""

    assessed_on: date | None
    invoice: str
    kind: str  # late fee | reversal
    policy: str
    amount: Money | None
    calculation: str
    ledger_ref: str


@dataclass(frozen=True)
class PaymentLine:
    """Money the ledger applied to a handed-over invoice."""

    paid_on: date
    invoice: str
    kind: str
    amount: Money
    voided: bool


@dataclass(frozen=True)
class PromiseLine:
    """A promise to pay or a payment plan, and what became of it."""

    what: str  # promise | payment plan | plan broken
    invoice: str
    state: str
    detail: str


@dataclass(frozen=True)
class Evidence:
    """Everything a pack shows about one customer's handed-over invoices."""

    organization_id: int
    connection_id: int
    business_name: str
    reply_to: str
    country: str
    home_currency: str
    locale: str
    customer_external_id: str
    customer_name: str
    customer_emails: tuple[str, ...]
    debts: tuple[DebtFacts, ...]
    messages: tuple[SentRecord, ...]
    replies: tuple[ReplyRecord, ...]
    notes: tuple[NoteRecord, ...]
    fees: tuple[FeeLine, ...]
    payments: tuple[PaymentLine, ...]
    promises: tuple[PromiseLine, ...]


def read_evidence(
    uow: UnitOfWork, connection: Connection, customer_external_id: str, invoice_ids: Sequence[str], default_locale: str
) -> Evidence:
    """The evidence of `invoice_ids` (ledger ids) of the client's customer `customer_external_id`."""
    conn_id = connection.id
    wanted = sorted(set(invoice_ids))
    client = uow.session.get(ClientSettings, conn_id)
    customer = uow.session.scalar(
        select(Customer).where(Customer.connection_id == conn_id, Customer.external_id == customer_external_id)
    )
    invoices = list(
        uow.session.scalars(
            select(Invoice)
            .where(Invoice.connection_id == conn_id, Invoice.external_id.in_(wanted))
            .order_by(Invoice.due_date, Invoice.number)
        )
    )
    numbers = {row.external_id: row.number or row.external_id for row in invoices}
    payments = list(
        uow.session.scalars(
            select(Payment)
            .where(Payment.connection_id == conn_id, Payment.invoice_external_id.in_(wanted))
            .order_by(Payment.paid_on, Payment.id)
        )
    )
    actions = [
        (row, action_from_json(row.payload))
        for row in uow.session.scalars(
            select(ActionRow)
            .where(
                ActionRow.connection_id == conn_id,
                ActionRow.customer_external_id == customer_external_id,
                ActionRow.kind.in_(_EVIDENCE_KINDS),
                ActionRow.state.in_(_DONE),
            )
            .order_by(ActionRow.updated_at, ActionRow.id)
        )
    ]
    actions = [(row, action) for row, action in actions if set(action.invoice_external_ids) & set(wanted)]
    # The fee records the planner itself would see (reversals applied): what the claim deducts.
    history = History().record(action for _, action in actions)
    disputed = _disputed(uow, conn_id, wanted, customer)
    debts = tuple(
        DebtFacts(
            external_id=row.external_id,
            number=row.number or row.external_id,
            issue_date=row.issue_date,
            due_date=row.due_date,
            total=Money.of(row.total, row.currency),
            outstanding=Money.of(row.balance, row.currency),
            payments=tuple(
                PaymentFact(Money.of(p.amount, p.currency), p.paid_on)
                for p in payments
                if p.invoice_external_id == row.external_id and not p.voided and p.currency == row.currency
            ),
            fees=history.facts(row.external_id).fees,
            disputed=row.external_id in disputed,
        )
        for row in invoices
    )
    locale = (customer.locale if customer else "") or (client.locale if client else "") or default_locale
    return Evidence(
        organization_id=connection.organization_id,
        connection_id=conn_id,
        business_name=((client.business_name if client else "") or connection.name)[:200],
        reply_to=(client.reply_to if client else "") or "",
        country=connection.holiday_country or "",
        home_currency=connection.home_currency or "",
        locale=locale,
        customer_external_id=customer_external_id,
        customer_name=(customer.name if customer else "")
        or (invoices[0].customer_name if invoices else "")
        or customer_external_id,
        customer_emails=tuple(str(e) for e in (customer.emails if customer else []) or []),
        debts=debts,
        messages=_messages(uow, conn_id, customer_external_id, _customer_numbers(uow, conn_id, customer_external_id)),
        replies=_replies(uow, conn_id, customer_external_id),
        notes=_notes(uow, conn_id, customer_external_id, actions, numbers),
        fees=tuple(_fee_line(row, action, numbers) for row, action in actions if action.kind in _FEE_KINDS),
        payments=tuple(
            PaymentLine(
                p.paid_on,
                numbers.get(p.invoice_external_id, p.invoice_external_id),
                p.kind,
                Money.of(p.amount, p.currency),
                p.voided,
            )
            for p in payments
        ),
        promises=_promises(uow, conn_id, wanted, customer, actions, numbers),
    )


_FEE_KINDS = frozenset({ActionKind.LATE_FEE, ActionKind.FEE_REVERSAL})


def _disputed(uow: UnitOfWork, conn_id: int, wanted: list[str], customer: Customer | None) -> set[str]:
    if customer is not None and customer.dispute:
        return set(wanted)
    return set(
        uow.session.scalars(
            select(InvoiceOverride.invoice_external_id).where(
                InvoiceOverride.connection_id == conn_id,
                InvoiceOverride.invoice_external_id.in_(wanted),
                InvoiceOverride.dispute.is_(True),
            )
        )
    )


def _customer_numbers(uow: UnitOfWork, conn_id: int, customer_external_id: str) -> dict[str, str]:
    """Every invoice number of the customer by ledger id (what the emails listed, handed over or not)."""
    rows = uow.session.execute(
        select(Invoice.external_id, Invoice.number).where(
            Invoice.connection_id == conn_id, Invoice.customer_external_id == customer_external_id
        )
    )
    return {external_id: number or external_id for external_id, number in rows}


def _messages(
    uow: UnitOfWork, conn_id: int, customer_external_id: str, numbers: dict[str, str]
) -> tuple[SentRecord, ...]:
    rows = uow.session.scalars(
        select(SentMessage)
        .where(SentMessage.connection_id == conn_id, SentMessage.customer_external_id == customer_external_id)
        .order_by(SentMessage.sent_at, SentMessage.id)
    )
    return tuple(
        SentRecord(
            row.sent_at,
            row.subject,
            tuple(str(a) for a in row.to_addresses or []),
            row.state,
            row.message_id,
            tuple(numbers.get(str(i), str(i)) for i in row.invoice_external_ids or []),
            row.raw,
        )
        for row in rows
    )


def _replies(uow: UnitOfWork, conn_id: int, customer_external_id: str) -> tuple[ReplyRecord, ...]:
    rows = uow.session.scalars(
        select(InboundMessage)
        .where(InboundMessage.connection_id == conn_id, InboundMessage.customer_external_id == customer_external_id)
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    return tuple(ReplyRecord(row.received_at, row.from_address, row.subject, row.kind, row.text) for row in rows)


def _notes(
    uow: UnitOfWork,
    conn_id: int,
    customer_external_id: str,
    actions: list[tuple[ActionRow, Action]],
    numbers: dict[str, str],
) -> tuple[NoteRecord, ...]:
    notes = [
        NoteRecord(row.updated_at, "ledger note", _numbers(action, numbers), action.text or "")
        for row, action in actions
        if action.kind is ActionKind.NOTE
    ]
    tasks = uow.session.scalars(
        select(Task)
        .where(
            Task.connection_id == conn_id,
            Task.customer_external_id == customer_external_id,
            Task.completed_at.is_not(None),
        )
        .order_by(Task.completed_at, Task.id)
    )
    for task in tasks:
        assert task.completed_at is not None
        ids = [str(i) for i in task.invoice_external_ids or []]
        source = "call task" if task.kind == "call" else "hand-over task"
        said = f"{task.outcome} ({task.completed_by})" if task.completed_by else task.outcome
        notes.append(NoteRecord(task.completed_at, source, ", ".join(numbers.get(i, i) for i in ids), said))
    return tuple(sorted(notes, key=lambda note: note.at))


def _numbers(action: Action, numbers: dict[str, str]) -> str:
    return ", ".join(numbers.get(i, i) for i in action.invoice_external_ids)


def _fee_line(row: ActionRow, action: Action, numbers: dict[str, str]) -> FeeLine:
    if action.kind is ActionKind.FEE_REVERSAL:
        return FeeLine(
            action.local_date, _numbers(action, numbers), "reversal", "", action.amount, action.rule, row.external_ref
        )
    fee = action.fee
    lines = "; ".join(f"{text}: {amount}" for text, amount in fee.lines) if fee is not None else action.rule
    return FeeLine(
        fee.assessed_on if fee is not None else action.local_date,
        _numbers(action, numbers),
        "late fee",
        fee.policy if fee is not None else "",
        action.amount,
        lines,
        row.external_ref,
    )


def _promises(
    uow: UnitOfWork,
    conn_id: int,
    wanted: list[str],
    customer: Customer | None,
    actions: list[tuple[ActionRow, Action]],
    numbers: dict[str, str],
) -> tuple[PromiseLine, ...]:
    lines = []
    if customer is not None and customer.promise_to_pay_until is not None:
        amount = (
            f" {Money.of(customer.promise_amount, customer.promise_currency)}"
            if customer.promise_amount is not None and customer.promise_currency
            else ""
        )
        lines.append(
            PromiseLine("promise", "all", "on record", f"to pay{amount} by {customer.promise_to_pay_until.isoformat()}")
        )
    plans = uow.session.scalars(
        select(PaymentPlan)
        .where(PaymentPlan.connection_id == conn_id, PaymentPlan.invoice_external_id.in_(wanted))
        .order_by(PaymentPlan.created_at, PaymentPlan.id)
    )
    for plan in plans:
        parts = [
            f"{i.due_date.isoformat()} {Money.of(i.amount, i.currency)}" + (" paid" if i.paid_at else "")
            for i in sorted(plan.installments, key=lambda i: i.due_date)
        ]
        lines.append(
            PromiseLine(
                "payment plan",
                numbers.get(plan.invoice_external_id, plan.invoice_external_id),
                plan.state,
                "; ".join(parts),
            )
        )
    for _, action in actions:
        if action.kind is ActionKind.PLAN_BROKEN:
            lines.append(PromiseLine("plan broken", _numbers(action, numbers), "broken", action.rule))
    return tuple(lines)


def decimal_text(value: Decimal | None) -> str:
    """A rate or amount as plain text ('' for None)."""
    return "" if value is None else format(value.normalize(), "f")
