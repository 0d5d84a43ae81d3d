"""One customer of a client as the Customer screen reads it, and the client's customers listed with their balances.

The customer (row id) must belong to the client, which must be the organization's and visible to the member
(`connection_ids`; None for every client): anything else is UnknownRecord, as for an id that never existed.
Money is kept per currency and never added across currencies. "Overdue" counts open invoices with a balance
whose ledger due date is before the client's local today (client settings' zone, else the ledger's); an agreed
date (flexible terms) or a payment plan is shown beside the invoice, never folded into that count. History is
read from the rows as they are: payments the ledger applied, reminders sent (done `remind` actions), tasks,
paid invoices, and the changes people made (customer and invoice overrides, payment plans), newest first.
Every part is one query, whatever the number of invoices: the page never grows an N+1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from connector.domain.actions import ActionKind
from connector.domain.model import InvoiceStatus
from connector.domain.money import Money, minor_units
from connector.errors import UnknownRecord
from connector.library import overrides
from connector.library.settings import InstallDefaults, client_settings
from connector.receivables.common import (
    DEFAULT_LIMIT,
    client_zones,
    local_today,
    row_id,
    visible_connection,
)
from connector.receivables.views import action_view
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import (
    Activity,
    Customer,
    InboundMessage,
    Invoice,
    InvoiceOverride,
    Payment,
    PaymentPlan,
    Task,
)

HISTORY_LIMIT = 50  # entries of each history list (newest first)
PLAN_STATES_SHOWN = ("active", "broken")  # plans a person may still act on (cancel, replace)
# activities of people's decisions (a customer's own on their page included: issue 17)
CHANGE_KINDS = ("customer.", "invoice.override", "payment_plan.", "customer_page.")


@dataclass(frozen=True)
class Balance:
    """What a customer owes in one currency: open and overdue amounts and invoice counts."""

    currency: str
    open: Money
    open_count: int
    overdue: Money
    overdue_count: int


@dataclass(frozen=True)
class CustomerRow:
    """One customer of the list: who, every override, and what they owe per currency."""

    customer: overrides.CustomerView
    balances: tuple[Balance, ...]


@dataclass(frozen=True)
class CustomerList:
    """One page of the client's customers (by name) and the cursor of the next (None: the last page)."""

    connection_id: int
    client: str
    today: date
    items: tuple[CustomerRow, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class InstallmentLine:
    """One installment of a payment plan (a local date; `paid_at` once the ledger shows it paid)."""

    due_date: date
    amount: Money
    paid_at: datetime | None


@dataclass(frozen=True)
class PlanLine:
    """A payment plan of one of the customer's open invoices (active, or broken and not yet replaced)."""

    id: int
    invoice_id: int
    invoice_number: str
    state: str
    policy: str
    grace_days: int
    created_at: datetime
    total: Money
    installments: tuple[InstallmentLine, ...]

    @property
    def next_due(self) -> InstallmentLine | None:
        """The first installment not yet paid."""
        return next((item for item in self.installments if item.paid_at is None), None)


@dataclass(frozen=True)
class InvoiceLine:
    """One open invoice of the customer with what people decided about it."""

    id: int
    external_id: str
    number: str
    issue_date: date | None
    due_date: date | None
    total: Money
    balance: Money
    days_past_due: int | None
    paused_until: date | None
    excluded: bool
    dispute: bool
    dispute_reason: str
    agreed_due_date: date | None
    plan: PlanLine | None

    @property
    def overdue(self) -> bool:
        """Past its ledger due date with something left to pay."""
        return self.days_past_due is not None and self.days_past_due > 0 and self.balance.is_positive()


@dataclass(frozen=True)
class PaymentLine:
    """Money the ledger applied to one of the customer's invoices ("" number: an unapplied remainder)."""

    kind: str
    amount: Money
    paid_on: date
    invoice_id: int | None
    invoice_number: str
    voided: bool


@dataclass(frozen=True)
class ReminderLine:
    """A reminder that went out: when, which step and template, about which invoices, to whom."""

    sent_at: datetime
    step: str
    template: str
    invoice_numbers: tuple[str, ...]
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class TaskLine:
    """A call or hand-over about the customer."""

    id: int
    kind: str
    title: str
    due_on: date
    state: str
    outcome: str
    completed_by: str
    completed_at: datetime | None


@dataclass(frozen=True)
class PaidInvoiceLine:
    """An invoice the customer paid: its total and the date of the last money applied to it."""

    id: int
    number: str
    total: Money
    due_date: date | None
    paid_on: date | None


@dataclass(frozen=True)
class ReplyLine:
    """An email the customer sent back (issue 17): who, when, the trimmed text, and what Nudge made of it."""

    at: datetime
    sender: str
    subject: str
    text: str
    kind: str  # human | auto_reply
    reason: str  # why it counts as automatic
    paused_until: date | None
    handled: bool


@dataclass(frozen=True)
class ChangeLine:
    """A decision a person (or the API) made about the customer, one of its invoices or a payment plan."""

    at: datetime
    actor: str
    kind: str
    subject: str
    changed: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True)
class CustomerDetail:
    """Everything the Customer screen shows. `today` is the client's local date; `zone` its IANA zone."""

    connection_id: int
    client: str
    zone: str
    today: date
    customer: overrides.CustomerView
    cadence_name: str | None  # the cadence that applies (the customer's own, else the client's)
    cadence_own: bool  # True when the customer names its own cadence
    client_cadence_name: str | None
    recipients_to: tuple[str, ...]  # who reminders go to (the override, else the ledger's)
    recipients_cc: tuple[str, ...]
    recipients_from_ledger: bool
    balances: tuple[Balance, ...]
    invoices: tuple[InvoiceLine, ...]
    plans: tuple[PlanLine, ...]
    payments: tuple[PaymentLine, ...]
    reminders: tuple[ReminderLine, ...]
    tasks: tuple[TaskLine, ...]
    paid_invoices: tuple[PaidInvoiceLine, ...]
    changes: tuple[ChangeLine, ...]
    replies: tuple[ReplyLine, ...] = ()  # the customer's emails back (issue 17), newest first

    @property
    def currencies(self) -> tuple[str, ...]:
        """The currencies of the customer's open invoices (a promise to pay is in one of them)."""
        return tuple(balance.currency for balance in self.balances)

    def invoice(self, invoice_id: int) -> InvoiceLine | None:
        """The open invoice `invoice_id` of the customer, if it is one."""
        return next((line for line in self.invoices if line.id == invoice_id), None)


def balances_of(lines: Iterable[tuple[str, Decimal, date | None]], today: date) -> tuple[Balance, ...]:
    """Open and overdue totals per currency (sorted) of open invoices given as (currency, balance, due date)."""
    found: dict[str, list[Any]] = {}
    for currency, amount, due in lines:
        if amount is None or Decimal(amount) <= 0:
            continue
        entry = found.setdefault(currency, [Decimal(0), 0, Decimal(0), 0])
        entry[0] += Decimal(amount)
        entry[1] += 1
        if due is not None and due < today:
            entry[2] += Decimal(amount)
            entry[3] += 1
    return tuple(
        Balance(code, Money.of(o, code), oc, Money.of(d, code), dc) for code, (o, oc, d, dc) in sorted(found.items())
    )


def customer_list(
    store: Store,
    org_id: int,
    connection_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    search: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CustomerList:
    """One page of the client's customers by name (`search`: part of the name, any case; `cursor`: the previous
    page's), each with its open and overdue balance per currency. Three statements, whatever the page's size."""
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        today = local_today(now, client_zones(uow, [connection])[connection.id])
        page = overrides.list_customers(uow, org_id, connection_id, search=search, cursor=cursor, limit=limit)
        owed: dict[str, list[tuple[str, Decimal, date | None]]] = defaultdict(list)
        external_ids = [view.external_id for view in page.items]
        if external_ids:
            rows = uow.session.execute(
                select(Invoice.customer_external_id, Invoice.currency, Invoice.balance, Invoice.due_date).where(
                    Invoice.connection_id == connection_id,
                    Invoice.customer_external_id.in_(external_ids),
                    Invoice.status == InvoiceStatus.OPEN.value,
                    Invoice.balance > 0,
                )
            ).all()
            for customer_external_id, currency, balance, due in rows:
                owed[customer_external_id].append((currency, balance, due))
        items = tuple(CustomerRow(view, balances_of(owed.get(view.external_id, ()), today)) for view in page.items)
        return CustomerList(connection.id, connection.name, today, items, page.next_cursor)


def customer_detail(
    store: Store,
    org_id: int,
    connection_id: int,
    customer_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    defaults: InstallDefaults | None = None,
    history_limit: int = HISTORY_LIMIT,
) -> CustomerDetail:
    """Customer `customer_id` (row id) of the client: overrides, what applies, open invoices with their overrides
    and plans, balances per currency and the history (UnknownRecord outside what the member may see)."""
    row_id(customer_id, "customer_id", "customer")
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        zone = client_zones(uow, [connection])[connection.id]
        today = local_today(now, zone)
        customer = uow.session.scalar(
            select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id)
        )
        if customer is None:
            raise UnknownRecord(f"no customer with id {customer_id} for client {connection_id}", "customer_id")
        view = overrides.customer_overrides(uow, org_id, connection_id, customer_id)
        client = client_settings(uow, org_id, connection_id, defaults)
        client_cadence = client.effective["cadence_id"].value
        client_cadence_name = client_cadence["name"] if client_cadence else None
        own_cadence = view.overrides.get("cadence_name")
        invoices = list(
            uow.session.scalars(
                select(Invoice)
                .where(Invoice.connection_id == connection_id, Invoice.customer_external_id == customer.external_id)
                .order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
            )
        )
        by_external = {invoice.external_id: invoice for invoice in invoices}
        open_rows = [invoice for invoice in invoices if invoice.status == InvoiceStatus.OPEN.value]
        held = _invoice_overrides(uow, connection_id, [invoice.external_id for invoice in open_rows])
        plans = _plans(uow, connection_id, open_rows)
        lines = tuple(
            _invoice_line(invoice, held.get(invoice.external_id), plans.get(invoice.external_id), today)
            for invoice in open_rows
        )
        detail = CustomerDetail(
            connection_id=connection.id,
            client=connection.name,
            zone=zone.key,
            today=today,
            customer=view,
            cadence_name=own_cadence or client_cadence_name,
            cadence_own=bool(own_cadence),
            client_cadence_name=client_cadence_name,
            recipients_to=tuple(customer.recipients_to) if customer.recipients_to is not None else view.emails,
            recipients_cc=tuple(customer.recipients_cc) if customer.recipients_cc is not None else view.cc_emails,
            recipients_from_ledger=customer.recipients_to is None,
            balances=balances_of(
                ((line.balance.currency, line.balance.amount, line.due_date) for line in lines), today
            ),
            invoices=lines,
            plans=tuple(line.plan for line in lines if line.plan is not None),
            payments=_payments(uow, connection_id, customer, by_external, history_limit),
            reminders=_reminders(uow, connection, customer, by_external, history_limit),
            tasks=_tasks(uow, connection_id, customer, history_limit),
            paid_invoices=_paid(uow, connection_id, invoices, history_limit),
            changes=_changes(uow, connection_id, customer, history_limit),
            replies=_replies(uow, connection_id, customer, history_limit),
        )
    return detail


def _invoice_overrides(uow: UnitOfWork, connection_id: int, external_ids: Sequence[str]) -> dict[str, InvoiceOverride]:
    if not external_ids:
        return {}
    rows = uow.session.scalars(
        select(InvoiceOverride).where(
            InvoiceOverride.connection_id == connection_id, InvoiceOverride.invoice_external_id.in_(external_ids)
        )
    )
    return {row.invoice_external_id: row for row in rows}


def _plans(uow: UnitOfWork, connection_id: int, invoices: Sequence[Invoice]) -> dict[str, PlanLine]:
    """The newest active or broken plan of each invoice (the one a person acts on), installments loaded at once."""
    if not invoices:
        return {}
    by_external = {invoice.external_id: invoice for invoice in invoices}
    rows = uow.session.scalars(
        select(PaymentPlan)
        .options(selectinload(PaymentPlan.installments))
        .where(
            PaymentPlan.connection_id == connection_id,
            PaymentPlan.invoice_external_id.in_(list(by_external)),
            PaymentPlan.state.in_(PLAN_STATES_SHOWN),
        )
        .order_by(PaymentPlan.id.desc())
    )
    found: dict[str, PlanLine] = {}
    for plan in rows:
        if plan.invoice_external_id in found:
            continue
        invoice = by_external[plan.invoice_external_id]
        items = tuple(
            InstallmentLine(item.due_date, Money.of(item.amount, item.currency), item.paid_at)
            for item in sorted(plan.installments, key=lambda item: item.due_date)
        )
        currency = items[0].amount.currency if items else invoice.currency
        total = sum((item.amount.amount for item in items), Decimal(0))
        found[plan.invoice_external_id] = PlanLine(
            plan.id,
            invoice.id,
            invoice.number or invoice.external_id,
            plan.state,
            plan.policy,
            plan.grace_days,
            plan.created_at,
            Money.of(total, currency),
            items,
        )
    return found


def _invoice_line(invoice: Invoice, held: InvoiceOverride | None, plan: PlanLine | None, today: date) -> InvoiceLine:
    return InvoiceLine(
        id=invoice.id,
        external_id=invoice.external_id,
        number=invoice.number or invoice.external_id,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        total=Money.of(invoice.total, invoice.currency),
        balance=Money.of(invoice.balance, invoice.currency),
        days_past_due=None if invoice.due_date is None else (today - invoice.due_date).days,
        paused_until=held.paused_until if held else None,
        excluded=held.excluded if held else False,
        dispute=held.dispute if held else False,
        dispute_reason=held.dispute_reason if held else "",
        agreed_due_date=held.agreed_due_date if held else None,
        plan=plan,
    )


def _payments(
    uow: UnitOfWork, connection_id: int, customer: Customer, invoices: dict[str, Invoice], limit: int
) -> tuple[PaymentLine, ...]:
    rows = uow.session.scalars(
        select(Payment)
        .where(Payment.connection_id == connection_id, Payment.customer_external_id == customer.external_id)
        .order_by(Payment.paid_on.desc(), Payment.id.desc())
        .limit(limit)
    )
    lines = []
    for row in rows:
        invoice = invoices.get(row.invoice_external_id) if row.invoice_external_id else None
        lines.append(
            PaymentLine(
                row.kind,
                Money.of(row.amount, row.currency),
                row.paid_on,
                invoice.id if invoice else None,
                (invoice.number or invoice.external_id) if invoice else row.invoice_external_id,
                row.voided,
            )
        )
    return tuple(lines)


def _reminders(
    uow: UnitOfWork, connection: Any, customer: Customer, invoices: dict[str, Invoice], limit: int
) -> tuple[ReminderLine, ...]:
    rows = uow.session.scalars(
        select(ActionRow)
        .where(
            ActionRow.connection_id == connection.id,
            ActionRow.customer_external_id == customer.external_id,
            ActionRow.kind == ActionKind.REMIND.value,
            ActionRow.state == "done",
        )
        .order_by(ActionRow.updated_at.desc(), ActionRow.id.desc())
        .limit(limit)
    )
    lines = []
    for row in rows:
        view = action_view(row, connection.name)
        numbers = tuple((invoices[ext].number or ext) if ext in invoices else ext for ext in view.invoice_external_ids)
        lines.append(ReminderLine(row.updated_at, view.step, view.template, numbers, view.recipients))
    return tuple(lines)


def _tasks(uow: UnitOfWork, connection_id: int, customer: Customer, limit: int) -> tuple[TaskLine, ...]:
    rows = uow.session.scalars(
        select(Task)
        .where(Task.connection_id == connection_id, Task.customer_external_id == customer.external_id)
        .order_by((Task.state == "open").desc(), Task.due_on.desc(), Task.id.desc())
        .limit(limit)
    )
    return tuple(
        TaskLine(row.id, row.kind, row.title, row.due_on, row.state, row.outcome, row.completed_by, row.completed_at)
        for row in rows
    )


def _paid(uow: UnitOfWork, connection_id: int, invoices: Sequence[Invoice], limit: int) -> tuple[PaidInvoiceLine, ...]:
    paid = [invoice for invoice in invoices if invoice.status == InvoiceStatus.PAID.value]
    if not paid:
        return ()
    last = dict(
        uow.session.execute(
            select(Payment.invoice_external_id, func.max(Payment.paid_on))
            .where(
                Payment.connection_id == connection_id,
                Payment.invoice_external_id.in_([invoice.external_id for invoice in paid]),
                Payment.voided.is_(False),
            )
            .group_by(Payment.invoice_external_id)
        ).all()
    )
    lines = [
        PaidInvoiceLine(
            invoice.id,
            invoice.number or invoice.external_id,
            Money.of(invoice.total, invoice.currency),
            invoice.due_date,
            last.get(invoice.external_id),
        )
        for invoice in paid
    ]
    lines.sort(key=lambda line: (line.paid_on or date.min, line.id), reverse=True)
    return tuple(lines[:limit])


def _replies(uow: UnitOfWork, connection_id: int, customer: Customer, limit: int) -> tuple[ReplyLine, ...]:
    rows = uow.session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.connection_id == connection_id,
            InboundMessage.customer_external_id == customer.external_id,
            InboundMessage.kind != "unmatched",
        )
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    )
    return tuple(
        ReplyLine(
            row.received_at,
            row.from_name or row.from_address,
            row.subject,
            row.text,
            row.kind,
            row.reason,
            row.paused_until,
            row.handled,
        )
        for row in rows
    )


def _changes(uow: UnitOfWork, connection_id: int, customer: Customer, limit: int) -> tuple[ChangeLine, ...]:
    rows = uow.session.scalars(
        select(Activity)
        .where(
            Activity.connection_id == connection_id,
            Activity.detail["customer"].as_string() == customer.external_id,
            or_(*(Activity.kind.startswith(prefix) for prefix in CHANGE_KINDS)),
        )
        .order_by(Activity.at.desc(), Activity.id.desc())
        .limit(limit)
    )
    lines = []
    for row in rows:
        detail = dict(row.detail or {})
        lines.append(
            ChangeLine(
                row.at,
                row.actor,
                row.kind,
                row.subject,
                tuple(str(name) for name in detail.get("changed") or ()),
                dict(detail.get("before") or {}),
                dict(detail.get("after") or {}),
            )
        )
    return tuple(lines)


# -- a payment plan being written -------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanTotals:
    """The running total of installments a person is typing, against the invoice's balance (one currency)."""

    balance: Money
    total: Money
    unreadable: tuple[int, ...]  # rows whose amount is not a number in the currency's minor units

    @property
    def difference(self) -> Money:
        """What is left to share out (positive: short of the balance; negative: over it)."""
        return self.balance - self.total

    @property
    def adds_up(self) -> bool:
        """True when every amount reads and they add up to the balance exactly."""
        return not self.unreadable and self.difference.is_zero()


def plan_totals(balance: Money, amounts: Sequence[str]) -> PlanTotals:
    """Add up the typed `amounts` (text) in `balance`'s currency; rows that are not a finite amount written in
    the currency's minor units (or are out of range) are listed in `unreadable` and left out of the total."""
    places = minor_units(balance.currency)
    total = Decimal(0)
    unreadable: list[int] = []
    for index, text in enumerate(amounts):
        try:
            value = Decimal(str(text).strip())
        except (InvalidOperation, ValueError):
            unreadable.append(index)
            continue
        if not value.is_finite() or value <= 0 or abs(value) >= Decimal(10) ** 15:
            unreadable.append(index)
            continue
        if value != value.quantize(Decimal(1).scaleb(-places)):
            unreadable.append(index)
            continue
        total += value
    return PlanTotals(balance, Money.of(total, balance.currency), tuple(unreadable))
