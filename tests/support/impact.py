"""A practice for the impact-preview tests: one organization, three clients, a library with a fee.

Each client has customer c1 (an invoice in GBP) and c2 (GBP, or EUR for Alpha): Alpha follows "standard", Bravo
follows "gentle", Charlie follows "gentle" but its customer c1 follows "standard". "standard" has a due-date
reminder, a reminder 5 days late and a flat 25.00 late fee 10 days late.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.domain.policy_parsing import policy_from_dict
from connector.library.resolve import CADENCE
from connector.storage import Store
from connector.storage.tables import ClientSettings, Connection, Customer, Invoice
from tests.support.library_rows import seed_library

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)  # a Monday morning, before any step
DUE = date(2026, 11, 4)
WINDOW = {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "08:00", "end": "18:00"}


def cadence(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"time_zone": "Europe/London", "send_time": "09:30", "window": WINDOW, "steps": list(steps)}


STANDARD = cadence(
    {"id": "due", "offset": 0, "remind": "due_today"},
    {"id": "late", "offset": 5, "remind": "firm"},
    {"id": "fee", "offset": 10, "late_fee": "flat"},
)
GENTLE = cadence({"id": "due", "offset": 0, "remind": "due_today"})
LIBRARY = {
    "cadences": {"standard": STANDARD, "gentle": GENTLE},
    "late_fees": {"flat": {"kind": "flat", "amount": 25, "grace_days": 0, "warning_days": 0}},
    "discounts": {"spare": {"percent": 2, "days": 10, "basis": "issue"}},
}
STARTER = policy_from_dict({"cadences": {"gentle": GENTLE}})  # the install's rules: unused once rows exist


def practice(store: Store, org_id: int | None = None) -> tuple[int, dict[str, int], dict[str, int]]:
    """The organization (a new one unless `org_id`), its clients by name and its library item ids by "kind:name"."""
    if org_id is None:
        with store.unit_of_work() as uow:
            org_id = uow.organizations.add("Practice").id
            uow.commit()
    items = {key: entry.item_id for key, entry in seed_library(store, org_id, LIBRARY).items()}
    clients: dict[str, int] = {}
    follows = {"Alpha": "standard", "Bravo": "gentle", "Charlie": "gentle"}
    with store.unit_of_work() as uow:
        for name, followed in follows.items():
            connection = Connection(organization_id=org_id, provider="fake", tenant_id=f"t-{name}", name=name)
            uow.session.add(connection)
            uow.session.flush()
            clients[name] = connection.id
            uow.session.add(ClientSettings(connection_id=connection.id, cadence_id=items[f"{CADENCE}:{followed}"]))
            for customer, currency in (("c1", "GBP"), ("c2", "EUR" if name == "Alpha" else "GBP")):
                override = items[f"{CADENCE}:standard"] if (name, customer) == ("Charlie", "c1") else None
                uow.session.add(
                    Customer(connection_id=connection.id, external_id=customer, name=customer, cadence_id=override)
                )
                uow.session.add(
                    Invoice(
                        connection_id=connection.id,
                        external_id=f"{name}-{customer}",
                        number=f"INV-{customer}",
                        customer_external_id=customer,
                        customer_name=f"{name} {customer}",
                        currency=currency,
                        total=Decimal("500.00"),
                        balance=Decimal("500.00"),
                        issue_date=DUE - timedelta(days=30),
                        due_date=DUE,
                        status="open",
                        emails=[f"{customer}@example.com"],
                        updated_at=NOW - timedelta(days=30),
                        first_seen_at=NOW - timedelta(days=30),
                    )
                )
        uow.commit()
    return org_id, clients, items
