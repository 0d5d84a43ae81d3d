"""Reminder emails for planned `remind` actions: who gets them, what they say, how they thread.

Recipients are the customer's synced addresses (else the invoice's); a reminder about one invoice
threads under that invoice's earlier reminders, a grouped (statement-style) one under the
customer's. Amounts and dates are formatted for the customer's locale, and `today` is the date in
the customer's zone (their override, else the connection's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select

from connector.domain.actions import Action, ReminderItem
from connector.domain.model import ActionState, InvoiceSnapshot
from connector.errors import MailRejected, NudgeError
from connector.mail.message import Attachment, Mailer, OutgoingMessage
from connector.mail.rendering import DiscountOffer, InvoiceLine, ReminderContext, render_reminder
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Customer

DEFAULT_LOCALE = "en_US"
T = TypeVar("T")


class MailReminderSender:
    """The executor's ReminderSender: renders the action's template and hands it to a Mailer."""

    def __init__(
        self,
        store: Store,
        mailer: Mailer,
        now: Callable[[], datetime],
        *,
        default_locale: str = DEFAULT_LOCALE,
        attach_pdf: bool = True,
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.now = now
        self.default_locale = default_locale
        self.attach_pdf = attach_pdf

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        """Send the reminder for `action` about the still-open `invoices`; returns the Message-ID."""
        connection_id = int(action.connection_id)
        with self.store.unit_of_work() as uow:
            connection = uow.session.get(Connection, connection_id)
            customer = uow.session.scalars(
                select(Customer).where(
                    Customer.connection_id == connection_id, Customer.external_id == action.customer_external_id
                )
            ).first()
            single = len(action.invoice_external_ids) == 1
            thread_key = (
                f"{connection_id}:invoice:{action.invoice_external_ids[0]}"
                if single
                else f"{connection_id}:customer:{action.customer_external_id}"
            )
            earlier = list(
                uow.session.scalars(
                    select(ActionRow.key)
                    .where(
                        ActionRow.connection_id == connection_id,
                        ActionRow.kind == "remind",
                        ActionRow.state == ActionState.DONE.value,
                        ActionRow.customer_external_id == action.customer_external_id,
                        ActionRow.invoice_external_id == (action.invoice_external_ids[0] if single else ""),
                    )
                    .order_by(ActionRow.updated_at, ActionRow.id)
                )
            )
            business = connection.name if connection is not None else ""
            zone_name = (customer.time_zone if customer and customer.time_zone else None) or (
                connection.time_zone if connection else "UTC"
            )
            locale = (customer.locale if customer and customer.locale else "") or self.default_locale
            to = list(customer.emails) if customer and customer.emails else []
            cc = list(customer.cc_emails) if customer and customer.cc_emails else []
        if not to:
            to = sorted({address for invoice in invoices for address in invoice.emails})
        if not to:
            raise MailRejected(
                f"customer {action.customer_name or action.customer_external_id} has no email address in the ledger"
            )
        items = {item.invoice_external_id: item for item in action.items}
        lines = []
        links: dict[str, str | None] = {}
        for invoice in invoices:
            links[invoice.external_id] = _optional(partial(adapter.payment_link, invoice))
            lines.append(_line(invoice, items.get(invoice.external_id), links[invoice.external_id], self.now()))
        offer = next((item.offer for item in action.items if item.offer is not None), None) or action.offer
        attachments: list[Attachment] = []
        if self.attach_pdf and len(invoices) == 1:
            pdf = _optional(partial(adapter.invoice_pdf, invoices[0]))
            if pdf:
                attachments.append(Attachment(f"Invoice {invoices[0].number}.pdf", pdf, "application/pdf"))
        context = ReminderContext(
            customer_name=action.customer_name or (invoices[0].customer_name if invoices else ""),
            business_name=business,
            invoices=lines,
            today=self.now().astimezone(ZoneInfo(zone_name)).date(),
            payment_link=links.get(invoices[0].external_id) if len(invoices) == 1 else None,
            discount=DiscountOffer(offer.percent, offer.discount, offer.pay_amount, offer.deadline) if offer else None,
            has_attachment=bool(attachments),
        )
        template = action.template or (action.items[0].template if action.items else "") or "gentle_nudge"
        rendered = render_reminder(template, context, locale=locale)
        receipt = self.mailer.send(
            OutgoingMessage(
                to=to,
                cc=cc,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                thread_key=thread_key,
                message_key=action.key,
                earlier_keys=earlier,
                attachments=attachments,
            )
        )
        return receipt.message_id


def _line(invoice: InvoiceSnapshot, item: ReminderItem | None, link: str | None, now: datetime) -> InvoiceLine:
    due = invoice.due_date or (item.due_date if item else now.date())
    return InvoiceLine(
        number=invoice.number,
        due_date=due,
        balance=invoice.balance,  # what is owed now, not what was owed when the action was planned
        days_overdue=(now.date() - due).days,
        payment_link=link,
        total=invoice.total,
        issue_date=invoice.issue_date,
    )


def _optional(fetch: Callable[[], T]) -> T | None:
    """A nice-to-have from the provider (link, PDF): its absence never blocks the reminder."""
    try:
        return fetch()
    except NudgeError:
        return None
