"""Reminder emails for planned `remind` actions: who gets them, what they say, how they thread.

Reminders come from the client's business (issue 14): the From display name is the client's `from_name`,
else its `business_name`, else the connection's name; Reply-To is the client's `reply_to`, else the install's
`mail.reply_to`; the From ADDRESS is always the install's `mail.from_address` (SPF and DKIM belong to the
install's domain). Templates are the organization's library templates where they differ from the built-in
files. Recipients are the customer's own (`recipients_to`/`recipients_cc`) where people set them, else the
synced addresses (else the invoice's); a reminder about one invoice threads under that invoice's earlier
reminders, a grouped (statement-style) one under the customer's. Amounts and dates are formatted for the
customer's locale (else the client's, else the default), and `today` is the date in the customer's zone
(their override, else the client's, else the connection's).

With a two-step mailer (SMTP, maildir) the message's exact bytes are kept (connector.mail.archive) once they
are prepared and before they are handed over; the executor settles that copy with the action's outcome.

Every reminder links to the customer's own page (`customer_page`: `/c/<signed token>`, docs/customer-page.md) where
they see their open invoices and can promise a date, ask for a plan, dispute an invoice or say it is paid.

When `mail.reply_address` is set, Reply-To is instead the thread's own signed reply address (issue 17,
docs/replies.md), so a customer's reply comes back to Nudge filed under the customer and thread.

What the email may say about earlier contact comes from the outbox, never from the step: `history`
counts the reminders actually sent (state `done`) to this customer that listed any of this
reminder's invoices, dated by when they went out. Each invoice's fee warning (the late fee this
reminder announces) comes from the action's items, matched by invoice id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from threading import Lock
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.domain.actions import Action, ReminderItem
from connector.domain.calendar import is_time_zone
from connector.domain.model import ActionState, InvoiceSnapshot
from connector.errors import MailRejected, NudgeError
from connector.mail import archive
from connector.mail.archive import Concerning
from connector.mail.customer_link import CustomerLinks
from connector.mail.inbound.reply_address import ReplyAddresses, ReplyThread, thread_hash
from connector.mail.message import Attachment, Mailer, OutgoingMessage, TwoStepMailer
from connector.mail.rendering import (
    TEMPLATE_DIR,
    DiscountOffer,
    InvoiceLine,
    ReminderContext,
    ReminderHistory,
    render_reminder,
)
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import ClientSettings, Connection, Customer, LibraryItem, LibraryVersion

DEFAULT_LOCALE = "en_US"
TEMPLATE_KIND = "template"  # LibraryItem.kind of an email template (connector.library.resolve.TEMPLATE)
TEMPLATE_PARTS = ("subject.txt", "body.txt", "body.html")
T = TypeVar("T")
MAX_STATEMENT_LINKS = 100  # pay links asked of the provider for one statement (one call each)


class Statements(Protocol):
    """Builds a customer's statement for a statement email (connector.receivables.statements.StatementMaker)."""

    def for_email(
        self,
        connection_id: int,
        customer_external_id: str,
        as_of: date,
        locale: str,
        pay_link: Callable[[InvoiceSnapshot], str | None],
    ) -> tuple[dict[str, Any], bytes, str] | None:
        """(the template's `extra.statement` values, the PDF, its file name); None: no such customer."""
        ...


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
        reply_addresses: ReplyAddresses | None = None,
        statements: Statements | None = None,
        customer_links: CustomerLinks | None = None,
    ) -> None:
        self.store = store
        self.statements = statements
        self.mailer = mailer
        self.now = now
        self.default_locale = default_locale
        self.attach_pdf = attach_pdf
        self.templates = LibraryTemplates()
        self.reply_addresses = reply_addresses  # per-thread Reply-To (mail.reply_address), None: as configured
        self.customer_links = customer_links  # the customer's own page (docs/customer-page.md), None: no link

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
            client = uow.session.get(ClientSettings, connection_id)
            sender = sender_of(connection, client)
            zone_name = _first_zone(
                customer.time_zone if customer else "",
                client.time_zone if client else "",
                connection.time_zone if connection else "",
            )
            locale = (
                (customer.locale if customer and customer.locale else "")
                or (client.locale if client and client.locale else "")
                or self.default_locale
            )
            to, cc = recipients_of(customer)
            history = _sent_before(uow.session, connection_id, action, ZoneInfo(zone_name))
            overrides = self.templates.for_organization(uow.session, connection.organization_id) if connection else {}
            reply_to = sender.reply_to
            page_url = (
                self.customer_links.url(connection_id, customer.id, self.now())
                if self.customer_links is not None and customer is not None
                else None
            )
            if self.reply_addresses is not None and connection is not None and customer is not None:
                thread = ReplyThread(connection.organization_id, connection_id, customer.id, thread_hash(thread_key))
                reply_to = self.reply_addresses.address(thread)  # replies come back to Nudge, filed by thread
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
        extra: dict[str, Any] = {}
        today = self.now().astimezone(ZoneInfo(zone_name)).date()
        if any(item.statement for item in action.items):
            extra["statement"] = self._statement(action, today, locale, adapter, attachments)
        elif self.attach_pdf and len(invoices) == 1:
            pdf = _optional(partial(adapter.invoice_pdf, invoices[0]))
            if pdf:
                attachments.append(Attachment(f"Invoice {invoices[0].number}.pdf", pdf, "application/pdf"))
        context = ReminderContext(
            customer_name=action.customer_name or (invoices[0].customer_name if invoices else ""),
            business_name=sender.business_name,
            invoices=lines,
            today=today,
            payment_link=links.get(invoices[0].external_id) if len(invoices) == 1 else None,
            discount=DiscountOffer(offer.percent, offer.discount, offer.pay_amount, offer.deadline, offered_number)
            if offer
            else None,
            has_attachment=bool(attachments),
            history=history,
            extra=extra,
            customer_page=page_url,
            broken_promise=action.broken_promise,
        )
        template = action.template or (action.items[0].template if action.items else "") or "gentle_nudge"
        rendered = render_reminder(template, context, locale=locale, overrides=overrides)
        message = OutgoingMessage(
            to=to,
            cc=cc,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            thread_key=thread_key,
            message_key=action.key,
            earlier_keys=earlier,
            attachments=attachments,
            from_name=sender.from_name,
            reply_to=reply_to,
        )
        if not isinstance(self.mailer, TwoStepMailer):  # a mailer that cannot show its bytes first: no copy kept
            return self.mailer.send(message).message_id
        prepared = self.mailer.prepare(message)
        about = Concerning(
            action.key,
            connection_id,
            action.customer_external_id,
            [invoice.external_id for invoice in invoices],
        )
        archive.keep(self.store, prepared, about, mailer=self.mailer.name, at=self.now())
        return self.mailer.deliver(prepared).message_id

    def _statement(
        self, action: Action, today: date, locale: str, adapter: AccountingAdapter, attachments: list[Attachment]
    ) -> dict[str, Any]:
        """The customer's statement as of `today` for a statement email: its values, its PDF attached."""
        if self.statements is None:
            raise MailRejected("statement emails are not set up in this install (no statement maker)")
        asked = 0

        def pay_link(invoice: InvoiceSnapshot) -> str | None:
            nonlocal asked
            asked += 1
            return _optional(partial(adapter.payment_link, invoice)) if asked <= MAX_STATEMENT_LINKS else None

        made = self.statements.for_email(
            int(action.connection_id), action.customer_external_id, today, locale, pay_link
        )
        if made is None:
            raise MailRejected(f"customer {action.customer_name or action.customer_external_id} is not in the store")
        values, pdf, filename = made
        attachments.append(Attachment(filename, pdf, "application/pdf"))
        return values


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a client's reminders come from, as customers see it (the From ADDRESS stays the install's)."""

    business_name: str  # `business_name` in templates
    from_name: str  # the From display name ("" → mail.from_name)
    reply_to: str  # "" → mail.reply_to


def sender_of(connection: Connection | None, client: ClientSettings | None) -> Sender:
    """The client's business as sender: its settings' names and Reply-To, else the connection's name. The From
    address is never the client's: SPF and DKIM are the install's domain's, so only the name and Reply-To change."""
    ledger_name = connection.name if connection is not None else ""
    business = (client.business_name if client else "") or ledger_name
    # The ledger's company name is hostile input: a line break in it must not fail every reminder as a header
    # injection, so the display name is one line (whitespace runs, line breaks included, become one space).
    from_name = " ".join(((client.from_name if client else "") or business).split())
    return Sender(business, from_name, (client.reply_to if client else "") or "")


def recipients_of(customer: Customer | None) -> tuple[list[str], list[str]]:
    """(to, cc): the customer's own recipients where people set them (`recipients_to`/`recipients_cc`), else the
    ledger's addresses; `to` may come back empty (the invoices' addresses are the last resort)."""
    if customer is None:
        return [], []
    to = _addresses(customer.recipients_to) or _addresses(customer.emails)
    cc = _addresses(customer.recipients_cc) if customer.recipients_cc is not None else _addresses(customer.cc_emails)
    return to, cc


def _addresses(value: Any) -> list[str]:
    """The non-empty strings of a stored address list (anything else left out)."""
    if not isinstance(value, list):
        return []
    return [address.strip() for address in value if isinstance(address, str) and address.strip()]


class LibraryTemplates:
    """An organization's edited templates (library items of kind template, current versions) as `render_reminder`
    overrides, keeping only the parts that differ from the built-in files: an organization whose library holds
    the starter copies renders from the shared, already compiled built-ins. A version never changes once
    written, so what it contributes is cached by version id; each send asks only which versions are current."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._parts: dict[int, dict[str, str]] = {}
        self._lock = Lock()

    def for_organization(self, session: Session, organization_id: int) -> dict[str, str]:
        """{"<template>/<part>": source} of every part the organization edited."""
        rows = session.execute(
            select(LibraryItem.name, LibraryItem.current_version_id).where(
                LibraryItem.organization_id == organization_id,
                LibraryItem.kind == TEMPLATE_KIND,
                LibraryItem.deleted_at.is_(None),
                LibraryItem.current_version_id.is_not(None),
            )
        ).all()
        current = [(name, version_id) for name, version_id in rows if version_id is not None]
        if not current:
            return {}
        with self._lock:
            missing = [version_id for _, version_id in current if version_id not in self._parts]
        if missing:
            bodies: dict[int, Any] = dict(
                session.execute(
                    select(LibraryVersion.id, LibraryVersion.body).where(LibraryVersion.id.in_(missing))
                ).all()
            )
            with self._lock:
                if len(self._parts) + len(missing) > self.capacity:
                    self._parts.clear()
                for name, version_id in current:
                    if version_id in bodies:
                        self._parts[version_id] = _edited_parts(name, bodies[version_id])
        overrides: dict[str, str] = {}
        with self._lock:
            for _, version_id in current:
                overrides.update(self._parts.get(version_id, {}))
        return overrides


def _edited_parts(name: str, body: Any) -> dict[str, str]:
    """The parts of template `name`'s body that differ from the built-in file of the same name."""
    if not isinstance(body, Mapping) or not name or "/" in name or name.startswith((".", "_")):
        return {}
    return {
        f"{name}/{part}": source
        for part, source in body.items()
        if part in TEMPLATE_PARTS and isinstance(source, str) and source != _built_in(name, part)
    }


@functools.lru_cache(maxsize=128)
def _built_in(name: str, part: str) -> str | None:
    """The source of the built-in template part (None when the install ships no such part)."""
    path = TEMPLATE_DIR / name / part
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _first_zone(*names: str) -> str:
    """The first of `names` that is a known IANA zone (UTC when none is)."""
    for name in names:
        if name and is_time_zone(name):
            return name
    return "UTC"


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
