"""Builders shared by the connector.domain tests: invoices, money, policies and a planning run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from connector.domain.actions import Action, ActionKind, History
from connector.domain.cadence import ConnectionSettings, plan
from connector.domain.model import CustomerOverrides, InvoiceSnapshot, InvoiceStatus, PaymentPlan
from connector.domain.money import Money
from connector.domain.policy import PolicySet
from connector.domain.policy_parsing import policy_from_dict

CONN = ConnectionSettings("conn-1", time_zone="Europe/London")


def money(amount: str | int, currency: str = "GBP") -> Money:
    return Money.of(amount, currency)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def invoice(
    external_id: str = "1",
    *,
    customer: str = "cust-a",
    due: date | None = date(2024, 3, 1),
    issue: date | None = date(2024, 2, 1),
    total: str = "100.00",
    balance: str | None = None,
    currency: str = "GBP",
    status: InvoiceStatus = InvoiceStatus.OPEN,
) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        external_id=external_id,
        number=f"INV-{external_id}",
        customer_external_id=customer,
        customer_name=customer.title(),
        currency=currency,
        total=Money.of(total, currency),
        balance=Money.of(total if balance is None else balance, currency),
        issue_date=issue,
        due_date=due,
        status=status,
        updated_at=utc(2024, 1, 1),
        emails=(f"{customer}@example.com",),
    )


def policies(
    steps: list[dict[str, Any]] | None = None,
    *,
    late_fees: dict[str, Any] | None = None,
    discounts: dict[str, Any] | None = None,
    payment_plans: dict[str, Any] | None = None,
    **cadence: Any,
) -> PolicySet:
    """A PolicySet with one cadence named 'default' (Europe/London, England holidays unless given)."""
    body: dict[str, Any] = {"time_zone": "Europe/London", "holidays": {"country": "GB", "subdiv": "ENG"}}
    body.update(cadence)
    body["steps"] = steps or [
        {"id": "before", "offset": -3, "remind": "friendly"},
        {"id": "due", "offset": 0, "remind": "due_today"},
        {"id": "late7", "offset": 7, "remind": "overdue"},
        {"id": "late30", "offset": 30, "remind": "final", "escalate": True},
    ]
    return policy_from_dict(
        {
            "late_fees": late_fees or {},
            "discounts": discounts or {},
            "payment_plans": payment_plans or {},
            "cadences": {"default": body},
        }
    )


def run(
    invoices: list[InvoiceSnapshot],
    pol: PolicySet,
    now: datetime,
    *,
    history: History | None = None,
    overrides: dict[str, CustomerOverrides] | None = None,
    connection: ConnectionSettings = CONN,
    plans: dict[str, PaymentPlan] | None = None,
    credit: dict[str, Money] | None = None,
) -> list[Action]:
    return plan(
        invoices,
        overrides or {},
        pol.cadences["default"],
        pol,
        history or History(),
        now,
        connection=connection,
        payment_plans=plans,
        unapplied_credit=credit,
    )


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind.value for a in actions]


def only(actions: list[Action], kind: ActionKind) -> list[Action]:
    return [a for a in actions if a.kind is kind]


LONG_AGO = date(2000, 1, 3)


def told(history: History | None = None, *invoice_ids: str, on: date = LONG_AGO) -> History:
    """`history` (else empty) in which a sent reminder announced the late fees of `invoice_ids` (default "1")
    on local date `on`: long ago by default, so the warning rule never stands in a fee-mechanics test's way."""
    base = history or History()
    facts = dict(base.invoices)
    for invoice_id in invoice_ids or ("1",):
        facts[invoice_id] = replace(base.facts(invoice_id), fee_warned_on=on)
    return replace(base, invoices=facts)
