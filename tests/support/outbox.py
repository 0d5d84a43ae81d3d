"""Seeds of the tests that plan into the outbox and carry it out without a provider: an overdue invoice
snapshot, a "fake" connection holding its invoice rows in a real store, and the reminder row read back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.outbox.codec import action_to_json
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Invoice


def invoice_snapshot(n: int, *, due: date, updated_at: datetime) -> InvoiceSnapshot:
    """Open invoice INV-`n` of 500.00 GBP to "Cust One" (ap@cust.example), issued 30 days before `due`."""
    return InvoiceSnapshot(
        external_id=str(n),
        number=f"INV-{n}",
        customer_external_id="c1",
        customer_name="Cust One",
        currency="GBP",
        total=Money.of("500.00", "GBP"),
        balance=Money.of("500.00", "GBP"),
        issue_date=due - timedelta(days=30),
        due_date=due,
        status=InvoiceStatus.OPEN,
        updated_at=updated_at,
        emails=("ap@cust.example",),
    )


def connection_with_invoices(
    store: Store,
    invoices: Iterable[InvoiceSnapshot],
    *,
    first_seen_at: datetime,
    organization: str = "A",
    name: str = "Books",
    **fields: Any,
) -> int:
    """A new organization's "fake" connection (`fields`: cadence, time_zone...) holding a row per invoice; its id."""
    with store.unit_of_work() as uow:
        org = uow.organizations.add(organization)
        connection = uow.connections.add(org.id, "fake", "t", name, **fields)
        for inv in invoices:
            uow.session.add(
                Invoice(
                    connection_id=connection.id,
                    external_id=inv.external_id,
                    number=inv.number,
                    customer_external_id=inv.customer_external_id,
                    customer_name=inv.customer_name,
                    currency=inv.currency,
                    total=inv.total.amount,
                    balance=inv.balance.amount,
                    issue_date=inv.issue_date,
                    due_date=inv.due_date,
                    status=inv.status.value,
                    updated_at=inv.updated_at,
                    first_seen_at=first_seen_at,
                )
            )
        uow.commit()
        return connection.id


def reminder_row(store: Store) -> ActionRow:
    """The one planned reminder (kind "remind") of the store, detached."""
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ActionRow).where(ActionRow.kind == "remind")).one()
        uow.session.expunge(row)
        return row


def insert_action(
    store: Store,
    connection_id: int,
    action: Action,
    *,
    state: str = "planned",
    ref: str = "",
    updated_at: datetime | None = None,
) -> int:
    """Put `action` straight into the outbox in `state` (with its external ref), as planning and executing would
    have left it; returns the row id."""
    with store.unit_of_work() as uow:
        row = ActionRow(
            key=action.key,
            connection_id=connection_id,
            kind=action.kind.value,
            step=action.step_id,
            invoice_external_id=action.invoice_external_ids[0] if len(action.invoice_external_ids) == 1 else "",
            customer_external_id=action.customer_external_id,
            state=state,
            scheduled_at=action.scheduled_at,
            payload=action_to_json(action),
            external_ref=ref,
            updated_at=updated_at or action.scheduled_at,
        )
        uow.session.add(row)
        uow.commit()
        return row.id
