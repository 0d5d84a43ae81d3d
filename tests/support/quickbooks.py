"""Helpers of the QuickBooks tests: fixtures path and a fresh-company wrapper (tokens in tests.support.tokens)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from connector.ports import ProviderSettings, TokenSet
from providers.quickbooks import oauth
from providers.quickbooks.adapter import QuickBooksAdapter
from providers.quickbooks.emulator import EmulatorHandle
from providers.quickbooks.emulator.kit import nudge_settings
from tests.support.tokens import MemoryTokenSource

FIXTURES = Path(__file__).resolve().parents[2] / "providers" / "quickbooks" / "fixtures"
VERIFIER = "test-verifier-token"
CALLBACK = "http://127.0.0.1:5000/oauth/quickbooks/callback"


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def emulator_settings(
    qbo: EmulatorHandle, redirect_uri: str = CALLBACK, *, webhook_key: str = "", **options: Any
) -> ProviderSettings:
    """Nudge's QuickBooks settings for an emulator started with `start()` (what its kit's `settings` builds)."""
    return nudge_settings(qbo.url, redirect_uri, webhook_key=webhook_key, **options)


@contextmanager
def faults_cleared(qbo: EmulatorHandle) -> Iterator[None]:
    """No emulator fault left over from an earlier test on entry, none left behind on exit."""
    qbo.core.clear_faults()
    try:
        yield
    finally:
        qbo.core.clear_faults()


def emulator_company(qbo: EmulatorHandle, **options: Any) -> Company:
    """A fresh company in `qbo`, Nudge's settings for it carrying `options` (the callback is CALLBACK)."""
    return Company(qbo, emulator_settings(qbo, **options))


class Company:
    """A fresh company in the emulator with helpers to seed and inspect it."""

    def __init__(self, qbo: EmulatorHandle, settings: ProviderSettings, name: str = "Test Co") -> None:
        self.qbo = qbo
        self.settings = settings
        self.realm = qbo.store.add_company(name).realm
        body = requests.post(f"{qbo.url}/__admin/companies/{self.realm}/tokens", timeout=5).json()
        self.tokens = MemoryTokenSource(settings, TokenSet.from_response(body, datetime.now(UTC)), oauth.refresh)

    def adapter(self, **kwargs: Any) -> QuickBooksAdapter:
        return QuickBooksAdapter(self.realm, self.tokens, self.settings, **kwargs)

    def seed(self, customers: int = 3, invoices: int = 0, paid_every: int = 0) -> dict[str, Any]:
        from providers.quickbooks.emulator.seed import seed

        return seed(self.qbo.store, self.realm, customers=customers, invoices=invoices, paid_every=paid_every)

    def customer(self, name: str, email: str = "") -> str:
        body: dict[str, Any] = {"DisplayName": name}
        if email:
            body["PrimaryEmailAddr"] = {"Address": email}
        return str(self.qbo.store.create(self.realm, "Customer", body, notify=False)["Id"])

    def invoice(self, customer_id: str, amount: str = "100.00", **fields: Any) -> dict[str, Any]:
        body = {
            "CustomerRef": {"value": customer_id},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": amount,
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
                }
            ],
            **fields,
        }
        return self.qbo.store.create(self.realm, "Invoice", body, notify=False)

    def entities(self, entity: str) -> list[dict[str, Any]]:
        return list(self.qbo.store.company(self.realm).entities[entity].values())

    def data_calls(self) -> int:
        return self.qbo.data_calls(self.realm)
