"""A customer's statement: every open invoice with its aging, the payments received in the period, pay links.

`build_statement` is pure: a function of the customer's invoices and payments (as the store holds them), the
`as_of` date (the customer's or client's local day) and the period. Money is never added across currencies:
the statement has one section per currency, each with its own open invoices, aging totals (current, 1-30,
31-60, 61-90, 90+ days past due, as the invoice listing buckets them) and payments. An invoice is open while
its status is open and its balance is above zero; a voided payment is left out; money the ledger has not
applied to an invoice (an unapplied credit or overpayment) is listed as such.

`load_statement` reads those rows for one customer of a client (one query each) and `statement_pdf` renders the
statement with `connector.documents` in the customer's locale, under the client's business name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.documents.pdf import render_pdf
from connector.domain.actions import Action, ActionKind, ReminderItem, action_key
from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.domain.policy import STATEMENT_TEMPLATE
from connector.errors import InvalidInput, UnknownRecord
from connector.mail.rendering import Amount, format_day, parse_locale
from connector.outbox.planning import plan_action, snapshot_of
from connector.receivables.common import client_zones, local_today, row_id, visible_connection
from connector.receivables.invoices import BUCKETS, bucket_of
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Activity, ClientSettings, Connection, Customer, Invoice, Payment

PERIOD_DAYS = 30  # payments "received in the period": the 30 days up to and including `as_of`
DEFAULT_LOCALE = "en_US"
PAYMENT_WORDS = {
    "payment": "Payment",
    "credit": "Credit note",
    "overpayment": "Overpayment",
    "prepayment": "Prepayment",
}


@dataclass(frozen=True)
class InvoiceRecord:
    """One of the customer's invoices as the ledger states it (the input of `build_statement`)."""

    external_id: str
    number: str
    status: str
    issue_date: date | None
    due_date: date | None
    total: Money
    balance: Money


@dataclass(frozen=True)
class PaymentRecord:
    """Money one ledger object applied to an invoice ("" invoice number: not applied to any)."""

    kind: str
    amount: Money
    paid_on: date
    invoice_number: str
    voided: bool = False


@dataclass(frozen=True)
class OpenLine:
    """An open invoice on the statement: `days_overdue` is 0 until the day after its due date."""

    external_id: str
    number: str
    issue_date: date | None
    due_date: date | None
    amount: Money
    outstanding: Money
    days_overdue: int
    bucket: str
    pay_link: str | None


@dataclass(frozen=True)
class PaymentLine:
    """A payment received in the period."""

    paid_on: date
    kind: str
    amount: Money
    invoice_number: str


@dataclass(frozen=True)
class CurrencySection:
    """Everything of the statement in one currency (amounts of two currencies are never added up)."""

    currency: str
    lines: tuple[OpenLine, ...]
    aging: tuple[tuple[str, Money], ...]  # every bucket of BUCKETS, in order, zero where nothing is
    payments: tuple[PaymentLine, ...]

    @property
    def outstanding(self) -> Money:
        """What the customer owes in this currency."""
        return sum((line.outstanding for line in self.lines), Money.zero(self.currency))

    @property
    def overdue(self) -> Money:
        """The part of `outstanding` past its due date."""
        return sum((line.outstanding for line in self.lines if line.days_overdue > 0), Money.zero(self.currency))

    @property
    def received(self) -> Money:
        """The payments received in the period."""
        return sum((line.amount for line in self.payments), Money.zero(self.currency))


@dataclass(frozen=True)
class Statement:
    """A customer's statement as of a day: one section per currency (sorted by code)."""

    business_name: str
    customer_name: str
    customer_external_id: str
    as_of: date
    period_start: date
    sections: tuple[CurrencySection, ...]

    @property
    def open_count(self) -> int:
        """How many open invoices the statement lists."""
        return sum(len(section.lines) for section in self.sections)

    @property
    def open_invoice_ids(self) -> tuple[str, ...]:
        """The ledger ids of the open invoices listed, oldest due first per currency."""
        return tuple(line.external_id for section in self.sections for line in section.lines)


def build_statement(
    *,
    business_name: str,
    customer_name: str,
    customer_external_id: str,
    invoices: Iterable[InvoiceRecord],
    payments: Iterable[PaymentRecord],
    as_of: date,
    period_days: int = PERIOD_DAYS,
    pay_links: Mapping[str, str] | None = None,
) -> Statement:
    """The statement of the customer's `invoices` and `payments` as of local day `as_of`.

    Open invoices (status open, balance above zero) are listed oldest due first (no due date last); the
    payments counted are those not voided and dated within the `period_days` days up to and including `as_of`.
    """
    links = pay_links or {}
    start = as_of - timedelta(days=max(period_days, 1) - 1)
    lines: dict[str, list[OpenLine]] = {}
    for invoice in invoices:
        if invoice.status != InvoiceStatus.OPEN.value or not invoice.balance.is_positive():
            continue
        late = max((as_of - invoice.due_date).days, 0) if invoice.due_date is not None else 0
        lines.setdefault(invoice.balance.currency, []).append(
            OpenLine(
                external_id=invoice.external_id,
                number=invoice.number or invoice.external_id,
                issue_date=invoice.issue_date,
                due_date=invoice.due_date,
                amount=invoice.total,
                outstanding=invoice.balance,
                days_overdue=late,
                bucket=bucket_of(late),
                pay_link=_safe_link(links.get(invoice.external_id)),
            )
        )
    received: dict[str, list[PaymentLine]] = {}
    for payment in payments:
        if payment.voided or not start <= payment.paid_on <= as_of or payment.amount.is_zero():
            continue
        received.setdefault(payment.amount.currency, []).append(
            PaymentLine(payment.paid_on, payment.kind, payment.amount, payment.invoice_number)
        )
    sections = []
    for currency in sorted({*lines, *received}):
        open_lines = sorted(
            lines.get(currency, []), key=lambda line: (line.due_date is None, line.due_date or as_of, line.number)
        )
        aging = tuple(
            (bucket, sum((line.outstanding for line in open_lines if line.bucket == bucket), Money.zero(currency)))
            for bucket in BUCKETS
        )
        paid = tuple(sorted(received.get(currency, []), key=lambda line: (line.paid_on, line.invoice_number)))
        sections.append(CurrencySection(currency, tuple(open_lines), aging, paid))
    return Statement(business_name, customer_name, customer_external_id, as_of, start, tuple(sections))


_LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def _safe_link(link: str | None) -> str | None:
    """A pay link fit to print and click: http(s), one line, no quotes or angle brackets (else left out)."""
    if not link or len(link) > 2000 or not _LINK.fullmatch(link):
        return None
    return link


# -- reading it from the store ---------------------------------------------------------------------------
PayLink = Callable[[InvoiceSnapshot], "str | None"]


@dataclass(frozen=True)
class StatementSource:
    """Who a statement is for and from, and the locale it is written in."""

    connection_id: int
    customer_id: int
    customer_external_id: str
    customer_name: str
    business_name: str
    locale: str
    as_of: date


@dataclass(frozen=True)
class _Rows:
    source: StatementSource
    invoices: tuple[InvoiceRecord, ...]
    open_invoices: tuple[InvoiceSnapshot, ...]
    payments: tuple[PaymentRecord, ...]


def load_statement(
    store: Store,
    org_id: int,
    connection_id: int,
    customer_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    pay_link: PayLink | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> tuple[StatementSource, Statement]:
    """The statement of customer `customer_id` (row id) of the client as of the client's local today, and who it
    is for; UnknownRecord outside what the member may see (as for an id that never existed). `pay_link` (the
    provider's, asked after the store is read) gives each open invoice its link."""
    row_id(customer_id, "customer_id", "customer")
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        today = local_today(now, client_zones(uow, [connection])[connection.id])
        customer = uow.session.scalar(
            select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id)
        )
        if customer is None:
            raise UnknownRecord(f"no customer with id {customer_id} for client {connection_id}", "customer_id")
        rows = _read(uow, connection, customer, today, default_locale)
    return rows.source, _built(rows, pay_link)


def load_statement_by_external_id(
    store: Store,
    connection_id: int,
    customer_external_id: str,
    as_of: date,
    *,
    pay_link: PayLink | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> tuple[StatementSource, Statement] | None:
    """The statement of the client's customer with ledger id `customer_external_id` (None: no such customer)."""
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, connection_id)
        customer = uow.session.scalar(
            select(Customer).where(
                Customer.connection_id == connection_id, Customer.external_id == customer_external_id
            )
        )
        if connection is None or customer is None:
            return None
        rows = _read(uow, connection, customer, as_of, default_locale)
    return rows.source, _built(rows, pay_link)


def _built(rows: _Rows, pay_link: PayLink | None) -> Statement:
    links: dict[str, str] = {}
    if pay_link is not None:
        for invoice in rows.open_invoices:
            link = pay_link(invoice)
            if link:
                links[invoice.external_id] = link
    source = rows.source
    return build_statement(
        business_name=source.business_name,
        customer_name=source.customer_name,
        customer_external_id=source.customer_external_id,
        invoices=rows.invoices,
        payments=rows.payments,
        as_of=source.as_of,
        pay_links=links,
    )


def _read(uow: UnitOfWork, connection: Connection, customer: Customer, as_of: date, default_locale: str) -> _Rows:
    """What a statement of `customer` as of `as_of` is made of: three queries and the client's settings."""
    client = uow.session.get(ClientSettings, connection.id)
    business = (client.business_name if client else "") or connection.name
    locale = customer.locale or (client.locale if client else "") or default_locale
    invoices = list(
        uow.session.scalars(
            select(Invoice).where(
                Invoice.connection_id == connection.id,
                Invoice.customer_external_id == customer.external_id,
                Invoice.status == InvoiceStatus.OPEN.value,
            )
        )
    )
    start = as_of - timedelta(days=PERIOD_DAYS - 1)
    payments = list(
        uow.session.scalars(
            select(Payment).where(
                Payment.connection_id == connection.id,
                Payment.customer_external_id == customer.external_id,
                Payment.paid_on >= start,
                Payment.paid_on <= as_of,
            )
        )
    )
    wanted = {row.invoice_external_id for row in payments if row.invoice_external_id}
    numbers: dict[str, str] = {}
    if wanted:
        numbers = {
            external_id: number or external_id
            for external_id, number in uow.session.execute(
                select(Invoice.external_id, Invoice.number).where(
                    Invoice.connection_id == connection.id, Invoice.external_id.in_(sorted(wanted))
                )
            ).all()
        }
    name = customer.name or customer.external_id
    return _Rows(
        StatementSource(connection.id, customer.id, customer.external_id, name, business, locale, as_of),
        tuple(
            InvoiceRecord(
                row.external_id,
                row.number,
                row.status,
                row.issue_date,
                row.due_date,
                Money.of(row.total, row.currency),
                Money.of(row.balance, row.currency),
            )
            for row in invoices
        ),
        tuple(snapshot_of(row) for row in invoices if row.balance > 0),
        tuple(
            PaymentRecord(
                row.kind,
                Money.of(row.amount, row.currency),
                row.paid_on,
                numbers.get(row.invoice_external_id, row.invoice_external_id) if row.invoice_external_id else "",
                row.voided,
            )
            for row in payments
        ),
    )


# -- what documents and emails show ----------------------------------------------------------------------
BUCKET_LABELS = {"current": "Current", "1-30": "1-30 days", "31-60": "31-60 days", "61-90": "61-90 days"}


def statement_variables(statement: Statement, locale: str) -> dict[str, Any]:
    """The statement with amounts and dates written for `locale` (strings that keep their values): what the
    PDF template and the statement email template see."""
    loc = parse_locale(locale)

    def day(value: date | None) -> str:
        return format_day(value, loc, "medium") if value is not None else ""

    sections = [
        {
            "currency": section.currency,
            "outstanding": Amount(section.outstanding, loc),
            "overdue": Amount(section.overdue, loc),
            "received": Amount(section.received, loc),
            "aging": [
                {"bucket": bucket, "label": BUCKET_LABELS.get(bucket, "Over 90 days"), "amount": Amount(amount, loc)}
                for bucket, amount in section.aging
            ],
            "invoices": [
                {
                    "number": line.number,
                    "issue_date": day(line.issue_date),
                    "due_date": day(line.due_date),
                    "amount": Amount(line.amount, loc),
                    "outstanding": Amount(line.outstanding, loc),
                    "days_overdue": line.days_overdue,
                    "pay_link": line.pay_link,
                }
                for line in section.lines
            ],
            "payments": [
                {
                    "paid_on": day(line.paid_on),
                    "kind": PAYMENT_WORDS.get(line.kind, line.kind.title()),
                    "invoice_number": line.invoice_number,
                    "amount": Amount(line.amount, loc),
                }
                for line in section.payments
            ],
        }
        for section in statement.sections
    ]
    return {
        "business_name": statement.business_name,
        "customer_name": statement.customer_name,
        "as_of": day(statement.as_of),
        "period_start": day(statement.period_start),
        "open_count": statement.open_count,
        "sections": sections,
    }


def statement_pdf(statement: Statement, locale: str) -> bytes:
    """The statement as a PDF document in `locale`."""
    return render_pdf("statement.html", statement_variables(statement, locale), locale=locale)


def statement_filename(statement: Statement) -> str:
    """A download name safe in any header and file system: letters, digits, dashes only (ASCII)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", statement.customer_name).strip("-")[:60] or "customer"
    return f"statement-{name}-{statement.as_of.isoformat()}.pdf"


class StatementMaker:
    """The statement emails' maker (connector.mail.reminders.Statements): the store's statement of a customer,
    its values for the `statement` email template and its PDF."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def for_email(
        self, connection_id: int, customer_external_id: str, as_of: date, locale: str, pay_link: PayLink
    ) -> tuple[dict[str, Any], bytes, str] | None:
        """(`extra.statement` values, the PDF, its file name) as of the customer's `as_of`, in `locale`."""
        found = load_statement_by_external_id(self.store, connection_id, customer_external_id, as_of, pay_link=pay_link)
        if found is None:
            return None
        _, statement = found
        return statement_variables(statement, locale), statement_pdf(statement, locale), statement_filename(statement)


# -- on demand: a person asks for the statement to be emailed ---------------------------------------------
STATEMENT_STEP = "statement"  # the step id of statements people ask for (not a cadence's step)
_REQUEST = re.compile(r"[0-9a-f]{32}")


def request_statement_email(
    store: Store,
    org_id: int,
    connection_id: int,
    customer_id: int,
    request_id: str,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> bool:
    """Plan the customer's statement email in the outbox, to go out like a reminder (send window, one a day,
    exactly once; archived in sent messages; on the customer's history). `request_id` is the form's own
    (32 hex): the same request sent twice plans one email. False when that request was already planned.
    InvalidInput when nothing is open (no statement worth emailing) or the request id is not one of ours."""
    row_id(customer_id, "customer_id", "customer")
    if not isinstance(request_id, str) or not _REQUEST.fullmatch(request_id):
        raise InvalidInput("the statement request is not one this page made; reload the page and try again", "request")
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        today = local_today(now, client_zones(uow, [connection])[connection.id])
        customer = uow.session.scalar(
            select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id)
        )
        if customer is None:
            raise UnknownRecord(f"no customer with id {customer_id} for client {connection_id}", "customer_id")
        rows = _read(uow, connection, customer, today, DEFAULT_LOCALE)
        if not rows.open_invoices:
            raise InvalidInput(f"{rows.source.customer_name} owes nothing: there is no statement to email", "customer")
        key = action_key(str(connection.id), customer.external_id, STATEMENT_STEP, None, ActionKind.REMIND, request_id)
        items = tuple(
            ReminderItem(
                invoice_external_id=invoice.external_id,
                number=invoice.number or invoice.external_id,
                due_date=invoice.due_date or today,
                balance=invoice.balance,
                total=invoice.total,
                days_overdue=(today - invoice.due_date).days if invoice.due_date else 0,
                step_id=STATEMENT_STEP,
                template=STATEMENT_TEMPLATE,
                member_key=key,
                statement=True,
            )
            for invoice in rows.open_invoices
        )
        action = Action(
            key=key,
            kind=ActionKind.REMIND,
            connection_id=str(connection.id),
            customer_external_id=customer.external_id,
            invoice_external_ids=tuple(item.invoice_external_id for item in items),
            scheduled_at=now,
            local_date=today,
            step_id=STATEMENT_STEP,
            rule=f"statement emailed on request of {actor}",
            template=STATEMENT_TEMPLATE,
            customer_name=rows.source.customer_name,
            items=items,
        )
        planned = plan_action(uow, connection.id, action)
        if planned:
            uow.session.add(
                Activity(
                    organization_id=org_id,
                    connection_id=connection.id,
                    kind="statement.requested",
                    subject=rows.source.customer_name[:200],
                    detail={"customer": customer.external_id, "action_key": key, "invoices": len(items)},
                    actor=actor[:200],
                    at=now,
                )
            )
            if connection.next_run_at is None or connection.next_run_at > now:
                connection.next_run_at = now  # the client's worker turn comes at the next tick
            uow.commit()
    return planned
