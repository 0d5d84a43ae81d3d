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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.documents.pdf import render_pdf
from connector.domain.model import InvoiceStatus
from connector.domain.money import Money
from connector.errors import UnknownRecord
from connector.mail.rendering import Amount, format_day, parse_locale
from connector.receivables.common import client_zones, local_today, row_id, visible_connection
from connector.receivables.invoices import BUCKETS, bucket_of
from connector.storage import Store, UnitOfWork
from connector.storage.tables import ClientSettings, Connection, Customer, Invoice, Payment

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


_LINK = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)


def _safe_link(link: str | None) -> str | None:
    """A pay link fit to print and click: http(s), one line, no quotes or angle brackets (else left out)."""
    if not link or len(link) > 2000 or not _LINK.match(link):
        return None
    return link


# -- reading it from the store ---------------------------------------------------------------------------
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


def load_statement(
    store: Store,
    org_id: int,
    connection_id: int,
    customer_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    pay_links: Mapping[str, str] | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> tuple[StatementSource, Statement]:
    """The statement of customer `customer_id` (row id) of the client as of the client's local today, and who it
    is for; UnknownRecord outside what the member may see (as for an id that never existed)."""
    row_id(customer_id, "customer_id", "customer")
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        today = local_today(now, client_zones(uow, [connection])[connection.id])
        customer = uow.session.scalar(
            select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id)
        )
        if customer is None:
            raise UnknownRecord(f"no customer with id {customer_id} for client {connection_id}", "customer_id")
        return statement_of(uow, connection.id, connection.name, customer, today, pay_links, default_locale)


def load_statement_by_external_id(
    store: Store,
    connection_id: int,
    customer_external_id: str,
    as_of: date,
    *,
    pay_links: Mapping[str, str] | None = None,
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
        return statement_of(uow, connection.id, connection.name, customer, as_of, pay_links, default_locale)


def statement_of(
    uow: UnitOfWork,
    connection_id: int,
    ledger_name: str,
    customer: Customer,
    as_of: date,
    pay_links: Mapping[str, str] | None,
    default_locale: str,
) -> tuple[StatementSource, Statement]:
    """The statement of `customer` as of `as_of`: two queries (invoices, payments) and the client's settings."""
    client = uow.session.get(ClientSettings, connection_id)
    business = (client.business_name if client else "") or ledger_name
    locale = customer.locale or (client.locale if client else "") or default_locale
    invoices = list(
        uow.session.scalars(
            select(Invoice).where(
                Invoice.connection_id == connection_id,
                Invoice.customer_external_id == customer.external_id,
                Invoice.status == InvoiceStatus.OPEN.value,
            )
        )
    )
    numbers = dict(
        uow.session.execute(
            select(Invoice.external_id, Invoice.number).where(
                Invoice.connection_id == connection_id, Invoice.customer_external_id == customer.external_id
            )
        ).all()
    )
    start = as_of - timedelta(days=PERIOD_DAYS - 1)
    payments = uow.session.scalars(
        select(Payment).where(
            Payment.connection_id == connection_id,
            Payment.customer_external_id == customer.external_id,
            Payment.paid_on >= start,
            Payment.paid_on <= as_of,
        )
    )
    statement = build_statement(
        business_name=business,
        customer_name=customer.name or customer.external_id,
        customer_external_id=customer.external_id,
        invoices=[
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
        ],
        payments=[
            PaymentRecord(
                row.kind,
                Money.of(row.amount, row.currency),
                row.paid_on,
                (numbers.get(row.invoice_external_id) or row.invoice_external_id) if row.invoice_external_id else "",
                row.voided,
            )
            for row in payments
        ],
        as_of=as_of,
        pay_links=pay_links,
    )
    source = StatementSource(
        connection_id, customer.id, customer.external_id, statement.customer_name, business, locale, as_of
    )
    return source, statement


# -- what documents and emails show ----------------------------------------------------------------------
BUCKET_LABELS = {"current": "Current", "1-30": "1–30 days", "31-60": "31–60 days", "61-90": "61–90 days"}


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
