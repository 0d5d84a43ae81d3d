"""Rows the settings, overrides and payment-plan services work on: an organization with a client (connection),
library cadences and a payment-plan policy, customers and invoices, written directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.library.resolve import CADENCE, PAYMENT_PLAN
from connector.storage import Store
from connector.storage.tables import Customer, Invoice, LibraryItem, LibraryVersion

SYNCED = datetime(2026, 11, 1, tzinfo=UTC)


def cadence_body(approval: str = "none", **extra: Any) -> dict[str, Any]:
    """A small valid cadence body (the config's `cadences.<name>` shape)."""
    return {
        "send_time": "09:30",
        "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
        "minimum_amount": {"GBP": 5, "USD": 10},
        "approval": approval,
        "steps": [{"id": "due", "offset": 0, "remind": "due_today"}],
        **extra,
    }


def library_item(store: Store, organization_id: int, kind: str, name: str, body: Mapping[str, Any]) -> int:
    """One library item with its first (current) version; its id."""
    with store.unit_of_work() as uow:
        item = LibraryItem(organization_id=organization_id, kind=kind, name=name)
        uow.session.add(item)
        uow.flush()
        version = LibraryVersion(item_id=item.id, number=1, name=name, body=dict(body), created_by="test")
        uow.session.add(version)
        uow.flush()
        item.current_version_id = version.id
        uow.commit()
        return item.id


@dataclass(frozen=True)
class Client:
    """An organization, one client of it, and its library's ids."""

    org_id: int
    connection_id: int
    standard: int  # cadence ids
    gentle: int
    monthly: int  # payment-plan policy id


def client(store: Store, organization: str = "Practice", name: str = "Books Ltd", **fields: Any) -> Client:
    """A new organization with a London client (`fields` override connection columns), cadences "standard"
    (approval none) and "gentle" (approval ledger), and payment-plan policy "monthly" (5 grace days)."""
    with store.unit_of_work() as uow:
        org = uow.organizations.add(organization)
        values: dict[str, Any] = {"time_zone": "Europe/London", "holiday_country": "GB", "home_currency": "GBP"}
        values.update(fields)
        connection = uow.connections.add(org.id, "fake", f"t-{organization}-{name}", name, **values)
        uow.commit()
        org_id, cid = org.id, connection.id
    standard = library_item(store, org_id, CADENCE, "standard", cadence_body())
    gentle = library_item(store, org_id, CADENCE, "gentle", cadence_body("ledger"))
    monthly = library_item(
        store, org_id, PAYMENT_PLAN, "monthly", {"grace_days": 5, "remind_offsets": [-3, 0], "template": "installment"}
    )
    return Client(org_id, cid, standard, gentle, monthly)


def customer(store: Store, connection_id: int, external_id: str, name: str, **fields: Any) -> int:
    """A synced customer; its row id."""
    with store.unit_of_work() as uow:
        row = Customer(connection_id=connection_id, external_id=external_id, name=name, **fields)
        uow.session.add(row)
        uow.commit()
        return row.id


def invoice(
    store: Store,
    connection_id: int,
    external_id: str,
    *,
    customer_external_id: str = "c1",
    balance: str = "500.00",
    currency: str = "GBP",
    status: str = "open",
    due: date = date(2026, 11, 2),
) -> int:
    """A synced invoice INV-<external id>; its row id."""
    with store.unit_of_work() as uow:
        row = Invoice(
            connection_id=connection_id,
            external_id=external_id,
            number=f"INV-{external_id}",
            customer_external_id=customer_external_id,
            customer_name="Cust",
            currency=currency,
            total=Decimal(balance),
            balance=Decimal(balance),
            issue_date=date(2026, 10, 3),
            due_date=due,
            status=status,
            updated_at=SYNCED,
        )
        uow.session.add(row)
        uow.commit()
        return row.id
