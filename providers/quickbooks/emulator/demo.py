"""The QuickBooks emulator's side of `nudge demo`: seed a realistic company, approve OAuth as a
browser would, record customers' payments and move the emulator's clock (providers._emulator.demo.DemoLedger)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings
from providers._emulator import RateLimits
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle, start
from providers.quickbooks.emulator import main as emulator_main


class QuickBooksDemo:
    """One in-process QuickBooks emulator for the demo."""

    provider = "quickbooks"

    def __init__(self) -> None:
        self._handle: EmulatorHandle | None = None
        self._item: dict[str, str] = {}

    @property
    def handle(self) -> EmulatorHandle:
        if self._handle is None:
            raise RuntimeError("the QuickBooks emulator is not started")
        return self._handle

    @staticmethod
    def main(argv: list[str]) -> int:
        """Serve this emulator from a shell until Ctrl-C (`nudge emulator <provider> --help`)."""
        return emulator_main(argv)

    def start(self) -> None:
        # Limits off: the demo compresses days into seconds, so the real per-minute budget would only add waits.
        self._handle = start(limits=RateLimits())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    @property
    def url(self) -> str:
        return self.handle.url

    def settings(self, redirect_uri: str) -> ProviderSettings:
        return ProviderSettings(
            key=self.provider,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri=redirect_uri,
            environment=self.handle.discovery_url,
            api_base=self.handle.api_base,
            # The demo compresses days into seconds; the real 500-calls-a-minute budget would only make it wait.
            options={"retry_base_s": 0.05, "timeout_s": 20, "rate_per_minute": 100_000},
        )

    def set_now(self, moment: datetime) -> None:
        self.handle.core.clock.set(moment, frozen=True)

    def create_company(self, name: str, currency: str, time_zone_offset_hours: int) -> str:
        company = self.handle.store.add_company(
            name, currency=currency, multicurrency=True, utc_offset_hours=time_zone_offset_hours
        )
        return company.realm

    def add_customer(self, tenant: str, name: str, email: str, currency: str) -> str:
        body: dict[str, Any] = {
            "DisplayName": name,
            "CompanyName": name,
            "PrimaryEmailAddr": {"Address": email},
            "CurrencyRef": {"value": currency},
        }
        return str(self.handle.store.create(tenant, "Customer", body, notify=False)["Id"])

    def add_invoice(
        self, tenant: str, customer: str, number: str, amount: Decimal, currency: str, issued: date, due: date
    ) -> str:
        body = {
            "DocNumber": number,
            "CustomerRef": {"value": customer},
            "CurrencyRef": {"value": currency},
            "TxnDate": issued.isoformat(),
            "DueDate": due.isoformat(),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": str(amount),
                    "Description": "Professional services",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": str(amount)},
                }
            ],
        }
        return str(self.handle.store.create(tenant, "Invoice", body, notify=False)["Id"])

    def approve(self, authorize_url: str, tenants: list[str]) -> dict[str, str]:
        """What the user's browser does on Intuit's consent page: pick the company and approve."""
        args = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        answer = requests.post(
            f"{self.url}/connect/oauth2/decide",
            data={**args, "realm": tenants[0], "decision": "approve"},
            allow_redirects=False,
            timeout=10,
        )
        answer.raise_for_status()
        return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}

    def balance(self, tenant: str, invoice: str) -> Decimal:
        return Decimal(str(self.handle.store.read(tenant, "Invoice", invoice)["Balance"]))

    def pay(self, tenant: str, invoice: str, amount: Decimal, on: date) -> None:
        """A customer pays (through the admin API, as the ledger would record it)."""
        requests.post(
            f"{self.url}/__admin/companies/{tenant}/pay",
            json={"invoice_id": invoice, "amount": str(amount), "date": on.isoformat()},
            timeout=10,
        ).raise_for_status()

    def ledger_writes(self, tenant: str) -> dict[str, int]:
        """What Nudge wrote back: notes, fee invoices and credits."""
        entities = self.handle.store.company(tenant).entities
        notes = sum(str(i.get("PrivateNote") or "").count("[nudge ") for i in entities["Invoice"].values())
        fees = sum(1 for i in entities["Invoice"].values() if str(i.get("DocNumber", "")).startswith("LF-"))
        return {"notes": notes, "fee_invoices": fees, "credits": len(entities["CreditMemo"])}


def kit() -> QuickBooksDemo:
    """A fresh demo kit (connector.registry.load_demo_kit calls this)."""
    return QuickBooksDemo()
