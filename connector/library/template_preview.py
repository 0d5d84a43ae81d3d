"""An email template, as typed in the editor, rendered on a real open invoice of one of the organization's clients.

The template editor's preview: `open_invoices` lists a client's open invoices to choose from; `render_on_invoice`
checks the typed parts exactly as saving would (`check_template_body`: the bounded sandbox, then the sample
reminders), then renders them with the mailer's renderer (`render_reminder`, the same sandbox and budget) for
that invoice as a reminder sent today: the customer's name, the client's business as sender (its settings'
business name, else the ledger's name), the customer's locale (else the client's), today's date in the
customer's zone, the invoice's balance, dates and days overdue, and the reminders actually sent about it before.
The organization's other edited templates apply as they do when mail goes out. What only the ledger can give at
send time (the payment link, the attached PDF, a fee warning or discount the planner adds) is not in the preview.
Nothing is written; a refusal is InvalidInput naming the part and starting with the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from connector.domain.calendar import is_time_zone
from connector.domain.model import ActionState, InvoiceStatus
from connector.domain.money import Money
from connector.errors import InvalidInput, TemplateError, UnknownRecord
from connector.library.templates import builtin_template_body, check_template_body
from connector.mail.reminders import LibraryTemplates, sender_of
from connector.mail.rendering import (
    InvoiceLine,
    ReminderContext,
    ReminderHistory,
    RenderedReminder,
    render_reminder,
)
from connector.storage import UnitOfWork
from connector.storage.tables import Action, ClientSettings, Connection, Customer, Invoice

DEFAULT_LOCALE = "en_US"
MAX_ID = 2**31 - 1
MAX_CHOICES = 200
_PREFIX = re.compile(r"^template '[^']*' ")


@dataclass(frozen=True, slots=True)
class InvoiceChoice:
    """An open invoice a template can be previewed on (`id` is Nudge's row id)."""

    id: int
    number: str
    customer: str
    balance: Money
    due_date: date | None


def open_invoices(
    uow: UnitOfWork, organization_id: int, connection_id: int, limit: int = MAX_CHOICES
) -> list[InvoiceChoice]:
    """The client's open invoices with a balance, oldest due first (at most `limit`); none for another
    organization's client."""
    if not 0 < connection_id <= MAX_ID:
        return []
    rows = uow.session.scalars(
        select(Invoice)
        .join(Connection, Connection.id == Invoice.connection_id)
        .where(
            Connection.organization_id == organization_id,
            Invoice.connection_id == connection_id,
            Invoice.status == InvoiceStatus.OPEN.value,
            Invoice.balance > 0,
            Invoice.created_by_nudge.is_(False),
        )
        .order_by(Invoice.due_date, Invoice.number, Invoice.id)
        .limit(limit)
    )
    return [
        InvoiceChoice(row.id, row.number or row.external_id, row.customer_name, _money(row.balance, row.currency),
                      row.due_date)
        for row in rows
    ]  # fmt: skip


def render_on_invoice(
    uow: UnitOfWork,
    organization_id: int,
    connection_id: int,
    invoice_id: int,
    name: str,
    body: Mapping[str, Any],
    now: datetime,
    *,
    default_locale: str = DEFAULT_LOCALE,
) -> RenderedReminder:
    """Template `name` with the typed `body` ({part: source}) rendered as today's reminder about invoice
    `invoice_id` of client `connection_id`. InvalidInput (field: the part) when the template is refused;
    UnknownRecord (field "invoice_id") for an invoice that is not the client's or not in this organization."""
    parts = check_template_body(name, body)
    invoice, connection, customer, client = _invoice(uow, organization_id, connection_id, invoice_id)
    zone = ZoneInfo(_first_zone(customer.time_zone if customer else "", client.time_zone if client else "",
                                connection.time_zone))  # fmt: skip
    today = now.astimezone(zone).date()
    locale = (customer.locale if customer else "") or (client.locale if client else "") or default_locale
    balance = _money(invoice.balance, invoice.currency)
    due = invoice.due_date or today
    line = InvoiceLine(
        number=invoice.number or invoice.external_id,
        due_date=due,
        balance=balance,
        days_overdue=(today - due).days,
        total=_money(invoice.total, invoice.currency),
        issue_date=invoice.issue_date,
    )
    context = ReminderContext(
        customer_name=(customer.name if customer and customer.name else "") or invoice.customer_name,
        business_name=sender_of(connection, client).business_name,
        invoices=[line],
        today=today,
        history=_history(uow, invoice, zone),
    )
    overrides = {
        key: source
        for key, source in LibraryTemplates().for_organization(uow.session, organization_id).items()
        if not key.startswith(f"{name}/")
    }
    shipped = builtin_template_body(name)
    overrides.update({f"{name}/{part}": source for part, source in parts.items() if source != shipped.get(part)})
    try:
        return render_reminder(name, context, locale=locale, overrides=overrides)
    except TemplateError as exc:
        part = exc.template[len(name) + 1 :] if exc.template.startswith(f"{name}/") else "body.txt"
        reason = _PREFIX.sub("", exc.user_message)
        if exc.line:
            reason = re.sub(rf" on line {exc.line}(?=:|$)", "", reason)
        raise InvalidInput(f"line {exc.line}: {reason}" if exc.line else reason, part) from None


def _invoice(
    uow: UnitOfWork, organization_id: int, connection_id: int, invoice_id: int
) -> tuple[Invoice, Connection, Customer | None, ClientSettings | None]:
    if not (0 < connection_id <= MAX_ID and 0 < invoice_id <= MAX_ID):
        raise UnknownRecord("choose an open invoice of one of your clients", "invoice_id")
    found = uow.session.execute(
        select(Invoice, Connection)
        .join(Connection, Connection.id == Invoice.connection_id)
        .where(
            Invoice.id == invoice_id,
            Invoice.connection_id == connection_id,
            Connection.organization_id == organization_id,
        )
    ).first()
    if found is None:
        raise UnknownRecord("choose an open invoice of one of your clients", "invoice_id")
    invoice, connection = found
    customer = uow.session.scalars(
        select(Customer).where(
            Customer.connection_id == connection_id, Customer.external_id == invoice.customer_external_id
        )
    ).first()
    return invoice, connection, customer, uow.session.get(ClientSettings, connection_id)


def _history(uow: UnitOfWork, invoice: Invoice, zone: ZoneInfo) -> ReminderHistory:
    """The reminders sent (done) about the invoice: alone, or listed in a grouped reminder to its customer."""
    rows = uow.session.execute(
        select(Action.invoice_external_id, Action.payload, Action.updated_at).where(
            Action.connection_id == invoice.connection_id,
            Action.kind == "remind",
            Action.state == ActionState.DONE.value,
            Action.customer_external_id == invoice.customer_external_id,
            or_(Action.invoice_external_id == invoice.external_id, Action.invoice_external_id == ""),
        )
    )
    days = sorted(
        (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).astimezone(zone).date()
        for invoice_id, payload, sent in rows
        if invoice_id == invoice.external_id or invoice.external_id in _listed(payload)
    )
    return ReminderHistory(len(days), days[0], days[-1]) if days else ReminderHistory()


def _listed(payload: Any) -> set[str]:
    if not isinstance(payload, Mapping):
        return set()
    listed = payload.get("invoice_external_ids")
    return {value for value in listed if isinstance(value, str)} if isinstance(listed, list) else set()


def _money(amount: Decimal, currency: str) -> Money:
    return Money(Decimal(amount), currency)


def _first_zone(*names: str) -> str:
    return next((name for name in names if name and is_time_zone(name)), "UTC")
