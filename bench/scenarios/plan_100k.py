"""Scenario plan_100k: plan one day for 100,000 open invoices across 1,000 customers (one core).

15 % of the invoices are partly paid: their dated payments are in the history of both plans, as
`connector.outbox.planning.load_history` feeds them from the store. Metrics, each the best of three runs of
`plan` over the same inputs (fresh planner state each run; holiday calendars loaded once, as a worker would):
`invoices_per_s`, the daily plan with yesterday's plan on record; `cold_invoices_per_s`, a connection's very
first plan (no action on record: every invoice's latest due step fires). Target: both at least 50,000.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bench.targets import Target, at_least
from connector.domain.actions import Action, History, InvoiceFacts
from connector.domain.cadence import ConnectionSettings, plan
from connector.domain.calendar import Calendars
from connector.domain.fees import ReferenceRates
from connector.domain.model import CustomerOverrides, InvoiceSnapshot, InvoiceStatus, Payment
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict

NAME = "plan_100k"
INVOICES = 100_000
CUSTOMERS = 1_000
NOW = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
TARGET_INVOICES_PER_S = 50_000

POLICIES = policy_from_dict(
    {
        "late_fees": {
            "interest": {
                "kind": "interest",
                "rate_per_month": "1.5",
                "repeat": "month",
                "max_count": 6,
                "total_cap_percent": 10,
            },
            "uk": {"kind": "uk_statutory"},
        },
        "discounts": {"early": {"percent": 2, "days": 10}},
        "cadences": {
            "default": {
                "time_zone": "Europe/London",
                "holidays": {"country": "GB", "subdiv": "ENG"},
                "minimum_amount": 5,
                "steps": [
                    {"id": "soon", "offset": -3, "remind": "friendly", "discount": "early"},
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late3", "offset": 3, "days": "business", "remind": "overdue"},
                    {
                        "id": "late14",
                        "offset": 14,
                        "remind": "overdue",
                        "note": "Second reminder",
                        "late_fee": "interest",
                    },
                    {
                        "id": "late30",
                        "offset": 30,
                        "remind": "firm",
                        "call_task": "Phone accounts payable",
                        "late_fee": "uk",
                    },
                    {"id": "late60", "offset": 60, "remind": "final", "escalate": True},
                ],
            }
        },
    }
)


def build(
    invoice_count: int = INVOICES, customer_count: int = CUSTOMERS
) -> tuple[list[InvoiceSnapshot], dict[str, CustomerOverrides], History]:
    """The scenario's invoices, customer overrides and history (dated payments of the partly paid invoices);
    deterministic for given counts."""
    rng = random.Random(20240312)
    zones = ["Europe/London"] * 6 + ["America/New_York", "Australia/Sydney"]
    overrides = {}
    for c in range(customer_count):
        roll = rng.random()
        if roll < 0.2:
            overrides[f"C{c}"] = CustomerOverrides(time_zone=rng.choice(zones))
        elif roll < 0.23:
            overrides[f"C{c}"] = CustomerOverrides(dispute=True)
        elif roll < 0.25:
            overrides[f"C{c}"] = CustomerOverrides(paused_until=date(2024, 4, 1))
    invoices = []
    facts = {}
    updated = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(invoice_count):
        total = Decimal(rng.randint(1_000, 2_000_000)).scaleb(-2)
        balance = total if rng.random() < 0.85 else (total / 2).quantize(Decimal("0.01"))
        issue = date(2023, 10, 1) + timedelta(days=rng.randint(0, 180))
        due = issue + timedelta(days=rng.choice([14, 30, 30, 30, 60]))
        external_id = f"I{i}"
        invoices.append(
            InvoiceSnapshot(
                external_id=external_id,
                number=f"INV-{i:06d}",
                customer_external_id=f"C{rng.randrange(customer_count)}",
                customer_name="Customer",
                currency="GBP",
                total=Money(total, "GBP"),
                balance=Money(balance, "GBP"),
                issue_date=issue,
                due_date=due,
                status=InvoiceStatus.OPEN,
                updated_at=updated,
                emails=("ap@example.com",),
            )
        )
        if balance != total:
            facts[external_id] = InvoiceFacts(first_seen=issue, payments=(Payment(Money(total - balance, "GBP"), due),))
    return invoices, overrides, History(invoices=facts)


def _best(fn: Callable[[], list[Action]], repeat: int) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = len(fn())
        best = min(best, time.perf_counter() - started)
    return best, count


CONNECTION = ConnectionSettings("bench", time_zone="Europe/London", rates=ReferenceRates(uk_base_rate=Decimal("5.25")))


def plan_day(
    invoices: list[InvoiceSnapshot],
    overrides: dict[str, CustomerOverrides],
    known: History,
    at: datetime,
    calendars: Calendars,
) -> list[Action]:
    """The scenario's plan at `at` (one day ahead) with `known` on record."""
    return plan(
        invoices,
        overrides,
        POLICIES.cadences["default"],
        POLICIES,
        known,
        at,
        connection=CONNECTION,
        horizon=timedelta(days=1),
        calendars=calendars,
    )


def run() -> dict[str, float]:
    """Steady state: yesterday's plan is on record (as the executor feeds it back) and today's is timed.
    Cold: the very first plan of a connection (no action on record, payments known; every invoice's latest
    step fires)."""
    invoices, overrides, history = build()
    calendars = Calendars()

    def day(at: datetime, known: History) -> list[Action]:
        return plan_day(invoices, overrides, known, at, calendars)

    cold_seconds, cold_actions = _best(lambda: day(NOW - timedelta(days=1), history), 3)
    yesterday = history.record(day(NOW - timedelta(days=1), history))
    seconds, actions = _best(lambda: day(NOW, yesterday), 3)
    return {
        "invoices_per_s": round(INVOICES / seconds, 1),
        "actions_planned": float(actions),
        "cold_invoices_per_s": round(INVOICES / cold_seconds, 1),
        "cold_actions_planned": float(cold_actions),
    }


def targets(metrics: dict[str, float]) -> list[Target]:
    """The daily plan and the cold first plan each at least 50,000 invoices a second."""
    return [
        at_least(metrics, "invoices_per_s", TARGET_INVOICES_PER_S),
        at_least(metrics, "cold_invoices_per_s", TARGET_INVOICES_PER_S),
    ]


if __name__ == "__main__":
    print(run())
