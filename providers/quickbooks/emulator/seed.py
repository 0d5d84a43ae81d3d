"""Bulk demo/test data for one emulated company: customers with emails and open invoices."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from providers.quickbooks.emulator.store import Store


def seed(
    store: Store,
    realm: str,
    *,
    customers: int = 10,
    invoices: int = 0,
    paid_every: int = 0,
    currency: str = "",
    rng_seed: int = 7,
) -> dict[str, Any]:
    """Add `customers` customers and `invoices` invoices (every `paid_every`-th one paid in full).

    Deterministic for a given seed; webhooks are not sent for seeded data.
    """
    rng = random.Random(rng_seed)
    company = store.company(realm)
    start = len(company.entities["Customer"])
    customer_ids = [c["Id"] for c in company.entities["Customer"].values()]
    for n in range(start + 1, start + customers + 1):
        body: dict[str, Any] = {
            "DisplayName": f"Customer {n:05d}",
            "CompanyName": f"Customer {n:05d} Ltd",
            "PrimaryEmailAddr": {"Address": f"billing{n}@customer{n}.example"},
        }
        if currency:
            body["CurrencyRef"] = {"value": currency}
        customer_ids.append(store.create(realm, "Customer", body, notify=False)["Id"])
    if invoices and not customer_ids:
        raise ValueError("seed customers before invoices")
    today = store.today(company)
    created = 0
    paid = 0
    for n in range(invoices):
        txn = today - timedelta(days=rng.randint(0, 120))
        amount = Decimal(rng.randint(5_000, 500_000)) / 100
        body = {
            "CustomerRef": {"value": customer_ids[n % len(customer_ids)]},
            "TxnDate": txn.isoformat(),
            "DueDate": (txn + timedelta(days=30)).isoformat(),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": str(amount),
                    "Description": "Consulting services",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": str(amount)},
                }
            ],
        }
        if currency:
            body["CurrencyRef"] = {"value": currency}
        invoice = store.create(realm, "Invoice", body, notify=False)
        created += 1
        if paid_every and (n + 1) % paid_every == 0:
            store.create(
                realm,
                "Payment",
                {
                    "CustomerRef": invoice["CustomerRef"],
                    "TotalAmt": invoice["TotalAmt"],
                    "Line": [
                        {"Amount": invoice["TotalAmt"], "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
                    ],
                },
                notify=False,
            )
            paid += 1
    return {"realm": realm, "customers": len(customer_ids), "invoices": created, "paid": paid}
