"""Invoices: the filtered, keyset-paged listing and one invoice's detail with its merged timeline.

Aging is counted in days past due on the client's local calendar (client settings' zone, else the
ledger's): `current` is not yet past due (or no due date), then 1-30, 31-60, 61-90 and 90+ days. A bucket
filter lists open invoices with something left to pay; the listing is sorted by due date (none last),
then id, and pages on that pair (forward with `cursor`, backward with `before`), so rows synced meanwhile never
shift a page already read. Each listed invoice says what holds it (an active payment plan, a dispute, a pause,
an exclusion: the invoice's override or its customer's), read in the page's own query.

The detail's timeline is the invoice's story: its actions (each reminder with the kept copy of its email as sent,
connector.mail.archive; each ledger write with a link into the provider's web app), holds, payments, tasks,
activities (people's approvals and changes, quarantined ledger data, customers' replies) and audit entries, each
in plain words, newest first. `sent_email` reads one kept email back, only within its own client and invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import aliased, defer, selectinload

from connector.domain.actions import ActionKind
from connector.domain.model import ActionState, InvoiceStatus
from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.mail.archive import SENT, ReadMessage
from connector.mail.archive import read as read_message
from connector.mail.rendering import format_money
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
from connector.registry import Registry
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import (
    Activity,
    AuditEntry,
    Connection,
    Customer,
    Invoice,
    InvoiceOverride,
    Payment,
    PaymentPlan,
    SentMessage,
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
_BEFORE = "invoices-before"  # a cursor of the page before: the first row of the page it came from
PLAN_ACTIVE = "active"
MONEY_LOCALE = "en_US"  # amounts in the timeline's words (the web pages' locale)
SHORT_REF = 16  # a ledger id up to this long is named in the timeline's words
# A listing row: invoice, customer id, the customer's dispute / pause / exclusion, the invoice override's, has a plan
_Listing = Select[Invoice, int, bool, date | None, bool, bool, date | None, bool, bool]
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
    search: str | None = None  # part of the number or of the customer's name, any case (% and _ match themselves)
    has_plan: bool | None = None  # True: an active payment plan; False: none
    disputed: bool | None = None  # True: the invoice or its customer is in dispute; False: neither


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
    # What people decided that holds it (the invoice's override or its customer's), as of the client's today:
    has_plan: bool = False  # an active payment plan
    disputed: bool = False  # the invoice or its customer is in dispute
    paused_until: date | None = None  # chasing paused until then (the later of the invoice's and customer's pause)
    excluded: bool = False  # the invoice or its customer is excluded from chasing


@dataclass(frozen=True)
class InvoicePage:
    """One page of the invoice listing and the cursors of its neighbours (None: no such page)."""

    items: tuple[InvoiceView, ...]
    next_cursor: str | None
    prev_cursor: str | None
    client_name: str = ""  # the client's name when the listing is one client's (`connection_id` filter)


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
    """One thing that happened to an invoice: `type` says which table it comes from, `detail` is plain JSON.

    `words` says it in plain language for people; `email_id` names the kept copy of a reminder's email (the sent
    messages of connector.mail.archive) and `email_subject` its subject; `ledger_url` opens what was written in the
    provider's own web app; `repeats` is the key of the action whose own entry already tells the same event (an
    action's done/cancelled activity): a reader showing both would say it twice.
    """

    at: datetime
    type: str  # action | hold | payment | task | activity | audit | reply
    kind: str
    summary: str
    actor: str = ""
    ref: str = ""  # the action key, payment id, task id, audit entry id, activity id
    detail: dict[str, Any] = field(default_factory=dict)
    words: str = ""
    email_id: int | None = None
    email_subject: str = ""
    ledger_url: str | None = None
    repeats: str = ""


@dataclass(frozen=True)
class OverrideView:
    """What people decided about the invoice itself (its override)."""

    paused_until: date | None
    excluded: bool
    dispute: bool
    dispute_reason: str
    agreed_due_date: date | None


@dataclass(frozen=True)
class InstallmentLine:
    """One installment of a payment plan."""

    due_date: date
    amount: Money
    paid_at: datetime | None


@dataclass(frozen=True)
class PlanSummary:
    """The invoice's current payment plan (the active one, else the latest)."""

    id: int
    state: str  # active | kept | broken | cancelled
    policy: str
    grace_days: int
    created_at: datetime
    installments: tuple[InstallmentLine, ...]


@dataclass(frozen=True)
class InvoiceDetail:
    """An invoice with its customer, payments, actions (planned and past) and its timeline, newest first; the
    override and plan in effect, when Nudge first saw it, and where it opens in the provider's web app."""

    invoice: InvoiceView
    customer: CustomerView | None
    payments: tuple[PaymentView, ...]
    actions: tuple[ActionView, ...]
    timeline: tuple[TimelineEntry, ...]
    override: OverrideView | None = None
    plan: PlanSummary | None = None
    first_seen_at: datetime | None = None
    ledger_name: str = ""  # the provider's name ("QuickBooks Online", "Xero")
    ledger_url: str | None = None
    today: date | None = None  # the client's calendar day the detail was read on


LedgerLink = Callable[[str, str], "str | None"]  # (record kind "invoice" | "credit", the record's id) -> its page


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
    found = invoice_page(store, org_id, now, connection_ids=connection_ids, filters=filters, cursor=cursor, limit=limit)
    return Page(found.items, found.next_cursor)


def invoice_page(
    store: Store,
    org_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    filters: InvoiceFilter = InvoiceFilter(),
    cursor: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> InvoicePage:
    """A page of the listing after `cursor` (or, with `before`, the page just before that cursor), with the
    cursors of the next and previous pages. A few queries whatever the page size: the client(s), their zones,
    and the page itself (customer, override and plan joined in)."""
    limit = check_limit(limit)
    _check_filters(filters)
    if cursor is not None and before is not None:
        raise InvalidInput("give either cursor or before, not both", "cursor")
    with store.unit_of_work() as uow:
        connections = visible_connections(uow, org_id, connection_ids, filters.connection_id)
        zones = client_zones(uow, connections)
        names = {connection.id: connection.name for connection in connections}
        query = _listing(uow, org_id, connection_ids, filters, connections, zones, now)
        if before is not None:
            query = query.where(_before(before)).order_by(
                Invoice.due_date.is_(None).desc(), Invoice.due_date.desc(), Invoice.id.desc()
            )
        else:
            if cursor is not None:
                query = query.where(_after(cursor))
            query = query.order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
        rows = list(uow.session.execute(query.limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
    items = tuple(
        _listed(row, names.get(row[0].connection_id, ""), local_today(now, zones[row[0].connection_id])) for row in rows
    )
    first, last = (items[0], items[-1]) if items else (None, None)
    forward_more = more if before is None else True  # a page reached backwards has the pages it came from after it
    backward_more = (cursor is not None) if before is None else more
    return InvoicePage(
        items,
        _cursor(_CURSOR, last) if forward_more and last is not None else None,
        _cursor(_BEFORE, first) if backward_more and first is not None else None,
        names.get(filters.connection_id, "") if filters.connection_id is not None else "",
    )


def _listing(
    uow: UnitOfWork,
    org_id: int,
    connection_ids: Collection[int] | None,
    filters: InvoiceFilter,
    connections: list[Connection],
    zones: dict[int, Any],
    now: datetime,
) -> _Listing:
    """The listing's query, filtered, without order or limit: (invoice, customer id, the customer's and the
    invoice's holds, whether an active plan exists)."""
    owner = aliased(Customer)
    plan = (
        select(PaymentPlan.id)
        .where(
            PaymentPlan.connection_id == Invoice.connection_id,
            PaymentPlan.invoice_external_id == Invoice.external_id,
            PaymentPlan.state == PLAN_ACTIVE,
        )
        .exists()
    )
    query: _Listing = (
        select(
            Invoice,
            owner.id,
            owner.dispute,
            owner.paused_until,
            owner.excluded,
            InvoiceOverride.dispute,
            InvoiceOverride.paused_until,
            InvoiceOverride.excluded,
            plan.label("has_plan"),
        )
        .outerjoin(
            owner,
            and_(owner.connection_id == Invoice.connection_id, owner.external_id == Invoice.customer_external_id),
        )
        .outerjoin(
            InvoiceOverride,
            and_(
                InvoiceOverride.connection_id == Invoice.connection_id,
                InvoiceOverride.invoice_external_id == Invoice.external_id,
            ),
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
    if filters.search and filters.search.strip():
        needle = filters.search.strip().lower()
        query = query.where(
            or_(
                func.lower(Invoice.number).contains(needle, autoescape=True),
                func.lower(Invoice.customer_name).contains(needle, autoescape=True),
            )
        )
    if filters.aging is not None:
        query = query.where(_aging_condition(filters.aging, connections, zones, now))
    if filters.has_plan is not None:
        query = query.where(plan if filters.has_plan else ~plan)
    if filters.disputed is not None:
        disputed = or_(owner.dispute.is_(True), InvoiceOverride.dispute.is_(True))
        query = query.where(disputed if filters.disputed else ~disputed)
    return query


def _listed(row: Any, client: str, today: date) -> InvoiceView:
    """The view of one listing row (see `_listing`)."""
    invoice, customer_id, c_dispute, c_paused, c_excluded, o_dispute, o_paused, o_excluded, has_plan = row
    view = _view(invoice, customer_id, client, today)
    pauses = [day for day in (c_paused, o_paused) if day is not None and today < day]
    return replace(
        view,
        has_plan=bool(has_plan),
        disputed=bool(c_dispute) or bool(o_dispute),
        paused_until=max(pauses) if pauses else None,
        excluded=bool(c_excluded) or bool(o_excluded),
    )


def _cursor(kind: str, item: InvoiceView) -> str:
    return encode_cursor(kind, [item.due_date.isoformat() if item.due_date else None, item.id])


def invoice_detail(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    registry: Registry | None = None,
) -> InvoiceDetail:
    """The invoice (internal id) of that client, its customer, payments, actions and timeline (newest first).

    With `registry`, ledger writes and the invoice carry links into the provider's web app (ProviderSpec.ledger_url).
    """
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
        override = uow.session.scalars(
            select(InvoiceOverride).where(
                InvoiceOverride.connection_id == connection_id,
                InvoiceOverride.invoice_external_id == invoice.external_id,
            )
        ).first()
        plan = _plan_of(uow, invoice)
        view = _with_holds(
            _view(invoice, customer.id if customer else None, connection.name, today), customer, override, plan, today
        )
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
        ledger_name, link = _ledger(registry, connection)
        timeline = _timeline(uow, connection, invoice, actions, payments, link, ledger_name)
    return InvoiceDetail(
        view,
        _customer_view(customer),
        tuple(payments),
        tuple(actions),
        timeline,
        override=_override_view(override),
        plan=plan,
        first_seen_at=invoice.first_seen_at,
        ledger_name=ledger_name,
        ledger_url=link("invoice", invoice.external_id) if link is not None else None,
        today=today,
    )


def _ledger(registry: Registry | None, connection: Connection) -> tuple[str, LedgerLink | None]:
    """The provider's name and a link builder for the connection's records (None: the provider gives none)."""
    if registry is None or connection.provider not in registry:
        return (connection.provider.capitalize() if connection.provider else "the ledger"), None
    spec = registry.spec(connection.provider)
    build = spec.ledger_url
    if build is None:
        return spec.display_name, None
    settings = registry.settings(connection.provider)
    tenant = connection.tenant_id

    def link(kind: str, external_id: str) -> str | None:
        return build(settings, tenant, kind, external_id) if external_id else None

    return spec.display_name, link


def _plan_of(uow: UnitOfWork, invoice: Invoice) -> PlanSummary | None:
    """The invoice's active payment plan, else its latest one (None: it never had one)."""
    plans = list(
        uow.session.scalars(
            select(PaymentPlan)
            .where(
                PaymentPlan.connection_id == invoice.connection_id,
                PaymentPlan.invoice_external_id == invoice.external_id,
            )
            .options(selectinload(PaymentPlan.installments))
            .order_by(PaymentPlan.id.desc())
        )
    )
    chosen = next((plan for plan in plans if plan.state == PLAN_ACTIVE), plans[0] if plans else None)
    if chosen is None:
        return None
    return PlanSummary(
        chosen.id,
        chosen.state,
        chosen.policy,
        chosen.grace_days,
        chosen.created_at,
        tuple(
            InstallmentLine(item.due_date, Money.of(item.amount, item.currency), item.paid_at)
            for item in sorted(chosen.installments, key=lambda item: item.due_date)
        ),
    )


def _with_holds(
    view: InvoiceView,
    customer: Customer | None,
    override: InvoiceOverride | None,
    plan: PlanSummary | None,
    today: date,
) -> InvoiceView:
    pauses = [
        day
        for day in (customer.paused_until if customer else None, override.paused_until if override else None)
        if day is not None and today < day
    ]
    return replace(
        view,
        has_plan=plan is not None and plan.state == PLAN_ACTIVE,
        disputed=bool(customer and customer.dispute) or bool(override and override.dispute),
        paused_until=max(pauses) if pauses else None,
        excluded=bool(customer and customer.excluded) or bool(override and override.excluded),
    )


def _override_view(row: InvoiceOverride | None) -> OverrideView | None:
    if row is None:
        return None
    return OverrideView(row.paused_until, row.excluded, row.dispute, row.dispute_reason, row.agreed_due_date)


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


def _before(cursor: str) -> ColumnElement[bool]:
    """Rows before the cursor's (due date, id) in the listing's order (the mirror of `_after`)."""
    due_text, last_id = decode_cursor(_BEFORE, cursor, 2)
    due, last = cursor_date(due_text), cursor_int(last_id)
    if due is None:
        return or_(Invoice.due_date.is_not(None), and_(Invoice.due_date.is_(None), Invoice.id < last))
    return and_(
        Invoice.due_date.is_not(None),
        or_(Invoice.due_date < due, and_(Invoice.due_date == due, Invoice.id < last)),
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
    link: LedgerLink | None = None,
    ledger_name: str = "the ledger",
) -> tuple[TimelineEntry, ...]:
    """Actions, holds, payments, tasks, activities and audit entries about the invoice, merged, newest first."""
    entries: list[TimelineEntry] = []
    kept = _kept_emails(uow, connection.id, [action.key for action in actions if action.kind == ActionKind.REMIND])
    fee_refs = {action.external_ref for action in actions if action.kind == ActionKind.LATE_FEE and action.external_ref}
    for action in actions:
        entries.append(
            _action_entry(
                action,
                kept.get(action.key),
                _write_link(action, invoice, fee_refs, link),
                ledger_name,
                invoice.external_id,
                frozenset(fee_refs),
            )
        )
    zone_start = client_zones(uow, [connection])[connection.id]
    for payment in payments:
        # A payment is dated in the ledger's zone: it sorts at the start of that local day.
        at = datetime.combine(payment.paid_on, time(0), tzinfo=zone_start).astimezone(UTC)
        amount = _money_words(payment.amount)
        words = f"{_PAYMENT_WORDS.get(payment.kind, 'Payment')} of {amount} applied in {ledger_name}" + (
            " (since voided)" if payment.voided else ""
        )
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
                words=words,
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
                words=_task_words(task),
            )
        )
    keys = [action.key for action in actions]
    final = {action.key: action for action in actions}
    told: set[tuple[str, str]] = set()  # (action key, activity kind) already told by the action's own entry
    activities = _activities_of(uow, invoice, keys)
    moments = {(activity.at, activity.actor) for activity in activities}
    for activity in activities:  # newest first: only the latest outcome of an action repeats its entry
        about = final.get(activity.subject)
        repeats = ""
        if about is not None and (activity.subject, activity.kind) not in told and _tells_outcome(activity, about):
            repeats = about.key
            told.add((activity.subject, activity.kind))
        entries.append(
            TimelineEntry(
                at=activity.at,
                type="reply" if activity.kind.startswith(REPLY_PREFIX) else "activity",
                kind=activity.kind,
                summary=activity.subject,
                actor=activity.actor,
                ref=str(activity.id),
                detail=dict(activity.detail or {}),
                words=_activity_words(activity, about, ledger_name),
                repeats=repeats,
            )
        )
    for entry in _audit_of(uow, connection, invoice):
        # a change people made is told by its activity (same moment, same person) in words
        entries.append(replace(entry, repeats="activity") if (entry.at, entry.actor) in moments else entry)
    entries.sort(key=lambda entry: (entry.at, entry.type, entry.ref), reverse=True)
    return tuple(entries[:TIMELINE_MAX])


REPLY_PREFIX = "reply."  # activities of customers' replies (connector.replies.intake): timeline type "reply"
_PAYMENT_WORDS = {"payment": "Payment", "credit": "Credit", "overpayment": "Overpayment", "prepayment": "Prepayment"}
_THING = {
    ActionKind.REMIND.value: "Reminder",
    ActionKind.NOTE.value: "Note in the ledger",
    ActionKind.LATE_FEE.value: "Late fee",
    ActionKind.FEE_REVERSAL.value: "Late fee reversal",
    ActionKind.DISCOUNT_OFFER.value: "Early-payment discount offer",
    ActionKind.DISCOUNT_CREDIT.value: "Early-payment discount credit",
    ActionKind.CALL_TASK.value: "Phone call",
    ActionKind.ESCALATE.value: "Hand-over for collection",
    ActionKind.HOLD.value: "Hold",
    ActionKind.PLAN_BROKEN.value: "Broken payment plan",
}
_HOLD_WORDS = {
    "dispute": "the invoice or its customer is in dispute",
    "paused": "chasing is paused",
    "excluded": "the invoice or its customer is excluded from chasing",
    "promise_to_pay": "the customer promised to pay",
    "below_minimum": "the balance is below the minimum worth chasing",
    "unapplied_credit": "the customer's unapplied credit covers it: reconcile it in the ledger",
    "unknown_cadence": "its cadence no longer exists",
    "configuration": "the client's settings need attention",
}
_ENDED = ("cancelled", "superseded", "uncertain", "failed", "skipped")


def _tells_outcome(activity: Activity, action: ActionView) -> bool:
    """Whether the activity says what the action's own entry already says (its done or final state)."""
    if activity.kind == f"action.{action.kind}":
        return action.state == ActionState.DONE.value
    return activity.kind == f"action.{action.state}" and action.state in _ENDED


def _kept_emails(uow: UnitOfWork, connection_id: int, keys: list[str]) -> dict[str, SentMessage]:
    """The kept copies of these reminders' emails, by action key (one query; the bytes are not loaded)."""
    if not keys:
        return {}
    rows = uow.session.scalars(
        select(SentMessage)
        .options(defer(SentMessage.raw))
        .where(SentMessage.connection_id == connection_id, SentMessage.action_key.in_(keys))
    )
    return {row.action_key: row for row in rows}


def _write_link(action: ActionView, invoice: Invoice, fee_refs: set[str], link: LedgerLink | None) -> str | None:
    """Where what the action wrote opens in the provider's web app (None: nothing written, or no links)."""
    if link is None or action.state != ActionState.DONE.value:
        return None
    ref = action.external_ref
    if action.kind == ActionKind.NOTE.value:
        return link("invoice", ref or invoice.external_id)
    if action.kind == ActionKind.LATE_FEE.value:
        return link("invoice", ref) if ref else None
    if action.kind == ActionKind.DISCOUNT_CREDIT.value:
        return link("credit", ref) if ref else None
    if action.kind == ActionKind.FEE_REVERSAL.value and ref:
        return link("invoice" if ref in fee_refs else "credit", ref)  # a voided fee invoice, else a credit
    return None


def _action_entry(
    action: ActionView,
    kept: SentMessage | None = None,
    ledger_url: str | None = None,
    ledger_name: str = "the ledger",
    invoice_id: str = "",
    fee_refs: frozenset[str] = frozenset(),
) -> TimelineEntry:
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
        reason = action.hold_reason or "hold"
        return TimelineEntry(
            at=action.scheduled_at,
            type="hold",
            kind=reason,
            summary=f"held: {(action.hold_reason or 'held').replace('_', ' ')}"
            + (f" ({action.rule})" if action.rule else ""),
            ref=action.key,
            detail={**detail, "reason": action.hold_reason, "rule": action.rule},
            words=f"Nothing went out: {_HOLD_WORDS.get(reason, reason.replace('_', ' '))}"
            + (f" ({action.rule})" if action.rule else ""),
        )
    left_out = False
    if action.kind == ActionKind.REMIND.value:
        to = ", ".join(action.recipients) or "the customer's addresses"
        summary = f"reminder ({action.step}) to {to}: {action.state}"
        detail.update({"recipients": list(action.recipients), "template": action.template})
        if kept is not None and invoice_id and invoice_id not in [str(i) for i in kept.invoice_external_ids]:
            kept, left_out = None, True  # the email went without this invoice (it no longer needed chasing)
        if kept is not None:
            to = ", ".join([*kept.to_addresses, *kept.cc_addresses]) or to
            at = kept.sent_at if sent or action.state == "uncertain" else at
            detail.update({"message_id": kept.message_id, "email_id": kept.id})
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
    return TimelineEntry(
        at=at,
        type="action",
        kind=action.kind,
        summary=summary,
        ref=action.key,
        detail=detail,
        words=_action_words(
            action, ledger_name, to if action.kind == ActionKind.REMIND.value else "", invoice_id, fee_refs
        )
        + (": this invoice was left out of it, it no longer needed chasing" if left_out else ""),
        email_id=kept.id if kept is not None else None,
        email_subject=kept.subject if kept is not None else "",
        ledger_url=ledger_url,
    )


def _action_words(
    action: ActionView, ledger: str, to: str, invoice_id: str = "", fee_refs: frozenset[str] = frozenset()
) -> str:
    """What an action did (or will do, or why not) in plain words."""
    state, kind, error = action.state, action.kind, action.error
    amount = _money_words(action.amount) if action.amount is not None else ""
    if state == ActionState.DONE.value:
        done = {
            ActionKind.REMIND.value: f"Reminder sent to {to}",
            ActionKind.NOTE.value: f"Note written on the invoice in {ledger}"
            + (f": “{action.text}”" if action.text else ""),
            ActionKind.LATE_FEE.value: f"Late fee of {amount} charged in {ledger}{_fee_where(action, invoice_id)}",
            ActionKind.FEE_REVERSAL.value: f"Late fee of {amount} reversed in {ledger}"
            + _reversal_how(action.external_ref, fee_refs),
            ActionKind.DISCOUNT_OFFER.value: "Early-payment discount offered" + (f": {amount}" if amount else ""),
            ActionKind.DISCOUNT_CREDIT.value: f"Early-payment discount of {amount} credited in {ledger}"
            + (f" as a credit{_short(action.external_ref)}" if action.external_ref else ""),
            ActionKind.CALL_TASK.value: "Phone call task opened for the team",
            ActionKind.ESCALATE.value: "Handed over for collection: a task was opened for the team",
            ActionKind.PLAN_BROKEN.value: "The payment plan was broken: an installment was missed",
        }
        words = done.get(kind, f"{_THING.get(kind, kind)} done")
        return f"{words}; {error}" if error else words  # e.g. a fee written whose note the ledger refused
    thing = _THING.get(kind, kind.replace("_", " ").capitalize())
    if kind == ActionKind.REMIND.value:
        thing = f"Reminder to {to}"
    elif amount:
        thing = f"{thing} of {amount}"
    when = f"{action.scheduled_at.astimezone(UTC):%d %b %Y %H:%M} UTC"
    return {
        "planned": f"{thing} planned for {when}",
        "awaiting_approval": f"{thing} waits for approval (planned for {when})",
        "running": f"{thing} being carried out",
        "sending": f"{thing} being handed to the mail server",
        "uncertain": f"{thing} may or may not have been sent: {error or 'the mail server never confirmed it'}",
        "failed": f"{thing} failed: {error or 'no reason was given'}",
        "cancelled": f"{thing} not carried out: {error or 'it no longer applied'}",
        "skipped": f"{thing} skipped by a person: it will not be planned again",
        "superseded": f"{thing} replaced: {error or 'a newer one took its place'}",
    }.get(state, f"{thing}: {state.replace('_', ' ')}")


def _task_words(task: Task) -> str:
    what = "Phone call" if task.kind == "call" else "Hand-over"
    if task.state == "done":
        return f"{what} done by {task.completed_by or 'the team'}" + (f": “{task.outcome}”" if task.outcome else "")
    if task.state == "cancelled":
        return f"{what} task cancelled: {task.title}"
    return f"{what} to make: {task.title} (due {task.due_on.isoformat()})"


def _reply_words(activity: Activity) -> str:
    """A customer's reply (issue 17, connector.replies): what they wrote, or that it was automatic."""
    detail = activity.detail or {}
    about = f" ({activity.subject})" if activity.subject else ""
    if activity.kind == f"{REPLY_PREFIX}auto_reply":
        why = detail.get("auto_reply") or "out of office"
        return f"An automatic reply came back{about}: {why}; the cadence carries on"
    text = " ".join(str(detail.get("text") or "").split())
    text = text if len(text) <= 300 else text[:299] + "…"
    paused = f" Reminders to them are paused until {detail['paused_until']}." if detail.get("paused_until") else ""
    return f"The customer replied{about}" + (f": “{text}”" if text else "") + "." + paused


def _activity_words(activity: Activity, action: ActionView | None, ledger: str) -> str:
    """An activity in plain words (its kind and detail; the action it is about, if any)."""
    detail = activity.detail or {}
    who = activity.actor or "Nudge"
    thing = _THING.get(action.kind, "Action") if action is not None else "Action"
    kind = activity.kind
    reason = str(detail.get("reason") or detail.get("error") or "")
    if kind.startswith(REPLY_PREFIX):
        return _reply_words(activity)
    if kind.startswith("customer_page."):  # what a customer did on their page, or a person's answer to it
        return str(detail.get("said") or activity.subject)
    fixed = {
        "action.approved": f"{thing} approved by {who}",
        "action.skipped": f"{thing} skipped by {who}",
        "action.retried": f"{thing} tried again at {who}'s request",
        "action.marked_sent": f"{thing} marked as sent by {who} (it had reached the customer)",
        "action.deferred": f"{thing} moved to {_instant_words(detail.get('until'))}"
        + (f": {reason}" if reason else ""),
        "action.cancelled": f"{thing} not carried out" + (f": {reason}" if reason else ""),
        "action.failed": f"{thing} failed" + (f": {reason}" if reason else ""),
        "action.uncertain": f"{thing} may or may not have been sent"
        + (": the worker stopped while handing it to the mail server" if not reason else f": {reason}"),
        "action.superseded": f"{thing} replaced" + (f": {reason}" if reason else ""),
        "sync.quarantined": f"{ledger} sent data Nudge could not read ({detail.get('field', 'a field')}): "
        f"{detail.get('reason', 'left aside until it is fixed')}",
        "payment_plan.created": f"Payment plan agreed by {who}",
        "payment_plan.cancelled": f"Payment plan cancelled by {who}",
        "invoice.override_cleared": f"{who} cleared what was set for this invoice: it is chased as usual again",
        "customer.promise_kept": "The customer kept their promise to pay",
        "customer.promise_broken": "The customer did not keep their promise to pay",
        "review.approved": f"First plan approved by {who}",
        "task.opened": f"Task opened: {activity.subject}",
        "task.completed": f"Task done by {who}",
    }
    if kind in fixed:
        return fixed[kind]
    if kind in ("invoice.override_set", "invoice.override_updated", "customer.overrides_updated"):
        changes = _change_words(detail.get("after") or {}, detail.get("changed") or [])
        what = "this invoice" if kind.startswith("invoice.") else "the customer"
        return f"{who} changed how {what} is chased" + (f": {changes}" if changes else "")
    if kind.startswith("action.") and action is not None:
        return _action_words(action, ledger, ", ".join(action.recipients) or "the customer")
    return f"{kind.replace('.', ': ').replace('_', ' ').capitalize()}" + (
        f" ({activity.subject})" if activity.subject else ""
    )


def _change_words(after: Any, changed: Any) -> str:
    """The fields an override change set, in words ("paused until 2026-12-05, in dispute: wrong quantity")."""
    if not isinstance(after, dict) or not isinstance(changed, list):
        return ""
    words = []
    for name in changed:
        value = after.get(name)
        if name == "paused_until":
            words.append(f"paused until {value}" if value else "pause lifted")
        elif name == "dispute":
            reason = after.get("dispute_reason")
            words.append(("in dispute" + (f": {reason}" if reason else "")) if value else "dispute resolved")
        elif name == "excluded":
            words.append("excluded from chasing" if value else "chased again")
        elif name == "agreed_due_date":
            words.append(f"new agreed due date {value}" if value else "agreed due date removed")
        elif name == "promise_to_pay_until":
            words.append(f"promised to pay by {value}" if value else "promise to pay removed")
        elif name != "dispute_reason":
            words.append(str(name).replace("_", " ") + " changed")
    return ", ".join(words)


def _instant_words(value: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return "later"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%d %b %Y %H:%M} UTC"


def _money_words(amount: Money | None) -> str:
    return format_money(amount, MONEY_LOCALE) if amount is not None else ""


def _fee_where(action: ActionView, invoice_id: str) -> str:
    """Where a written late fee went: a line on the invoice itself, or a fee invoice of its own."""
    if not action.external_ref:
        return ""
    if action.external_ref == invoice_id:
        return " as a line on this invoice"
    return f" as fee invoice{_short(action.external_ref)}"


def _reversal_how(ref: str, fee_refs: frozenset[str]) -> str:
    if not ref:
        return ""
    return f": fee invoice{_short(ref)} voided" if ref in fee_refs else f" as a credit{_short(ref)}"


def _short(ref: str) -> str:
    """ " <ref>" when a person can read it (QuickBooks' numbers); "" for a long id (Xero's GUIDs: the link opens it)."""
    return f" {ref}" if len(ref) <= SHORT_REF else ""


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
        (Activity.kind == "sync.quarantined") & (Activity.subject == invoice.external_id),
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
            words=f"{_AUDIT_WORDS.get(entry.entity, entry.entity.replace('_', ' ').capitalize())} "
            f"{_CHANGE_WORDS.get(entry.change, entry.change)} by {entry.actor}",
        )
        for entry in rows
    ]


_AUDIT_WORDS = {
    "invoice_override": "How this invoice is chased",
    "invoice": "This invoice",
    "payment_plan": "Payment plan",
}
_CHANGE_WORDS = {"create": "set", "update": "changed", "delete": "cleared", "import": "imported"}


# -- one sent email, as the customer got it ---------------------------------------------------------------------


@dataclass(frozen=True)
class SentEmail:
    """A kept email about an invoice: the stored bytes, read back, and what became of it.

    `state` is the action's word where a person settled it since (an uncertain email marked as sent is `sent`):
    sending | sent | uncertain. `size` and `sha256` are the message's as sent; `attachments_omitted` says the stored
    copy leaves out the attachments' contents (connector.mail.archive.MAX_STORED_BYTES).
    """

    id: int
    connection_id: int
    invoice_id: int
    invoice_number: str
    action_key: str
    state: str
    mailer: str
    message_id: str
    subject: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    sent_at: datetime
    size: int
    sha256: str
    attachments_omitted: bool
    message: ReadMessage
    raw: bytes = field(repr=False)


def sent_email(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    email_id: int,
    *,
    connection_ids: Collection[int] | None = None,
) -> SentEmail:
    """The kept email `email_id` about invoice `invoice_id` of that client; UnknownRecord for any other (another
    client's or organization's email, or an email about another invoice)."""
    row_id(invoice_id, "invoice_id", "invoice")
    row_id(email_id, "email_id", "email")
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        invoice = uow.session.scalars(
            select(Invoice).where(Invoice.id == invoice_id, Invoice.connection_id == connection_id)
        ).first()
        found = uow.session.execute(
            select(SentMessage, ActionRow.state)
            .outerjoin(ActionRow, ActionRow.key == SentMessage.action_key)
            .where(SentMessage.id == email_id, SentMessage.connection_id == connection_id)
        ).first()
    if invoice is None or found is None or invoice.external_id not in [str(i) for i in found[0].invoice_external_ids]:
        raise UnknownRecord(f"no email with id {email_id} about invoice {invoice_id}", "email_id")
    row, action_state = found
    state = SENT if action_state == ActionState.DONE.value else row.state
    return SentEmail(
        id=row.id,
        connection_id=row.connection_id,
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        action_key=row.action_key,
        state=state,
        mailer=row.mailer,
        message_id=row.message_id,
        subject=row.subject,
        to=tuple(str(address) for address in row.to_addresses or ()),
        cc=tuple(str(address) for address in row.cc_addresses or ()),
        sent_at=row.sent_at,
        size=row.size,
        sha256=row.sha256,
        attachments_omitted=row.attachments_omitted,
        message=read_message(row.raw),
        raw=row.raw,
    )
