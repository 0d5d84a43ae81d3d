"""Helpers of the Xero tests (a uniquely named module, importable from any test directory)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from connector.ports import ProviderSettings
from providers.xero.adapter import XeroAdapter
from providers.xero.emulator import XeroEmulator
from providers.xero.emulator.kit import nudge_settings
from providers.xero.oauth import LocalTokenSource, tokens_from_response

WEBHOOK_KEY = "test-webhook-signing-key"


def emulator_settings(
    xero: XeroEmulator, redirect_uri: str, *, webhook_key: str = "", **options: Any
) -> ProviderSettings:
    """Nudge's Xero settings for an emulator started with `start()` (what its kit's `settings` builds)."""
    return nudge_settings(xero.url, redirect_uri, webhook_key=webhook_key, **options)


def admin(xero: XeroEmulator, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    response = requests.request(method, f"{xero.url}/__admin/{path}", json=body, timeout=30)
    assert response.status_code < 300, response.text
    return response.json()


def data_calls(xero: XeroEmulator) -> list[Any]:
    return xero.core.calls("data")


@dataclass
class Connected:
    xero: XeroEmulator
    settings: ProviderSettings
    tenant: str
    tokens: LocalTokenSource
    adapter: XeroAdapter
    seeded: dict[str, Any]
    sleeps: list[float]


def seed_basic(xero: XeroEmulator) -> dict[str, Any]:
    """One organisation with three customers and four invoices (two open, one paid, one draft)."""
    body = {
        "tenants": [
            {
                "name": "Demo Company (NZ)",
                "contacts": [
                    {
                        "Name": "Barney Rubble",
                        "EmailAddress": "barney@rubble.example",
                        "ContactPersons": [
                            {"FirstName": "Betty", "EmailAddress": "betty@rubble.example", "IncludeInEmails": True},
                            {"FirstName": "Bamm", "EmailAddress": "bamm@rubble.example", "IncludeInEmails": False},
                        ],
                    },
                    {"Name": "Fred Flintstone", "EmailAddress": "fred@flintstone.example"},
                    {"Name": "Wilma Flintstone"},
                ],
                "invoices": [
                    _invoice("Barney Rubble", "100.00", "AUTHORISED", "2024-01-10", "2024-02-09"),
                    _invoice("Fred Flintstone", "250.50", "AUTHORISED", "2024-01-15", "2024-02-14"),
                    _invoice("Fred Flintstone", "80.00", "AUTHORISED", "2024-01-20", "2024-02-19"),
                    _invoice("Wilma Flintstone", "40.00", "DRAFT", "2024-01-25", "2024-02-24"),
                ],
                "payments": [],
            }
        ]
    }
    seeded = admin(xero, "seed", body)["tenants"][0]
    # INV-0003 gets paid in full.
    admin(xero, "payments", {"tenant": seeded["tenantId"], "invoice": seeded["invoices"][2], "amount": "80.00"})
    return seeded


def _invoice(contact: str, amount: str, status: str, issued: str, due: str) -> dict[str, Any]:
    return {
        "Type": "ACCREC",
        "Contact": {"Name": contact},
        "Date": issued,
        "DueDate": due,
        "Status": status,
        "LineAmountTypes": "NoTax",
        "LineItems": [{"Description": "Consulting", "Quantity": 1, "UnitAmount": amount, "AccountCode": "200"}],
    }


def connect(xero: XeroEmulator, settings: ProviderSettings, tenant: str) -> tuple[LocalTokenSource, list[float]]:
    body = xero.grant([tenant])
    tokens = LocalTokenSource(settings, tokens_from_response(body, datetime.now(UTC)))
    return tokens, []
