"""What people decide about one customer or one invoice of a client: pause, exclude, dispute, promise to pay,
cadence, recipients, locale, time zone, holiday calendar (customers); pause, exclude, dispute and a new agreed
due date (invoices). The planner (connector.outbox.planning) obeys them.

Customers and invoices are named by their internal row ids (Customer.id, Invoice.id) and must belong to the
client (connection) of the organization given: anything else is UnknownRecord, the same answer as for an id
that never existed. Every change is checked field by field (InvalidInput naming it; nothing saved), and records
an audit entry (before/after) and an activity naming the customer / invoice, so its timeline shows it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import and_, func, or_, select

from connector.errors import InvalidInput, UnknownRecord
from connector.library import audit, inputs
from connector.library.settings import client_today
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, Customer, Invoice, InvoiceOverride, LibraryItem

CUSTOMER_FIELDS = (
    "paused_until",
    "excluded",
    "dispute",
    "dispute_reason",
    "promise_to_pay_until",
    "promise_amount",
    "promise_currency",
    "promise_grace_days",
    "cadence_id",
    "recipients_to",
    "recipients_cc",
    "locale",
    "time_zone",
    "holiday_calendar",
)
INVOICE_FIELDS = ("paused_until", "excluded", "dispute", "dispute_reason", "agreed_due_date")
NO_INVOICE_OVERRIDE: Mapping[str, Any] = {
    "paused_until": None,
    "excluded": False,
    "dispute": False,
    "dispute_reason": "",
    "agreed_due_date": None,
}
DEFAULT_GRACE_DAYS = 3
MAX_GRACE_DAYS = 30
OPEN = "open"
LIST_LIMIT_MAX = 200


@dataclass(frozen=True)
class CustomerView:
    """One customer of a client as people see it: who (ledger ids and addresses) and every override."""

    id: int
    connection_id: int
    external_id: str
    name: str
    emails: tuple[str, ...]  # the ledger's
    cc_emails: tuple[str, ...]
    overrides: Mapping[str, Any]  # CUSTOMER_FIELDS plus `cadence_name`
    updated_at: datetime | None


@dataclass(frozen=True)
class CustomerPage:
    """One page of customers and the cursor of the next (None: the last page)."""

    items: tuple[CustomerView, ...]
    next_cursor: str | None
    next_position: tuple[str, int] | None = None  # the same place as `next_cursor`, for callers that sign their own


@dataclass(frozen=True)
class InvoiceOverrideView:
    """An invoice's override (all defaults when none is set: `exists` False) and the invoice's ledger facts."""

    invoice_id: int
    connection_id: int
    invoice_external_id: str
    number: str
    due_date: date | None  # the ledger's (an agreed date never changes it)
    exists: bool
    paused_until: date | None = None
    excluded: bool = False
    dispute: bool = False
    dispute_reason: str = ""
    agreed_due_date: date | None = None
    updated_at: datetime | None = None

    def values(self) -> dict[str, Any]:
        """The override's fields (INVOICE_FIELDS)."""
        return {name: getattr(self, name) for name in INVOICE_FIELDS}


# -- look-ups ---------------------------------------------------------------------------------------
def _connection(uow: UnitOfWork, org_id: int, connection_id: int) -> Connection:
    ids_ok = inputs.is_row_id(org_id) and inputs.is_row_id(connection_id)
    found = uow.connections.get(org_id, connection_id) if ids_ok else None
    if found is None:
        raise UnknownRecord(f"no client {connection_id} in this organization", "connection_id")
    return found


def _customer(uow: UnitOfWork, org_id: int, connection_id: int, customer_id: Any) -> tuple[Connection, Customer]:
    connection = _connection(uow, org_id, connection_id)
    row = (
        uow.session.scalar(select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id))
        if inputs.is_row_id(customer_id)
        else None
    )
    if row is None:
        raise UnknownRecord(f"no customer {customer_id} of this client", "customer_id")
    return connection, row


def invoice_of(uow: UnitOfWork, org_id: int, connection_id: int, invoice_id: Any) -> tuple[Connection, Invoice]:
    """The client and its invoice `invoice_id` (row id); UnknownRecord when either is not the organization's."""
    connection = _connection(uow, org_id, connection_id)
    row = (
        uow.session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.connection_id == connection_id))
        if inputs.is_row_id(invoice_id)
        else None
    )
    if row is None:
        raise UnknownRecord(f"no invoice {invoice_id} of this client", "invoice_id")
    return connection, row


# -- customers --------------------------------------------------------------------------------------
def _customer_values(row: Customer) -> dict[str, Any]:
    return {
        "paused_until": row.paused_until,
        "excluded": row.excluded,
        "dispute": row.dispute,
        "dispute_reason": row.dispute_reason,
        "promise_to_pay_until": row.promise_to_pay_until,
        "promise_amount": row.promise_amount,
        "promise_currency": row.promise_currency,
        "promise_grace_days": row.promise_grace_days,
        "cadence_id": row.cadence_id,
        "recipients_to": list(row.recipients_to) if row.recipients_to is not None else None,
        "recipients_cc": list(row.recipients_cc) if row.recipients_cc is not None else None,
        "locale": row.locale,
        "time_zone": row.time_zone,
        "holiday_calendar": row.holiday_calendar,
    }


def _view(row: Customer, cadence_names: Mapping[int, str]) -> CustomerView:
    values = _customer_values(row)
    values["promise_amount"] = _money_text(row.promise_amount, row.promise_currency)
    values["cadence_name"] = cadence_names.get(row.cadence_id) if row.cadence_id is not None else None
    values["legacy_cadence"] = row.cadence
    return CustomerView(
        row.id,
        row.connection_id,
        row.external_id,
        row.name,
        tuple(str(e) for e in row.emails or ()),
        tuple(str(e) for e in row.cc_emails or ()),
        values,
        row.updated_at,
    )


def _money_text(value: Decimal | None, currency: str) -> str | None:
    if value is None:
        return None
    try:
        return str(inputs.amount(value, currency, "promise_amount", positive=False))
    except InvalidInput:
        return str(value)


def _cadence_names(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = uow.session.execute(
        select(LibraryItem.id, LibraryItem.name).where(LibraryItem.id.in_(ids), LibraryItem.deleted_at.is_(None))
    )
    return {item_id: name for item_id, name in rows}


def customer_overrides(uow: UnitOfWork, org_id: int, connection_id: int, customer_id: int) -> CustomerView:
    """Customer `customer_id` of the client with its overrides (UnknownRecord outside the client)."""
    _, row = _customer(uow, org_id, connection_id, customer_id)
    return _view(row, _cadence_names(uow, {row.cadence_id} if row.cadence_id else set()))


def _encode(name: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["customers", name, row_id]).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, int]:
    refused = InvalidInput("cursor is not one this listing gave out: start again without it", "cursor")
    if not isinstance(cursor, str) or len(cursor) > 1000:
        raise refused
    try:
        kind, name, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise refused from None
    if kind != "customers" or not isinstance(name, str) or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise refused
    return name, row_id


def list_customers(
    uow: UnitOfWork,
    org_id: int,
    connection_id: int,
    *,
    search: str = "",
    cursor: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> CustomerPage:
    """The client's customers by name (then id) with their overrides; `search`: part of the name, any case.
    Keyset pagination: `cursor` is the previous page's `next_cursor` (or `after` its `next_position`)."""
    _connection(uow, org_id, connection_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise InvalidInput(f"limit must be a whole number from 1 to {LIST_LIMIT_MAX}", "limit")
    query = select(Customer).where(Customer.connection_id == connection_id)
    needle = inputs.text(search, "search", max_length=200)
    if needle:
        escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(Customer.name).like(f"%{escaped}%", escape="\\"))
    position = _decode(cursor) if cursor else after
    if position is not None:
        name, row_id = position
        query = query.where(or_(Customer.name > name, and_(Customer.name == name, Customer.id > row_id)))
    rows = list(uow.session.scalars(query.order_by(Customer.name, Customer.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    names = _cadence_names(uow, {row.cadence_id for row in rows if row.cadence_id is not None})
    if not (more and rows):
        return CustomerPage(tuple(_view(row, names) for row in rows), None)
    last = (rows[-1].name, rows[-1].id)
    return CustomerPage(tuple(_view(row, names) for row in rows), _encode(*last), last)


def _open_currencies(uow: UnitOfWork, connection_id: int, customer: Customer) -> list[str]:
    return sorted(
        uow.session.scalars(
            select(Invoice.currency)
            .where(
                Invoice.connection_id == connection_id,
                Invoice.customer_external_id == customer.external_id,
                Invoice.status == OPEN,
            )
            .distinct()
        )
    )


def _grace(value: Any, field: str) -> int:
    return DEFAULT_GRACE_DAYS if value is None else inputs.whole_number(value, field, 0, MAX_GRACE_DAYS)


def _reason(value: Any, field: str) -> str:
    return inputs.text(value, field, max_length=inputs.REASON_MAX, single_line=False)


def _optional_currency(value: Any, field: str) -> str:
    return "" if value in (None, "") else inputs.currency(value, field)


def _recipients_to(value: Any, field: str) -> list[str] | None:
    return inputs.addresses(value, field, allow_empty=False)


def _as_given(value: Any, field: str) -> Any:
    return value  # checked with the rest of the promise, once its currency is known


_CUSTOMER_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "excluded": inputs.flag,
    "dispute": inputs.flag,
    "dispute_reason": _reason,
    "promise_amount": _as_given,
    "promise_currency": _optional_currency,
    "promise_grace_days": _grace,
    "recipients_to": _recipients_to,
    "recipients_cc": inputs.addresses,
    "locale": inputs.locale,
    "time_zone": inputs.time_zone,
    "holiday_calendar": inputs.holiday_calendar,
}
_DATES = ("paused_until", "promise_to_pay_until")


def _check_customer(
    uow: UnitOfWork, org_id: int, connection: Connection, row: Customer, changes: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The customer's override values after `changes`, every field and combination checked."""
    if not isinstance(changes, Mapping):
        raise InvalidInput("send an object of the overrides to change", "")
    today = client_today(uow, connection, now)
    current = _customer_values(row)
    values = dict(current)
    for name, value in changes.items():
        if name in _DATES:
            found = inputs.optional_day(value, name)
            # A date already saved may have passed since; only a new date must be from today on.
            values[name] = inputs.coming_day(found, name, today) if found and found != current[name] else found
        elif name == "cadence_id":
            item = inputs.live_cadence(uow, org_id, value, name)
            values[name] = item.id if item is not None else None
        elif name in _CUSTOMER_CHECKS:
            values[name] = _CUSTOMER_CHECKS[name](value, name)
        else:
            raise InvalidInput(f"unknown override {name!r} (known: {', '.join(CUSTOMER_FIELDS)})", str(name)[:100])
    _check_dispute(values)
    _check_promise(uow, connection, row, changes, values)
    if values["recipients_to"] is not None and values["recipients_cc"]:
        to = {spec.lower() for spec in values["recipients_to"]}
        values["recipients_cc"] = [spec for spec in values["recipients_cc"] if spec.lower() not in to]
    return values


def _check_dispute(values: dict[str, Any]) -> None:
    """A dispute carries its reason; ending it clears the reason."""
    if not values["dispute"]:
        values["dispute_reason"] = ""
    elif not values["dispute_reason"]:
        raise InvalidInput("a dispute needs a reason (what the customer disputes)", "dispute_reason")


def _check_promise(
    uow: UnitOfWork, connection: Connection, row: Customer, changes: Mapping[str, Any], values: dict[str, Any]
) -> None:
    if values["promise_to_pay_until"] is None:
        if changes.get("promise_amount") is not None:
            raise InvalidInput("a promised amount needs the date it is promised by", "promise_to_pay_until")
        values.update(promise_amount=None, promise_currency="", promise_grace_days=DEFAULT_GRACE_DAYS)
        return
    if values["promise_amount"] is None or values["promise_amount"] == "":
        values.update(promise_amount=None, promise_currency="")
        return
    owed = _open_currencies(uow, connection.id, row)
    chosen = values["promise_currency"]
    if not chosen:
        if len(owed) > 1:
            raise InvalidInput(
                f"the customer owes in {', '.join(owed)}: say which currency the promise is in", "promise_currency"
            )
        chosen = owed[0] if owed else connection.home_currency
        if not chosen:
            raise InvalidInput("the customer has no open invoice: say which currency it promised", "promise_currency")
    elif owed and chosen not in owed:
        raise InvalidInput(f"the customer's open invoices are in {', '.join(owed)}, not {chosen}", "promise_currency")
    values["promise_currency"] = chosen
    values["promise_amount"] = inputs.amount(values["promise_amount"], chosen, "promise_amount", positive=True)


def update_customer_overrides(
    store: Store,
    org_id: int,
    connection_id: int,
    customer_id: int,
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
) -> CustomerView:
    """Change some of a customer's overrides (None / "" clears one); nothing is saved when any field is wrong.
    Audited (entity "customer", its row id) with an activity `customer.overrides_updated`."""
    with store.unit_of_work() as uow:
        connection, row = _customer(uow, org_id, connection_id, customer_id)
        values = _check_customer(uow, org_id, connection, row, changes, now)
        before = _customer_values(row)
        if "cadence_id" in changes and row.cadence:
            # The id now decides; a leftover legacy cadence name would otherwise still apply when it is cleared.
            before["legacy_cadence"] = row.cadence
            row.cadence = ""
        for name, value in values.items():
            setattr(row, name, value)
        after = _customer_values(row)
        if audit.plain(before) != audit.plain(after):
            row.updated_at = now
            record_change(
                uow,
                connection,
                actor=actor,
                now=now,
                entity="customer",
                entity_id=row.id,
                kind="customer.overrides_updated",
                subject=row.name or row.external_id,
                before=before,
                after=after,
                about={"customer": row.external_id, "customer_id": row.id},
            )
        uow.commit()
        return _view(row, _cadence_names(uow, {row.cadence_id} if row.cadence_id else set()))


def record_change(
    uow: UnitOfWork,
    connection: Connection,
    *,
    actor: str,
    now: datetime,
    entity: str,
    entity_id: int,
    kind: str,
    subject: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    about: Mapping[str, Any],
    change: str = "update",
) -> None:
    """The audit entry and the timeline activity of one change."""
    audit.record(
        uow,
        organization_id=connection.organization_id,
        connection_id=connection.id,
        actor=actor,
        at=now,
        entity=entity,
        entity_id=entity_id,
        change=change,
        before=before,
        after=after,
    )
    plain_before = audit.plain(before) if before is not None else {}
    plain_after = audit.plain(after) if after is not None else {}
    changed = sorted(name for name in {*plain_before, *plain_after} if plain_before.get(name) != plain_after.get(name))
    uow.activities.record(
        connection.organization_id,
        kind,
        subject[:200],
        connection_id=connection.id,
        actor=actor,
        at=now,
        detail={**about, "changed": changed, "before": plain_before or None, "after": plain_after or None},
    )


# -- invoices ---------------------------------------------------------------------------------------
def _override_row(uow: UnitOfWork, connection_id: int, invoice: Invoice) -> InvoiceOverride | None:
    return uow.session.scalar(
        select(InvoiceOverride).where(
            InvoiceOverride.connection_id == connection_id, InvoiceOverride.invoice_external_id == invoice.external_id
        )
    )


def _override_values(row: InvoiceOverride | None) -> dict[str, Any]:
    if row is None:
        return dict(NO_INVOICE_OVERRIDE)
    return {name: getattr(row, name) for name in INVOICE_FIELDS}


def _override_view(invoice: Invoice, row: InvoiceOverride | None) -> InvoiceOverrideView:
    return InvoiceOverrideView(
        invoice.id,
        invoice.connection_id,
        invoice.external_id,
        invoice.number,
        invoice.due_date,
        row is not None,
        updated_at=row.updated_at if row is not None else None,
        **_override_values(row),
    )


def invoice_override(uow: UnitOfWork, org_id: int, connection_id: int, invoice_id: int) -> InvoiceOverrideView:
    """Invoice `invoice_id`'s override (defaults, `exists` False, when none is set)."""
    _, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
    return _override_view(invoice, _override_row(uow, connection_id, invoice))


def _agreed_date(invoice: Invoice, found: date, name: str, today: date) -> date:
    if invoice.issue_date is not None and found < invoice.issue_date:
        raise InvalidInput(
            f"{name}: {found.isoformat()} is before the invoice's issue date {invoice.issue_date.isoformat()}", name
        )
    return inputs.near_day(found, name, today)


def _check_invoice(
    uow: UnitOfWork, connection: Connection, invoice: Invoice, current: Mapping[str, Any], changes: Any, now: datetime
) -> dict[str, Any]:
    if not isinstance(changes, Mapping):
        raise InvalidInput("send an object of the override's fields", "")
    today = client_today(uow, connection, now)
    values = dict(current)
    for name, value in changes.items():
        if name in ("paused_until", "agreed_due_date"):
            found = inputs.optional_day(value, name)
            if found is not None and found != current[name]:
                check = inputs.coming_day if name == "paused_until" else partial(_agreed_date, invoice)
                found = check(found, name, today)
            values[name] = found
        elif name in ("excluded", "dispute", "dispute_reason"):
            values[name] = _CUSTOMER_CHECKS[name](value, name)
        else:
            raise InvalidInput(f"unknown override {name!r} (known: {', '.join(INVOICE_FIELDS)})", str(name)[:100])
    _check_dispute(values)
    return values


def update_invoice_override(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
    *,
    replace: bool = False,
) -> InvoiceOverrideView:
    """Change invoice `invoice_id`'s override (`replace`: fields not given go back to their defaults). An
    override left with nothing set is removed. The ledger's due date is never changed (`agreed_due_date` only
    moves the cadence). Audited (entity "invoice_override", the invoice's row id) with an activity."""
    with store.unit_of_work() as uow:
        connection, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
        row = _override_row(uow, connection_id, invoice)
        before = _override_values(row)
        values = _check_invoice(uow, connection, invoice, _override_values(None) if replace else before, changes, now)
        empty = values == _override_values(None)
        if row is None and empty:
            return _override_view(invoice, None)
        if empty:
            assert row is not None
            uow.session.delete(row)
            row, change, kind = None, "delete", "invoice.override_cleared"
        else:
            change, kind = ("update", "invoice.override_updated") if row else ("create", "invoice.override_set")
            if row is None:
                row = InvoiceOverride(connection_id=connection_id, invoice_external_id=invoice.external_id)
                uow.session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now
        after = None if row is None else values
        if change != "update" or audit.plain(before) != audit.plain(after):
            record_change(
                uow,
                connection,
                actor=actor,
                now=now,
                entity="invoice_override",
                entity_id=invoice.id,
                kind=kind,
                subject=invoice.number or invoice.external_id,
                before=before if change != "create" else None,
                after=after,
                about=about_invoice(invoice),
                change=change,
            )
        uow.commit()
        return _override_view(invoice, row)


def clear_invoice_override(
    store: Store, org_id: int, connection_id: int, invoice_id: int, actor: str, now: datetime
) -> InvoiceOverrideView:
    """Remove invoice `invoice_id`'s override (nothing happens when none is set)."""
    return update_invoice_override(store, org_id, connection_id, invoice_id, {}, actor, now, replace=True)


def about_invoice(invoice: Invoice) -> dict[str, Any]:
    """What a timeline needs to find an activity: the invoice and customer, by ledger and row id."""
    return {"invoice": invoice.external_id, "invoice_id": invoice.id, "customer": invoice.customer_external_id}
