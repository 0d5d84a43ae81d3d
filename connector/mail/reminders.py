"""Reminder emails for planned `remind` actions: who gets them, what they say, how they thread.

Recipients are the customer's synced addresses (else the invoice's); a reminder about one invoice
threads under that invoice's earlier reminders, a grouped (statement-style) one under the
customer's. Amounts and dates are formatted for the customer's locale, and `today` is the date in
the customer's zone (their override, else the connection's).

What the email may say about earlier contact comes from the outbox, never from the step: `history`
counts the reminders actually sent (state `done`) to this customer that listed any of this
reminder's invoices, dated by when they went out. Each invoice's fee warning (the late fee this
reminder announces) comes from the action's items, matched by invoice id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.domain.actions import Action, ReminderItem
from connector.domain.model import ActionState, InvoiceSnapshot
from connector.errors import MailRejected, NudgeError
from connector.mail.message import Attachment, Mailer, OutgoingMessage
from connector.mail.rendering import DiscountOffer, InvoiceLine, ReminderContext, ReminderHistory, render_reminder
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
            history = _sent_before(uow.session, connection_id, action, ZoneInfo(zone_name))
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
        offered = next((item for item in action.items if item.offer is not None), None)
        offer = offered.offer if offered is not None else action.offer
        numbers = {invoice.external_id: invoice.number for invoice in invoices}
        offered_number = numbers.get(offered.invoice_external_id, offered.number) if offered is not None else ""
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
            discount=DiscountOffer(offer.percent, offer.discount, offer.pay_amount, offer.deadline, offered_number)
            if offer
            else None,
            has_attachment=bool(attachments),
            history=history,
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
        fee_warning=item.fee_warning if item else None,
    )


def _sent_before(session: Session, connection_id: int, action: Action, zone: ZoneInfo) -> ReminderHistory:
    """The reminders sent (state done) to the action's customer before it that listed any of its invoices.

    A reminder about one invoice names it in its row; a grouped one keeps the row's invoice empty and
    lists its invoices in the stored payload (`invoice_external_ids`, `items`). Planned, uncertain,
    failed or cancelled reminders never count: the customer may never have read them.
    """
    ids = {*action.invoice_external_ids, *(item.invoice_external_id for item in action.items)}
    rows = session.execute(
        select(ActionRow.invoice_external_id, ActionRow.payload, ActionRow.updated_at).where(
            ActionRow.connection_id == connection_id,
            ActionRow.kind == "remind",
            ActionRow.state == ActionState.DONE.value,
            ActionRow.key != action.key,
            ActionRow.customer_external_id == action.customer_external_id,
            or_(ActionRow.invoice_external_id.in_(ids), ActionRow.invoice_external_id == ""),
        )
    )
    days = sorted(
        _local_day(sent_at, zone)
        for invoice_id, payload, sent_at in rows
        if invoice_id in ids or not ids.isdisjoint(_listed_invoices(payload))
    )
    if not days:
        return ReminderHistory()
    return ReminderHistory(count=len(days), first_on=days[0], last_on=days[-1])


def _listed_invoices(payload: Any) -> set[str]:
    """The invoice ids a stored reminder payload lists; nothing for a payload of an unexpected shape."""
    if not isinstance(payload, Mapping):
        return set()
    listed = payload.get("invoice_external_ids")
    found = {value for value in listed if isinstance(value, str)} if isinstance(listed, list) else set()
    items = payload.get("items")
    if isinstance(items, list):
        found.update(
            item["invoice_external_id"]
            for item in items
            if isinstance(item, Mapping) and isinstance(item.get("invoice_external_id"), str)
        )
    return found


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The customer's calendar day of an instant read from the store (naive values are UTC)."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(zone).date()


def _optional(fetch: Callable[[], T]) -> T | None:
    """A nice-to-have from the provider (link, PDF): its absence never blocks the reminder."""
    try:
        return fetch()
    except NudgeError:
        return None
