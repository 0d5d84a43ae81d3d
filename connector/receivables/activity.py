"""The activity timeline (the append-only `activities` log): per organization, client, customer or invoice.

Newest first, keyset-paged on (at, id). A client-limited member sees only their clients' entries (never the
organization-wide ones, which have no client). A customer's timeline is what names the customer, their
actions (by key) and their tasks; an invoice's, what names the invoice and its actions (grouped reminders too).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from connector.errors import InvalidInput, UnknownRecord
from connector.receivables.common import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    cursor_instant,
    cursor_int,
    decode_cursor,
    detail_id_in,
    encode_cursor,
    row_id,
    visible,
    visible_connection,
)
from connector.receivables.invoices import actions_about
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection, Customer, Invoice, Task

_CURSOR = "activity"


@dataclass(frozen=True)
class ActivityView:
    """One entry of the activity log."""

    id: int
    at: datetime
    kind: str
    subject: str
    actor: str
    connection_id: int | None
    client: str
    detail: dict[str, Any] = field(default_factory=dict)


def list_activity(
    store: Store,
    org_id: int,
    *,
    connection_ids: Collection[int] | None = None,
    connection_id: int | None = None,
    customer_id: int | None = None,
    invoice_id: int | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ActivityView]:
    """One page of the activity log, newest first, of the organization or one client / customer / invoice."""
    limit = check_limit(limit)
    if customer_id is not None and invoice_id is not None:
        raise InvalidInput("ask for a customer's or an invoice's timeline, not both", "invoice_id")
    with store.unit_of_work() as uow:
        if connection_ids is None:
            scope: ColumnElement[bool] = Activity.organization_id == org_id
        else:
            scope = and_(Activity.organization_id == org_id, visible(Activity.connection_id, org_id, connection_ids))
        query = (
            select(Activity, Connection.name)
            .outerjoin(Connection, Connection.id == Activity.connection_id)
            .where(scope)
        )
        if connection_id is not None:
            visible_connection(uow, org_id, connection_id, connection_ids)
            query = query.where(Activity.connection_id == connection_id)
        if customer_id is not None:
            query = query.where(_about_customer(uow, org_id, customer_id, connection_ids))
        if invoice_id is not None:
            query = query.where(_about_invoice(uow, org_id, invoice_id, connection_ids))
        if cursor is not None:
            at_text, last_id = decode_cursor(_CURSOR, cursor, 2)
            at, last = cursor_instant(at_text), cursor_int(last_id)
            query = query.where(or_(Activity.at < at, and_(Activity.at == at, Activity.id < last)))
        rows = uow.session.execute(query.order_by(Activity.at.desc(), Activity.id.desc()).limit(limit + 1)).all()
        items = tuple(
            ActivityView(
                id=row.id,
                at=row.at,
                kind=row.kind,
                subject=row.subject,
                actor=row.actor,
                connection_id=row.connection_id,
                client=client or "",
                detail=dict(row.detail or {}),
            )
            for row, client in rows[:limit]
        )
    next_cursor = encode_cursor(_CURSOR, [items[-1].at.isoformat(), items[-1].id]) if len(rows) > limit else None
    return Page(items, next_cursor)


def _about_customer(
    uow: UnitOfWork, org_id: int, customer_id: int, connection_ids: Collection[int] | None
) -> ColumnElement[bool]:
    row_id(customer_id, "customer_id", "customer")
    customer = uow.session.scalars(
        select(Customer).where(Customer.id == customer_id, visible(Customer.connection_id, org_id, connection_ids))
    ).first()
    if customer is None:
        raise UnknownRecord(f"no customer with id {customer_id}", "customer_id")
    keys = select(ActionRow.key).where(
        ActionRow.connection_id == customer.connection_id, ActionRow.customer_external_id == customer.external_id
    )
    tasks = list(
        uow.session.scalars(
            select(Task.id).where(
                Task.connection_id == customer.connection_id, Task.customer_external_id == customer.external_id
            )
        )
    )
    return and_(
        Activity.connection_id == customer.connection_id,
        or_(
            Activity.detail["customer"].as_string() == customer.external_id,
            detail_id_in(uow, "customer_id", [customer.id]),
            Activity.subject.in_(keys),
            detail_id_in(uow, "task", tasks),
        ),
    )


def _about_invoice(
    uow: UnitOfWork, org_id: int, invoice_id: int, connection_ids: Collection[int] | None
) -> ColumnElement[bool]:
    row_id(invoice_id, "invoice_id", "invoice")
    invoice = uow.session.scalars(
        select(Invoice).where(Invoice.id == invoice_id, visible(Invoice.connection_id, org_id, connection_ids))
    ).first()
    if invoice is None:
        raise UnknownRecord(f"no invoice with id {invoice_id}", "invoice_id")
    keys = [row.key for row in actions_about(uow, invoice)]
    about = [
        Activity.detail["invoice"].as_string() == invoice.external_id,
        detail_id_in(uow, "invoice_id", [invoice.id]),
    ]
    if keys:
        about.append(Activity.subject.in_(keys))
    return and_(Activity.connection_id == invoice.connection_id, or_(*about))
