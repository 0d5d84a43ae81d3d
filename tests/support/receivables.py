"""Seeds for the receivables services' tests: organizations with clients (connections), customers, invoices,
payments, outbox actions and tasks written straight into a real store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connector.domain.actions import Action, ActionKind, HoldReason, ReminderItem
from connector.domain.model import Role
from connector.domain.money import Money
from connector.storage import Store
from connector.storage.tables import Customer, Invoice, Payment, Task
from tests.support.outbox import insert_action

SEEDED_AT = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def organization(store: Store, name: str) -> int:
    """A new organization; its id."""
    with store.unit_of_work() as uow:
        org = uow.organizations.add(name)
        uow.commit()
        return org.id


def member(store: Store, org_id: int, email: str, role: Role = Role.ACCOUNTANT) -> int:
    """A user who is a member of the organization; the user's id."""
    with store.unit_of_work() as uow:
        user = uow.users.add(email, "not-a-real-hash")
        uow.memberships.add(user.id, org_id, role)
        uow.commit()
        return user.id


def client(
    store: Store, org_id: int, name: str, *, time_zone: str = "UTC", home_currency: str = "GBP", **fields: object
) -> int:
    """A "fake" connection (one client's ledger) of the organization; its id."""
    with store.unit_of_work() as uow:
        connection = uow.connections.add(
            org_id, "fake", f"t-{name}", name, time_zone=time_zone, home_currency=home_currency, **fields
        )
        uow.commit()
        return connection.id


def customer(store: Store, connection_id: int, external_id: str, name: str, emails: tuple[str, ...] = ()) -> int:
    """A customer row of the client; its internal id."""
    with store.unit_of_work() as uow:
        row = Customer(connection_id=connection_id, external_id=external_id, name=name, emails=list(emails))
        uow.session.add(row)
        uow.commit()
        return row.id


def invoice(
    store: Store,
    connection_id: int,
    external_id: str,
    *,
    due: date | None,
    balance: str = "100.00",
    total: str | None = None,
    currency: str = "GBP",
    customer_id: str = "c1",
    customer_name: str = "Cust One",
    status: str = "open",
    number: str | None = None,
    issued: date | None = None,
) -> int:
    """An invoice row of the client (number INV-<external id> unless given); its internal id."""
    with store.unit_of_work() as uow:
        row = Invoice(
            connection_id=connection_id,
            external_id=external_id,
            number=number if number is not None else f"INV-{external_id}",
            customer_external_id=customer_id,
            customer_name=customer_name,
            currency=currency,
            total=Decimal(total or balance),
            balance=Decimal(balance),
            issue_date=issued if issued is not None else (due - timedelta(days=30) if due else None),
            due_date=due,
            status=status,
            updated_at=SEEDED_AT,
        )
        uow.session.add(row)
        uow.commit()
        return row.id


def payment(
    store: Store,
    connection_id: int,
    external_id: str,
    invoice_external_id: str,
    amount: str,
    paid_on: date,
    *,
    currency: str = "GBP",
    customer_id: str = "c1",
    kind: str = "payment",
) -> None:
    """A payment row applying `amount` to the invoice on `paid_on`."""
    with store.unit_of_work() as uow:
        uow.session.add(
            Payment(
                connection_id=connection_id,
                kind=kind,
                external_id=external_id,
                invoice_external_id=invoice_external_id,
                customer_external_id=customer_id,
                amount=Decimal(amount),
                currency=currency,
                paid_on=paid_on,
            )
        )
        uow.commit()


def action(
    store: Store,
    connection_id: int,
    key: str,
    *,
    kind: ActionKind = ActionKind.REMIND,
    state: str = "planned",
    at: datetime = SEEDED_AT,
    invoices: tuple[str, ...] = ("1",),
    customer_id: str = "c1",
    step: str = "overdue-7",
    amount: Money | None = None,
    recipients: tuple[str, ...] = (),
    hold: HoldReason | None = None,
    ref: str = "",
    updated_at: datetime | None = None,
    grouped: bool = False,
) -> int:
    """An outbox row of `kind` in `state` about `invoices` (a grouped reminder lists them as items); its id."""
    items = (
        tuple(
            ReminderItem(
                invoice_external_id=invoice_id,
                number=f"INV-{invoice_id}",
                due_date=at.date(),
                balance=Money.of("100.00", "GBP"),
                total=Money.of("100.00", "GBP"),
                days_overdue=7,
                step_id=step,
                template="firm",
                member_key=f"{key}-{invoice_id}",
            )
            for invoice_id in invoices
        )
        if grouped
        else ()
    )
    payload = Action(
        key=key,
        kind=kind,
        connection_id=str(connection_id),
        customer_external_id=customer_id,
        invoice_external_ids=invoices,
        scheduled_at=at,
        local_date=at.date(),
        step_id=step,
        rule=f"cadence 'standard' step '{step}'",
        amount=amount,
        template="firm" if kind is ActionKind.REMIND else None,
        customer_name="Cust One",
        recipients=recipients,
        hold_reason=hold,
        items=items,
    )
    return insert_action(store, connection_id, payload, state=state, ref=ref, updated_at=updated_at)


def task(
    store: Store,
    org_id: int,
    connection_id: int,
    *,
    due_on: date,
    invoices: tuple[str, ...] = ("1",),
    assignee: int | None = None,
    state: str = "open",
    customer_id: str = "c1",
) -> int:
    """A call task of the client about `invoices`; its id."""
    with store.unit_of_work() as uow:
        row = Task(
            organization_id=org_id,
            connection_id=connection_id,
            kind="call",
            customer_external_id=customer_id,
            customer_name="Cust One",
            invoice_external_ids=list(invoices),
            title=f"Call Cust One about {', '.join(invoices)}",
            assignee_user_id=assignee,
            due_on=due_on,
            state=state,
            created_at=SEEDED_AT,
        )
        uow.session.add(row)
        uow.commit()
        return row.id
