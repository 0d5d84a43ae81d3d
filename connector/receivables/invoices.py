"""Invoices: the filtered, keyset-paged listing and one invoice's detail with its merged timeline.

Aging is counted in days past due on the client's local calendar (client settings' zone, else the
ledger's): `current` is not yet past due (or no due date), then 1-30, 31-60, 61-90 and 90+ days. A bucket
filter lists open invoices with something left to pay; the listing is sorted by due date (none last),
then id, and pages on that pair, so rows synced meanwhile never shift a page already read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import aliased

from connector.domain.actions import ActionKind
from connector.domain.model import InvoiceStatus
from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.receivables.common import (
    DEFAULT_LIMIT,
    Page,
    check_day,
    check_limit,
    client_zones,
    cursor_date,
    cursor_int,
    decode_cursor,
    detail_id_in,
    encode_cursor,
    local_today,
    plain_text,
    row_id,
    visible,
    visible_connection,
    visible_connections,
)
from connector.receivables.views import ActionView, action_view, decoded, invoice_ids_of
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import (
    Activity,
    AuditEntry,
    Connection,
    Customer,
    Invoice,
    Payment,
    PaymentPlan,
    Task,
)

CURRENT = "current"
BUCKETS: tuple[str, ...] = (CURRENT, "1-30", "31-60", "61-90", "90+")
# Days past due each bucket spans (inclusive); None: open-ended.
_SPANS: dict[str, tuple[int | None, int | None]] = {
    CURRENT: (None, 0),
    "1-30": (1, 30),
    "31-60": (31, 60),
    "61-90": (61, 90),
    "90+": (91, None),
}
_CURSOR = "invoices"
TIMELINE_MAX = 500  # entries of one invoice's timeline (newest first)
# Audit entities whose id is an invoice's (internal, or the ledger's); payment plans are found by their own ids.
INVOICE_AUDIT_ENTITIES = ("invoice", "invoice_override")


def bucket_of(days_past_due: int | None) -> str:
    """The aging bucket of an invoice `days_past_due` days past its due date (None: no due date → current)."""
    if days_past_due is None or days_past_due <= 0:
        return CURRENT
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


def days_past_due(due: date | None, today: date) -> int | None:
    """Whole days from the due date to `today` (negative before it); None without a due date."""
    return None if due is None else (today - due).days


@dataclass(frozen=True)
class InvoiceFilter:
    """What the invoice listing is narrowed to; every field optional."""

    connection_id: int | None = None
    customer_id: int | None = None  # the customer's internal row id
    status: str | None = None
    aging: str | None = None
    due_from: date | None = None
    due_to: date | None = None
    search: str | None = None  # part of the number or of the customer's name, any case


@dataclass(frozen=True)
class InvoiceView:
    """One invoice as listed: ids (internal and the ledger's), who owes what, when due, how late."""

    id: int
    connection_id: int
    client: str
    external_id: str
    number: str
    customer_id: int | None
    customer_external_id: str
    customer_name: str
    total: Money
    balance: Money
    issue_date: date | None
    due_date: date | None
    status: str
    days_past_due: int | None
    aging: str
    created_by_nudge: bool
    updated_at: datetime


@dataclass(frozen=True)
class CustomerView:
    """The customer an invoice belongs to, with the overrides people set."""

    id: int
    external_id: str
    name: str
    emails: tuple[str, ...]
    cc_emails: tuple[str, ...]
    paused_until: date | None
    excluded: bool
    dispute: bool
    dispute_reason: str
    promise_to_pay_until: date | None


@dataclass(frozen=True)
class PaymentView:
    """Money one ledger object applied to the invoice."""

    id: int
    kind: str
    external_id: str
    amount: Money
    paid_on: date
    voided: bool


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an invoice: `type` says which table it comes from, `detail` is plain JSON."""

    at: datetime
    type: str  # action | hold | payment | task | activity | audit
    kind: str
    summary: str
    actor: str = ""
    ref: str = ""  # the action key, payment id, task id, audit entry id, activity id
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceDetail:
    """An invoice with its customer, payments, actions (planned and past) and its timeline, newest first."""

    invoice: InvoiceView
    customer: CustomerView | None
    payments: tuple[PaymentView, ...]
    actions: tuple[ActionView, ...]
    timeline: tuple[TimelineEntry, ...]


def list_invoices(
    store: Store,
    org_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    filters: InvoiceFilter = InvoiceFilter(),
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[InvoiceView]:
    """One page of the organization's invoices the member may see, by due date (none last) then id."""
    limit = check_limit(limit)
    _check_filters(filters)
    owner = aliased(Customer)
    with store.unit_of_work() as uow:
        connections = visible_connections(uow, org_id, connection_ids, filters.connection_id)
        zones = client_zones(uow, connections)
        names = {connection.id: connection.name for connection in connections}
        query = (
            select(Invoice, owner.id)
            .outerjoin(
                owner,
                and_(owner.connection_id == Invoice.connection_id, owner.external_id == Invoice.customer_external_id),
            )
            .where(visible(Invoice.connection_id, org_id, connection_ids))
        )
        if filters.connection_id is not None:
            query = query.where(Invoice.connection_id == filters.connection_id)
        if filters.customer_id is not None:
            customer = _visible_customer(uow, org_id, filters.customer_id, connection_ids)
            query = query.where(
                Invoice.connection_id == customer.connection_id,
                Invoice.customer_external_id == customer.external_id,
            )
        if filters.status is not None:
            query = query.where(Invoice.status == filters.status)
        if filters.due_from is not None:
            query = query.where(Invoice.due_date >= filters.due_from)
        if filters.due_to is not None:
            query = query.where(Invoice.due_date <= filters.due_to)
        if filters.search:
            needle = filters.search.strip().lower()
            query = query.where(
                or_(
                    func.lower(Invoice.number).contains(needle, autoescape=True),
                    func.lower(Invoice.customer_name).contains(needle, autoescape=True),
                )
            )
        if filters.aging is not None:
            query = query.where(_aging_condition(filters.aging, connections, zones, now))
        if cursor is not None:
            query = query.where(_after(cursor))
        query = query.order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id).limit(limit + 1)
        rows = uow.session.execute(query).all()
    items = [
        _view(
            invoice, customer_id, names.get(invoice.connection_id, ""), local_today(now, zones[invoice.connection_id])
        )
        for invoice, customer_id in rows[:limit]
    ]
    more = len(rows) > limit
    last = items[-1] if items else None
    next_cursor = (
        encode_cursor(_CURSOR, [last.due_date.isoformat() if last.due_date else None, last.id])
        if more and last is not None
        else None
    )
    return Page(tuple(items), next_cursor)


def invoice_detail(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> InvoiceDetail:
    """The invoice (internal id) of that client, its customer, payments, actions and timeline (newest first)."""
    row_id(invoice_id, "invoice_id", "invoice")
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        invoice = uow.session.scalars(
            select(Invoice).where(Invoice.id == invoice_id, Invoice.connection_id == connection_id)
        ).first()
        if invoice is None:
            raise UnknownRecord(f"no invoice with id {invoice_id} for client {connection_id}", "invoice_id")
        today = local_today(now, client_zones(uow, [connection])[connection.id])
        customer = uow.session.scalars(
            select(Customer).where(
                Customer.connection_id == connection_id, Customer.external_id == invoice.customer_external_id
            )
        ).first()
        view = _view(invoice, customer.id if customer else None, connection.name, today)
        payments = [
            PaymentView(row.id, row.kind, row.external_id, Money.of(row.amount, row.currency), row.paid_on, row.voided)
            for row in uow.session.scalars(
                select(Payment)
                .where(Payment.connection_id == connection_id, Payment.invoice_external_id == invoice.external_id)
                .order_by(Payment.paid_on, Payment.id)
            )
        ]
        action_rows = actions_about(uow, invoice)
        actions = [action_view(row, connection.name) for row in action_rows]
        timeline = _timeline(uow, connection, invoice, actions, payments)
    return InvoiceDetail(view, _customer_view(customer), tuple(payments), tuple(actions), timeline)


# -- listing helpers ----------------------------------------------------------------------------------------


def _check_filters(filters: InvoiceFilter) -> None:
    if filters.status is not None and filters.status not in {status.value for status in InvoiceStatus}:
        allowed = ", ".join(status.value for status in InvoiceStatus)
        raise InvalidInput(f"status must be one of {allowed}", "status")
    if filters.aging is not None and filters.aging not in BUCKETS:
        raise InvalidInput(f"aging must be one of {', '.join(BUCKETS)}", "aging")
    if filters.due_from is not None and filters.due_to is not None and filters.due_from > filters.due_to:
        raise InvalidInput("due_from is after due_to: nothing can be due in that range", "due_from")
    if filters.search is not None:
        plain_text(filters.search, "search", 200)
    check_day(filters.due_from, "due_from")
    check_day(filters.due_to, "due_to")


def _visible_customer(
    uow: UnitOfWork, org_id: int, customer_id: int, connection_ids: Collection[int] | None
) -> Customer:
    row_id(customer_id, "customer_id", "customer")
    customer = uow.session.scalars(
        select(Customer).where(Customer.id == customer_id, visible(Customer.connection_id, org_id, connection_ids))
    ).first()
    if customer is None:
        raise UnknownRecord(f"no customer with id {customer_id}", "customer_id")
    return customer


def _aging_condition(
    bucket: str, connections: list[Connection], zones: dict[int, Any], now: datetime
) -> ColumnElement[bool]:
    """Open invoices with a balance whose due date falls in `bucket` on their own client's calendar.

    Connections sharing a local date share one clause, so a practice with many clients in few zones
    asks a short question.
    """
    by_today: dict[date, list[int]] = defaultdict(list)
    for connection in connections:
        by_today[local_today(now, zones[connection.id])].append(connection.id)
    low, high = _SPANS[bucket]
    clauses = []
    for today, ids in by_today.items():
        due: list[ColumnElement[bool]] = []
        if high is not None:  # at most `high` days past due: due on or after today - high
            due.append(Invoice.due_date >= today - timedelta(days=high))
        if low is not None:
            due.append(Invoice.due_date <= today - timedelta(days=low))
        if bucket == CURRENT:
            clauses.append(and_(Invoice.connection_id.in_(ids), or_(Invoice.due_date.is_(None), *due)))
        else:
            clauses.append(and_(Invoice.connection_id.in_(ids), *due))
    if not clauses:
        return false()
    return and_(Invoice.status == InvoiceStatus.OPEN.value, Invoice.balance > 0, or_(*clauses))


def _after(cursor: str) -> ColumnElement[bool]:
    """Rows after the cursor's (due date, id) in the listing's order (dated first, then the undated)."""
    due_text, last_id = decode_cursor(_CURSOR, cursor, 2)
    due, last = cursor_date(due_text), cursor_int(last_id)
    if due is None:
        return and_(Invoice.due_date.is_(None), Invoice.id > last)
    return or_(
        Invoice.due_date > due,
        and_(Invoice.due_date == due, Invoice.id > last),
        Invoice.due_date.is_(None),
    )


def _view(invoice: Invoice, customer_id: int | None, client: str, today: date) -> InvoiceView:
    late = days_past_due(invoice.due_date, today)
    return InvoiceView(
        id=invoice.id,
        connection_id=invoice.connection_id,
        client=client,
        external_id=invoice.external_id,
        number=invoice.number,
        customer_id=customer_id,
        customer_external_id=invoice.customer_external_id,
        customer_name=invoice.customer_name,
        total=Money.of(invoice.total, invoice.currency),
        balance=Money.of(invoice.balance, invoice.currency),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        status=invoice.status,
        days_past_due=late,
        aging=bucket_of(late),
        created_by_nudge=invoice.created_by_nudge,
        updated_at=invoice.updated_at,
    )


def _customer_view(customer: Customer | None) -> CustomerView | None:
    if customer is None:
        return None
    return CustomerView(
        id=customer.id,
        external_id=customer.external_id,
        name=customer.name,
        emails=tuple(str(address) for address in customer.recipients_to or customer.emails or ()),
        cc_emails=tuple(str(address) for address in customer.recipients_cc or customer.cc_emails or ()),
        paused_until=customer.paused_until,
        excluded=customer.excluded,
        dispute=customer.dispute,
        dispute_reason=customer.dispute_reason,
        promise_to_pay_until=customer.promise_to_pay_until,
    )


# -- the detail's actions and timeline ---------------------------------------------------------------------


def actions_about(uow: UnitOfWork, invoice: Invoice) -> list[ActionRow]:
    """Every action about the invoice: its own rows, and the customer's grouped ones that list it, by schedule."""
    rows = uow.session.scalars(
        select(ActionRow)
        .where(
            ActionRow.connection_id == invoice.connection_id,
            or_(
                ActionRow.invoice_external_id == invoice.external_id,
                and_(
                    ActionRow.invoice_external_id == "",
                    ActionRow.customer_external_id == invoice.customer_external_id,
                ),
            ),
        )
        .order_by(ActionRow.scheduled_at, ActionRow.id)
    )
    return [row for row in rows if invoice.external_id in invoice_ids_of(row, decoded(row))]


def _timeline(
    uow: UnitOfWork,
    connection: Connection,
    invoice: Invoice,
    actions: list[ActionView],
    payments: list[PaymentView],
) -> tuple[TimelineEntry, ...]:
    """Actions, holds, payments, tasks, activities and audit entries about the invoice, merged, newest first."""
    entries: list[TimelineEntry] = []
    for action in actions:
        entries.append(_action_entry(action))
    zone_start = client_zones(uow, [connection])[connection.id]
    for payment in payments:
        # A payment is dated in the ledger's zone: it sorts at the start of that local day.
        at = datetime.combine(payment.paid_on, time(0), tzinfo=zone_start).astimezone(UTC)
        entries.append(
            TimelineEntry(
                at=at,
                type="payment",
                kind=payment.kind,
                summary=f"{payment.kind} of {payment.amount.amount} {payment.amount.currency}"
                + (" (voided)" if payment.voided else ""),
                ref=payment.external_id,
                detail={
                    "amount": str(payment.amount.amount),
                    "currency": payment.amount.currency,
                    "paid_on": payment.paid_on.isoformat(),
                    "voided": payment.voided,
                },
            )
        )
    for task in _tasks_of(uow, invoice):
        entries.append(
            TimelineEntry(
                at=task.completed_at or task.created_at,
                type="task",
                kind=f"{task.kind}.{task.state}",
                summary=task.title + (f": {task.outcome}" if task.outcome else ""),
                actor=task.completed_by,
                ref=str(task.id),
                detail={
                    "task": task.id,
                    "state": task.state,
                    "due_on": task.due_on.isoformat(),
                    "outcome": task.outcome,
                },
            )
        )
    keys = [action.key for action in actions]
    for activity in _activities_of(uow, invoice, keys):
        entries.append(
            TimelineEntry(
                at=activity.at,
                type="activity",
                kind=activity.kind,
                summary=activity.subject,
                actor=activity.actor,
                ref=str(activity.id),
                detail=dict(activity.detail or {}),
            )
        )
    for entry in _audit_of(uow, connection, invoice):
        entries.append(entry)
    entries.sort(key=lambda entry: (entry.at, entry.type, entry.ref), reverse=True)
    return tuple(entries[:TIMELINE_MAX])


def _action_entry(action: ActionView) -> TimelineEntry:
    """A reminder: when (sent, else planned), to whom, which template, state; a ledger write: its ledger ref."""
    sent = action.state == "done"
    at = (
        action.updated_at
        if sent or action.state in ("failed", "uncertain", "skipped", "cancelled")
        else action.scheduled_at
    )
    detail: dict[str, Any] = {
        "action_id": action.id,
        "state": action.state,
        "step": action.step,
        "scheduled_at": action.scheduled_at.isoformat(),
    }
    if action.kind == ActionKind.HOLD.value:
        return TimelineEntry(
            at=action.scheduled_at,
            type="hold",
            kind=action.hold_reason or "hold",
            summary=f"held: {(action.hold_reason or 'held').replace('_', ' ')}"
            + (f" ({action.rule})" if action.rule else ""),
            ref=action.key,
            detail={**detail, "reason": action.hold_reason, "rule": action.rule},
        )
    if action.kind == ActionKind.REMIND.value:
        to = ", ".join(action.recipients) or "the customer's addresses"
        summary = f"reminder ({action.step}) to {to}: {action.state}"
        detail.update({"recipients": list(action.recipients), "template": action.template})
    else:
        summary = f"{action.kind.replace('_', ' ')} ({action.step}): {action.state}"
        if action.amount is not None:
            summary += f", {action.amount.amount} {action.amount.currency}"
            detail.update({"amount": str(action.amount.amount), "currency": action.amount.currency})
        if action.text:
            detail["text"] = action.text
    if action.external_ref:
        detail["ledger_ref"] = action.external_ref
    if action.error:
        detail["error"] = action.error
    return TimelineEntry(at=at, type="action", kind=action.kind, summary=summary, ref=action.key, detail=detail)


def _tasks_of(uow: UnitOfWork, invoice: Invoice) -> list[Task]:
    rows = uow.session.scalars(
        select(Task).where(
            Task.connection_id == invoice.connection_id,
            Task.customer_external_id == invoice.customer_external_id,
        )
    )
    return [task for task in rows if invoice.external_id in [str(i) for i in task.invoice_external_ids or ()]]


def _activities_of(uow: UnitOfWork, invoice: Invoice, keys: list[str]) -> list[Activity]:
    """Activities of the invoice's actions (by key) and those naming the invoice in their detail."""
    about = or_(
        Activity.detail["invoice"].as_string() == invoice.external_id,
        detail_id_in(uow, "invoice_id", [invoice.id]),
    )
    condition = or_(Activity.subject.in_(keys), about) if keys else about
    return list(
        uow.session.scalars(
            select(Activity)
            .where(Activity.connection_id == invoice.connection_id, condition, ~Activity.kind.startswith("task."))
            .order_by(Activity.at.desc(), Activity.id.desc())
            .limit(TIMELINE_MAX)
        )
    )


def _audit_of(uow: UnitOfWork, connection: Connection, invoice: Invoice) -> list[TimelineEntry]:
    """Audit entries about the invoice: its override (by internal or external id) and its payment plans (by plan id)."""
    plan_ids = [
        str(plan_id)
        for plan_id in uow.session.scalars(
            select(PaymentPlan.id).where(
                PaymentPlan.connection_id == connection.id, PaymentPlan.invoice_external_id == invoice.external_id
            )
        )
    ]
    own_ids = list(dict.fromkeys((str(invoice.id), invoice.external_id)))
    about = [AuditEntry.entity.in_(INVOICE_AUDIT_ENTITIES) & AuditEntry.entity_id.in_(own_ids)]
    if plan_ids:
        about.append((AuditEntry.entity == "payment_plan") & AuditEntry.entity_id.in_(plan_ids))
    rows = uow.session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.organization_id == connection.organization_id,
            AuditEntry.connection_id == connection.id,
            or_(*about),
        )
        .order_by(AuditEntry.id.desc())
        .limit(TIMELINE_MAX)
    )
    return [
        TimelineEntry(
            at=entry.at,
            type="audit",
            kind=f"{entry.entity}.{entry.change}",
            summary=f"{entry.entity.replace('_', ' ')}: {entry.change} by {entry.actor}",
            actor=entry.actor,
            ref=str(entry.id),
            detail={"before": entry.before, "after": entry.after},
        )
        for entry in rows
    ]
