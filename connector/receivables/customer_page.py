"""The customer page (issue 17, docs/customer-page.md): what one customer of one client sees and may do, no sign-in.

The page is reached through a signed link (connector.mail.customer_link) naming the client (connection) and the
customer (row id); every function here takes those two and looks nothing up beyond that customer: an invoice id
that is not one of the customer's open invoices of that client is UnknownRecord, the same answer as for an id
that never existed.

What a customer can do, each checked field by field (InvalidInput naming the field, in words a customer reads):

- promise to pay by a date (optionally an amount): the customer's promise override, so the planner waits until
  the date and its grace days; a date in the past or more than `PROMISE_MAX_DAYS` ahead is refused;
- ask for a payment plan on an invoice: proposed installments (dates and amounts adding up to the balance, as
  connector.library.payment_plans checks them); a request waits in the inbox where a person approves it (as
  proposed or edited: the plan is recorded with the payment-plan machinery), or declines it; the customer is told
  by email either way;
- dispute an invoice with a reason: the invoice's dispute override (no reminders, no fees for it) and an inbox
  item;
- say an invoice is already paid, with the date and a reference: reminders about it hold `PAID_HOLD_DAYS` days
  (the invoice's pause) while the payment is looked for in the ledger; the inbox item stays while the invoice is
  still open in the ledger and goes on its own once the payment has been synced.

Each is a `customer_requests` row and an activity on the customer's / invoice's timeline (kind
`customer_page.<kind>`, its subject the sentence shown); where the client turned on `customer_page_ledger_notes`,
also a ledger note on the invoice, put in the outbox under a key made from the request's id (exactly once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.domain.actions import KEY_LENGTH, Action, ActionKind
from connector.domain.model import InvoiceSnapshot
from connector.domain.money import Money
from connector.errors import ChangeRefused, InvalidInput, UnknownRecord
from connector.library import inputs
from connector.library.overrides import update_customer_overrides, update_invoice_override
from connector.library.payment_plans import ACTIVE, check_installments, create_plan, open_balance, propose_plan
from connector.library.settings import InstallDefaults, client_today
from connector.mail.message import Mailer, OutgoingMessage
from connector.mail.reminders import recipients_of, sender_of
from connector.mail.rendering import DEFAULT_LOCALE, format_day, format_money
from connector.outbox.planning import plan_action, snapshot_of
from connector.receivables.common import visible
from connector.storage import Store, UnitOfWork
from connector.storage.tables import (
    ClientSettings,
    Connection,
    Customer,
    CustomerRequest,
    Invoice,
    InvoiceOverride,
    PaymentPlan,
)

PROMISE = "promise"
PLAN = "plan"
DISPUTE = "dispute"
PAID = "paid"
KINDS = (PROMISE, PLAN, DISPUTE, PAID)
OPEN = "open"  # waits for a person
RECORDED = "recorded"  # a promise: nothing to decide
APPROVED = "approved"
DECLINED = "declined"
HANDLED = "handled"
ACTOR = "the customer (their page)"
PROMISE_MAX_DAYS = 60  # a promise further out is a plan: ask for one
PAID_HOLD_DAYS = 5  # reminders about an invoice said to be paid hold this long while the payment is looked for
PAID_MAX_AGE_DAYS = 366  # a payment said to be older than this is a question for a person, not this form
PLAN_MAX_INSTALLMENTS = 24
PLAN_MAX_DAYS = 730  # the last installment of a requested plan at most two years ahead
REFERENCE_MAX = 200
RECENT_REQUESTS = 20  # the customer's own requests shown on their page


@dataclass(frozen=True, slots=True)
class PageInvoice:
    """One open invoice as the customer sees it on their page."""

    id: int
    external_id: str
    number: str
    issue_date: date | None
    due_date: date | None
    total: Money
    balance: Money
    days_overdue: int
    disputed: bool
    on_plan: bool  # an active payment plan
    plan_requested: bool  # a plan request waits for a person
    paid_reported: bool  # the customer said it is paid and it is still open


@dataclass(frozen=True, slots=True)
class RequestView:
    """One request as stored: what, about which invoice (number), its state and what the customer gave."""

    id: int
    kind: str
    state: str
    invoice_external_id: str
    invoice_number: str
    detail: Mapping[str, Any]
    hold_until: date | None
    created_at: datetime
    decided_by: str = ""
    decision_note: str = ""


@dataclass(frozen=True)
class CustomerPage:
    """Everything the customer page shows: who from, to whom, the open invoices, the promise, the requests."""

    organization_id: int
    connection_id: int
    customer_id: int
    customer_external_id: str
    customer_name: str
    business_name: str
    locale: str
    today: date
    invoices: tuple[PageInvoice, ...]
    promise_until: date | None
    promise_amount: Money | None
    requests: tuple[RequestView, ...]


# -- reading ------------------------------------------------------------------------------------------------
def _customer(uow: UnitOfWork, connection_id: int, customer_id: int) -> tuple[Connection, Customer]:
    """The customer of the client, or UnknownRecord (a link naming a customer since removed, or a client gone)."""
    connection = uow.session.get(Connection, connection_id) if inputs.is_row_id(connection_id) else None
    customer = (
        uow.session.scalar(select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id))
        if connection is not None and inputs.is_row_id(customer_id)
        else None
    )
    if connection is None or customer is None:
        raise UnknownRecord("no such customer", "customer_id")
    return connection, customer


def _open_invoices(uow: UnitOfWork, connection_id: int, customer: Customer) -> list[Invoice]:
    rows = uow.session.scalars(
        select(Invoice)
        .where(
            Invoice.connection_id == connection_id,
            Invoice.customer_external_id == customer.external_id,
            Invoice.status == "open",
            Invoice.balance > 0,
        )
        .order_by(Invoice.due_date, Invoice.number, Invoice.id)
    )
    return list(rows)


def customer_invoice(uow: UnitOfWork, connection_id: int, customer_id: int, invoice_id: Any) -> Invoice:
    """Invoice `invoice_id` (row id) when it is one of the customer's OPEN invoices of the client; UnknownRecord
    for anything else (another customer's, another client's, paid, unknown: the same answer)."""
    _, customer = _customer(uow, connection_id, customer_id)
    row = (
        uow.session.scalar(
            select(Invoice).where(
                Invoice.id == invoice_id,
                Invoice.connection_id == connection_id,
                Invoice.customer_external_id == customer.external_id,
                Invoice.status == "open",
                Invoice.balance > 0,
            )
        )
        if inputs.is_row_id(invoice_id)
        else None
    )
    if row is None:
        raise UnknownRecord(f"no open invoice {invoice_id} of this customer", "invoice_id")
    return row


def invoice_for_documents(store: Store, connection_id: int, customer_id: int, invoice_id: Any) -> InvoiceSnapshot:
    """The snapshot of one of the customer's open invoices (its PDF and pay link come from the ledger)."""
    with store.unit_of_work() as uow:
        return snapshot_of(customer_invoice(uow, connection_id, customer_id, invoice_id))


def _locale(customer: Customer, client: ClientSettings | None, default_locale: str) -> str:
    return customer.locale or (client.locale if client is not None else "") or default_locale


def load_page(
    store: Store, connection_id: int, customer_id: int, now: datetime, *, default_locale: str = DEFAULT_LOCALE
) -> CustomerPage:
    """What the customer's page shows (UnknownRecord when the link's customer or client is gone)."""
    with store.unit_of_work() as uow:
        connection, customer = _customer(uow, connection_id, customer_id)
        client = uow.session.get(ClientSettings, connection_id)
        today = client_today(uow, connection, now)
        invoices = _open_invoices(uow, connection_id, customer)
        ids = [row.external_id for row in invoices]
        disputed = set(
            uow.session.scalars(
                select(InvoiceOverride.invoice_external_id).where(
                    InvoiceOverride.connection_id == connection_id,
                    InvoiceOverride.invoice_external_id.in_(ids),
                    InvoiceOverride.dispute.is_(True),
                )
            )
        )
        planned = set(
            uow.session.scalars(
                select(PaymentPlan.invoice_external_id).where(
                    PaymentPlan.connection_id == connection_id,
                    PaymentPlan.invoice_external_id.in_(ids),
                    PaymentPlan.state == ACTIVE,
                )
            )
        )
        request_rows = list(
            uow.session.scalars(
                select(CustomerRequest)
                .where(CustomerRequest.customer_id == customer.id)
                .order_by(CustomerRequest.created_at.desc(), CustomerRequest.id.desc())
                .limit(RECENT_REQUESTS)
            )
        )
        numbers = _numbers(uow, connection_id, {row.invoice_external_id for row in request_rows})
        open_kinds = {(row.kind, row.invoice_external_id) for row in request_rows if row.state == OPEN}
        page_invoices = tuple(
            PageInvoice(
                id=row.id,
                external_id=row.external_id,
                number=row.number or row.external_id,
                issue_date=row.issue_date,
                due_date=row.due_date,
                total=Money.of(row.total, row.currency),
                balance=Money.of(row.balance, row.currency),
                days_overdue=max((today - row.due_date).days, 0) if row.due_date else 0,
                disputed=row.external_id in disputed,
                on_plan=row.external_id in planned,
                plan_requested=(PLAN, row.external_id) in open_kinds,
                paid_reported=(PAID, row.external_id) in open_kinds,
            )
            for row in invoices
        )
        promise = (
            Money.of(customer.promise_amount, customer.promise_currency)
            if customer.promise_amount is not None and customer.promise_currency
            else None
        )
        return CustomerPage(
            organization_id=connection.organization_id,
            connection_id=connection_id,
            customer_id=customer.id,
            customer_external_id=customer.external_id,
            customer_name=customer.name or customer.external_id,
            business_name=sender_of(connection, client).business_name,
            locale=_locale(customer, client, default_locale),
            today=today,
            invoices=page_invoices,
            promise_until=customer.promise_to_pay_until
            if customer.promise_to_pay_until and customer.promise_to_pay_until >= today
            else None,
            promise_amount=promise,
            requests=tuple(_request_view(row, numbers) for row in request_rows),
        )


def _numbers(uow: UnitOfWork, connection_id: int, external_ids: Collection[str]) -> dict[str, str]:
    wanted = sorted(value for value in external_ids if value)
    if not wanted:
        return {}
    rows = uow.session.execute(
        select(Invoice.external_id, Invoice.number).where(
            Invoice.connection_id == connection_id, Invoice.external_id.in_(wanted)
        )
    )
    return {external_id: number or external_id for external_id, number in rows}


def _request_view(row: CustomerRequest, numbers: Mapping[str, str]) -> RequestView:
    return RequestView(
        id=row.id,
        kind=row.kind,
        state=row.state,
        invoice_external_id=row.invoice_external_id,
        invoice_number=numbers.get(row.invoice_external_id, row.invoice_external_id),
        detail=dict(row.detail or {}),
        hold_until=row.hold_until,
        created_at=row.created_at,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
    )


# -- what the customer does ---------------------------------------------------------------------------------
def promise_to_pay(
    store: Store, connection_id: int, customer_id: int, *, until: Any, amount: Any, now: datetime
) -> RequestView:
    """The customer promises to pay by `until` (ISO date), optionally `amount` (text, in what they owe)."""
    with store.unit_of_work() as uow:
        connection, _ = _customer(uow, connection_id, customer_id)
        today = client_today(uow, connection, now)
        org_id = connection.organization_id
    day = _day_between(until, "promise_date", today, today + timedelta(days=PROMISE_MAX_DAYS), "the date")
    if day is None:
        raise InvalidInput("say by which date you will pay", "promise_date")
    if not _invoice_rows(store, connection_id, customer_id):
        raise InvalidInput("you have no open invoice with us to promise a payment for", "promise_date")
    given = amount.strip() if isinstance(amount, str) else amount
    view = update_customer_overrides(
        store,
        org_id,
        connection_id,
        customer_id,
        {"promise_to_pay_until": day, "promise_amount": given or None, "promise_currency": ""},
        ACTOR,
        now,
    )
    promised = view.overrides.get("promise_amount")
    currency = view.overrides.get("promise_currency") or ""
    money = Money.of(Decimal(str(promised)), str(currency)) if promised else None
    said = f"promised to pay {_money(money)}by {day.isoformat()}" if money else f"promised to pay by {day.isoformat()}"
    detail = {"until": day.isoformat(), "amount": str(money.amount) if money else "", "currency": currency}
    return _record(store, connection_id, customer_id, PROMISE, RECORDED, None, detail, day, said, now)


def _money(money: Money | None) -> str:
    return f"{money.amount} {money.currency} " if money is not None else ""


def proposed_installments(
    store: Store,
    connection_id: int,
    customer_id: int,
    invoice_id: Any,
    *,
    count: int,
    first: Any,
    every: str,
    now: datetime,
) -> list[dict[str, str]]:
    """`count` equal installments of the invoice's balance (the remainder on the last), the first on `first`, then
    every week, fortnight or month: what the page's plan form asks for (connector.library.payment_plans)."""
    with store.unit_of_work() as uow:
        connection, _ = _customer(uow, connection_id, customer_id)
        invoice = customer_invoice(uow, connection_id, customer_id, invoice_id)
        proposal = propose_plan(
            uow, connection.organization_id, connection_id, invoice.id, count=count, first=first, every=every, now=now
        )
    return [{"due_date": item.due_date.isoformat(), "amount": item.amount} for item in proposal.installments]


def ask_for_plan(
    store: Store, connection_id: int, customer_id: int, invoice_id: Any, *, installments: Any, now: datetime
) -> RequestView:
    """The customer proposes installments for an invoice: a request for a person to approve, edit or decline."""
    with store.unit_of_work() as uow:
        connection, _ = _customer(uow, connection_id, customer_id)
        invoice = customer_invoice(uow, connection_id, customer_id, invoice_id)
        today = client_today(uow, connection, now)
        if isinstance(installments, Sequence) and len(installments) > PLAN_MAX_INSTALLMENTS:
            raise InvalidInput(f"propose at most {PLAN_MAX_INSTALLMENTS} installments", "installments")
        balance = open_balance(invoice)
        checked = check_installments(installments, balance, today)
        if checked[-1][0] > today + timedelta(days=PLAN_MAX_DAYS):
            raise InvalidInput(
                f"the last installment must be within {PLAN_MAX_DAYS // 365} years of today", "installments"
            )
        active = uow.session.scalar(
            select(PaymentPlan.id).where(
                PaymentPlan.connection_id == connection_id,
                PaymentPlan.invoice_external_id == invoice.external_id,
                PaymentPlan.state == ACTIVE,
            )
        )
        if active is not None:
            raise ChangeRefused(f"invoice {invoice.number} already has a payment plan")
        if _open_request(uow, customer_id, PLAN, invoice.external_id) is not None:
            raise ChangeRefused(f"you already asked for a plan for invoice {invoice.number}: we will answer soon")
        number, ledger_id, row_id = invoice.number or invoice.external_id, invoice.external_id, invoice.id
    detail = {
        "installments": [{"due_date": d.isoformat(), "amount": str(a)} for d, a in checked],
        "currency": balance.currency,
        "invoice_id": row_id,
    }
    said = f"asked for a payment plan on invoice {number}: {len(checked)} installments, the last on {checked[-1][0]}"
    return _record(store, connection_id, customer_id, PLAN, OPEN, ledger_id, detail, None, said, now)


def dispute_invoice(
    store: Store, connection_id: int, customer_id: int, invoice_id: Any, *, reason: Any, now: datetime
) -> RequestView:
    """The customer disputes an invoice: no reminders and no fees for it until a person ends the dispute."""
    text = inputs.text(reason, "reason", max_length=inputs.REASON_MAX, single_line=False)
    if not text:
        raise InvalidInput("say what is wrong with the invoice", "reason")
    with store.unit_of_work() as uow:
        connection, _ = _customer(uow, connection_id, customer_id)
        invoice = customer_invoice(uow, connection_id, customer_id, invoice_id)
        if _open_request(uow, customer_id, DISPUTE, invoice.external_id) is not None:
            raise ChangeRefused(f"you already disputed invoice {invoice.number}: we are looking into it")
        org_id, number, ledger_id, row_id = (
            connection.organization_id,
            invoice.number or invoice.external_id,
            invoice.external_id,
            invoice.id,
        )
    update_invoice_override(store, org_id, connection_id, row_id, {"dispute": True, "dispute_reason": text}, ACTOR, now)
    said = f"disputed invoice {number}: {text}"
    detail = {"reason": text, "invoice_id": row_id}
    return _record(store, connection_id, customer_id, DISPUTE, OPEN, ledger_id, detail, None, said, now)


def report_paid(
    store: Store,
    connection_id: int,
    customer_id: int,
    invoice_id: Any,
    *,
    paid_on: Any,
    reference: Any,
    now: datetime,
) -> RequestView:
    """The customer says an invoice is paid: reminders about it hold `PAID_HOLD_DAYS` days (the invoice's pause)
    while the payment is looked for in the ledger."""
    ref = inputs.text(reference, "reference", max_length=REFERENCE_MAX)
    if not ref:
        raise InvalidInput("give the payment's reference (what your bank shows, a cheque number)", "reference")
    with store.unit_of_work() as uow:
        connection, _ = _customer(uow, connection_id, customer_id)
        invoice = customer_invoice(uow, connection_id, customer_id, invoice_id)
        today = client_today(uow, connection, now)
        pause = uow.session.scalar(
            select(InvoiceOverride.paused_until).where(
                InvoiceOverride.connection_id == connection_id,
                InvoiceOverride.invoice_external_id == invoice.external_id,
            )
        )
        org_id, number, ledger_id, row_id = (
            connection.organization_id,
            invoice.number or invoice.external_id,
            invoice.external_id,
            invoice.id,
        )
    day = _day_between(paid_on, "paid_on", today - timedelta(days=PAID_MAX_AGE_DAYS), today, "the payment date")
    if day is None:
        raise InvalidInput("say on which date you paid", "paid_on")
    hold = today + timedelta(days=PAID_HOLD_DAYS)
    if pause is None or pause < hold:  # never shortens a longer pause a person set
        update_invoice_override(store, org_id, connection_id, row_id, {"paused_until": hold}, ACTOR, now)
    said = f"said invoice {number} was paid on {day.isoformat()} (reference {ref})"
    detail = {"paid_on": day.isoformat(), "reference": ref, "invoice_id": row_id}
    return _record(store, connection_id, customer_id, PAID, OPEN, ledger_id, detail, hold, said, now)


def _day_between(value: Any, field: str, first: date, last: date, what: str) -> date | None:
    """A date from `first` to `last` (inclusive), refused in words naming the range; None when not given."""
    day = inputs.optional_day(value.strip() if isinstance(value, str) else value, field)
    if day is None:
        return None
    if day < first:
        raise InvalidInput(f"{what} {day.isoformat()} is too early: give a date from {first.isoformat()} on", field)
    if day > last:
        raise InvalidInput(f"{what} {day.isoformat()} is too far ahead: give a date up to {last.isoformat()}", field)
    return day


def _invoice_rows(store: Store, connection_id: int, customer_id: int) -> list[str]:
    with store.unit_of_work() as uow:
        _, customer = _customer(uow, connection_id, customer_id)
        return [row.external_id for row in _open_invoices(uow, connection_id, customer)]


def _open_request(uow: UnitOfWork, customer_id: int, kind: str, invoice_external_id: str) -> int | None:
    found: int | None = uow.session.scalar(
        select(CustomerRequest.id).where(
            CustomerRequest.customer_id == customer_id,
            CustomerRequest.kind == kind,
            CustomerRequest.invoice_external_id == invoice_external_id,
            CustomerRequest.state == OPEN,
        )
    )
    return found


def _record(
    store: Store,
    connection_id: int,
    customer_id: int,
    kind: str,
    state: str,
    invoice_external_id: str | None,
    detail: dict[str, Any],
    hold_until: date | None,
    said: str,
    now: datetime,
) -> RequestView:
    """Store the request, its timeline activity and (where the client wants it) its ledger note; one commit."""
    with store.unit_of_work() as uow:
        connection, customer = _customer(uow, connection_id, customer_id)
        row = CustomerRequest(
            organization_id=connection.organization_id,
            connection_id=connection_id,
            customer_id=customer.id,
            customer_external_id=customer.external_id,
            invoice_external_id=invoice_external_id or "",
            kind=kind,
            state=state,
            detail=detail,
            hold_until=hold_until,
            created_at=now,
            decided_by="",
            decision_note="",
        )
        uow.session.add(row)
        uow.flush()
        who = customer.name or customer.external_id
        sentence = f"{who} {said} (on their page)"
        _timeline(uow, connection, customer, row, f"customer_page.{kind}", sentence, "customer page", now)
        _ledger_note(uow, connection, customer, row, f"{who} {said} (Nudge customer page)", now)
        uow.commit()
        numbers = _numbers(uow, connection_id, {row.invoice_external_id})
        return _request_view(row, numbers)


def _timeline(
    uow: UnitOfWork,
    connection: Connection,
    customer: Customer,
    row: CustomerRequest,
    kind: str,
    sentence: str,
    actor: str,
    now: datetime,
) -> None:
    """The activity that puts a request (or its decision) on the customer's and the invoice's timelines."""
    invoice_id = row.detail.get("invoice_id") if isinstance(row.detail, dict) else None
    about: dict[str, object] = {"customer": customer.external_id, "customer_id": customer.id, "request": row.id}
    if row.invoice_external_id:
        about["invoice"] = row.invoice_external_id
    if isinstance(invoice_id, int):
        about["invoice_id"] = invoice_id
    uow.activities.record(
        connection.organization_id,
        kind,
        sentence[:200],
        connection_id=connection.id,
        actor=actor[:200],
        at=now,
        detail={**about, "said": sentence},
    )


def request_note_key(request_id: int, step: str = "") -> str:
    """The outbox key of the ledger note a request (or its decision) leaves: 40 hex of sha256."""
    return hashlib.sha256(f"customer-request-note:{request_id}:{step}".encode()).hexdigest()[:KEY_LENGTH]


def _ledger_note(
    uow: UnitOfWork,
    connection: Connection,
    customer: Customer,
    row: CustomerRequest,
    text: str,
    now: datetime,
    step: str = "",
) -> str | None:
    """Where the client wants it, a note on the request's invoice (a promise: the customer's oldest open
    invoice) through the outbox, exactly once per request and step; None when no note is written."""
    client = uow.session.get(ClientSettings, connection.id)
    if client is None or not client.customer_page_ledger_notes:
        return None
    invoice_id = row.invoice_external_id
    if not invoice_id:
        oldest = _open_invoices(uow, connection.id, customer)
        if not oldest:
            return None
        invoice_id = oldest[0].external_id
    key = request_note_key(row.id, step)
    today = client_today(uow, connection, now)
    plan_action(
        uow,
        connection.id,
        Action(
            key=key,
            kind=ActionKind.NOTE,
            connection_id=str(connection.id),
            customer_external_id=customer.external_id,
            invoice_external_ids=(invoice_id,),
            scheduled_at=now,
            local_date=today,
            step_id=f"customer-request:{row.id}",
            rule=f"customer page request {row.id}",
            customer_name=customer.name,
            text=f"{today.isoformat()}: {text}"[:1000],
        ),
    )
    return key


# -- what a person decides ----------------------------------------------------------------------------------
def _request_for_member(
    uow: UnitOfWork, org_id: int, request_id: Any, connection_ids: Collection[int] | None
) -> CustomerRequest:
    row = (
        uow.session.scalar(
            select(CustomerRequest).where(
                CustomerRequest.id == request_id,
                CustomerRequest.organization_id == org_id,
                visible(CustomerRequest.connection_id, org_id, connection_ids),
            )
        )
        if inputs.is_row_id(request_id)
        else None
    )
    if row is None:
        raise UnknownRecord(f"no customer request {request_id}", "request_id")
    return row


def request_for_member(
    store: Store, org_id: int, request_id: Any, connection_ids: Collection[int] | None
) -> RequestView:
    """A request as a member who sees `connection_ids` reads it (UnknownRecord outside them)."""
    with store.unit_of_work() as uow:
        row = _request_for_member(uow, org_id, request_id, connection_ids)
        return _request_view(row, _numbers(uow, row.connection_id, {row.invoice_external_id}))


def approve_plan_request(
    store: Store,
    org_id: int,
    request_id: Any,
    *,
    installments: Sequence[Mapping[str, Any]] | None,
    policy: str,
    actor: str,
    now: datetime,
    mailer: Mailer | None,
    connection_ids: Collection[int] | None = None,
    defaults: InstallDefaults | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> RequestView:
    """Record the plan a customer asked for (as proposed, or `installments` as a person edited them) with the
    payment-plan machinery, close the request and tell the customer by email."""
    with store.unit_of_work() as uow:
        row = _request_for_member(uow, org_id, request_id, connection_ids)
        _check_open(row, PLAN)
        detail = dict(row.detail or {})
        invoice_row_id = detail.get("invoice_id")
        connection_id = row.connection_id
    proposed = installments if installments is not None else detail.get("installments") or []
    plan = create_plan(
        store,
        org_id,
        connection_id,
        invoice_row_id if isinstance(invoice_row_id, int) else 0,
        installments=[{"due_date": item.get("due_date"), "amount": item.get("amount")} for item in proposed],
        policy=policy,
        actor=actor,
        now=now,
        defaults=defaults,
    )
    agreed = [{"due_date": i.due_date.isoformat(), "amount": i.amount} for i in plan.installments]
    edited = agreed != [{"due_date": i.get("due_date"), "amount": i.get("amount")} for i in detail["installments"]]
    return _decide(
        store,
        org_id,
        request_id,
        APPROVED,
        actor=actor,
        note="agreed as changed" if edited else "agreed as asked",
        extra={"agreed": agreed, "plan_id": plan.id},
        now=now,
        mailer=mailer,
        connection_ids=connection_ids,
        default_locale=default_locale,
    )


def decline_plan_request(
    store: Store,
    org_id: int,
    request_id: Any,
    *,
    note: str,
    actor: str,
    now: datetime,
    mailer: Mailer | None,
    connection_ids: Collection[int] | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> RequestView:
    """Decline a plan request (with an optional word for the customer) and tell the customer by email."""
    said = inputs.text(note, "note", max_length=inputs.REASON_MAX, single_line=False)
    with store.unit_of_work() as uow:
        _check_open(_request_for_member(uow, org_id, request_id, connection_ids), PLAN)
    return _decide(
        store,
        org_id,
        request_id,
        DECLINED,
        actor=actor,
        note=said,
        extra={},
        now=now,
        mailer=mailer,
        connection_ids=connection_ids,
        default_locale=default_locale,
    )


def mark_request_handled(
    store: Store, org_id: int, request_id: Any, *, actor: str, now: datetime, connection_ids: Collection[int] | None
) -> RequestView:
    """A person looked into a dispute or a payment the customer reported: its inbox item closes (the dispute
    itself stays on the invoice until a person ends it there)."""
    return _decide(
        store,
        org_id,
        request_id,
        HANDLED,
        actor=actor,
        note="",
        extra={},
        now=now,
        mailer=None,
        connection_ids=connection_ids,
        default_locale=DEFAULT_LOCALE,
    )


def _check_open(row: CustomerRequest, kind: str | None) -> None:
    if row.state != OPEN:
        by = f" by {row.decided_by}" if row.decided_by else ""
        raise ChangeRefused(f"this request was {row.state}{by} already; nothing was changed")
    if kind is not None and row.kind != kind:
        raise ChangeRefused(f"this is not a payment-plan request but a {row.kind} one")


_DECISION_WORDS = {APPROVED: "approved", DECLINED: "declined", HANDLED: "marked handled"}


def _decide(
    store: Store,
    org_id: int,
    request_id: Any,
    state: str,
    *,
    actor: str,
    note: str,
    extra: Mapping[str, Any],
    now: datetime,
    mailer: Mailer | None,
    connection_ids: Collection[int] | None,
    default_locale: str,
) -> RequestView:
    with store.unit_of_work() as uow:
        row = _request_for_member(uow, org_id, request_id, connection_ids)
        _check_open(row, None)
        row.state, row.decided_at, row.decided_by, row.decision_note = state, now, actor[:200], note
        row.detail = {**dict(row.detail or {}), **extra}
        connection, customer = _customer(uow, row.connection_id, row.customer_id)
        numbers = _numbers(uow, row.connection_id, {row.invoice_external_id})
        number = numbers.get(row.invoice_external_id, "")
        what = {PLAN: "payment plan request", DISPUTE: "dispute", PAID: "payment report", PROMISE: "promise"}[row.kind]
        about = f" on invoice {number}" if number else ""
        sentence = f"{actor} {_DECISION_WORDS[state]} the customer's {what}{about}" + (f": {note}" if note else "")
        _timeline(uow, connection, customer, row, f"customer_page.{row.kind}_{state}", sentence, actor, now)
        if row.kind == PLAN:
            _ledger_note(uow, connection, customer, row, sentence, now, step=state)
        message = _plan_answer(uow, connection, customer, row, number, default_locale) if row.kind == PLAN else None
        uow.commit()
        view = _request_view(row, numbers)
    if mailer is not None and message is not None and message.to:
        mailer.send(message)  # after the commit: a mail failure never undoes the decision (the timeline has it)
    return view


def _plan_answer(
    uow: UnitOfWork, connection: Connection, customer: Customer, row: CustomerRequest, number: str, default_locale: str
) -> OutgoingMessage | None:
    """The email that tells the customer what became of their plan request (in their locale, from the client)."""
    client = uow.session.get(ClientSettings, connection.id)
    sender = sender_of(connection, client)
    to, cc = recipients_of(customer)
    if not to:
        return None
    locale = _locale(customer, client, default_locale)
    currency = str(row.detail.get("currency") or "")
    name = customer.name or "there"
    if row.state == APPROVED:
        lines = [
            f"{format_day(date.fromisoformat(str(item['due_date'])), locale)}: "
            f"{format_money(Money.of(Decimal(str(item['amount'])), currency), locale)}"
            for item in row.detail.get("agreed") or []
        ]
        subject = f"Your payment plan for invoice {number} is agreed"
        body = (
            f"Hi {name},\n\nThank you for asking: we agreed the payment plan for invoice {number}. "
            "Please pay these installments on or before their dates:\n\n"
            + "\n".join(f"  {line}" for line in lines)
            + "\n\nWe will only remind you if an installment is missed."
        )
    else:
        subject = f"About your payment plan request for invoice {number}"
        body = (
            f"Hi {name},\n\nThank you for asking for a payment plan for invoice {number}. "
            "We cannot agree to it as proposed."
            + (f"\n\n{row.decision_note}" if row.decision_note else "")
            + "\n\nPlease pay the invoice as it stands, or reply to this email to talk it over."
        )
    body += f"\n\nThanks,\n{sender.business_name}\n"
    return OutgoingMessage(
        to=to,
        cc=cc,
        subject=subject,
        text=body,
        thread_key=f"{connection.id}:invoice:{row.invoice_external_id}",
        message_key=f"customer-request-{row.id}-{row.state}",
        from_name=sender.from_name,
        reply_to=sender.reply_to,
    )
