"""The Xero emulator's side of `nudge demo`: seed a realistic organisation, consent as a browser would,
record customers' payments and move the emulator's clock (providers._emulator.demo.DemoLedger)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings
from providers.xero.emulator import XeroEmulator, start
from providers.xero.emulator import main as emulator_main
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


class XeroDemo:
    """One in-process Xero emulator for the demo (rate limits off: the demo compresses days into seconds)."""

    provider = "xero"

    def __init__(self) -> None:
        self._handle: XeroEmulator | None = None

    @property
    def handle(self) -> XeroEmulator:
        if self._handle is None:
            raise RuntimeError("the Xero emulator is not started")
        return self._handle

    @staticmethod
    def main(argv: list[str]) -> int:
        """Serve this emulator from a shell until Ctrl-C (`nudge emulator <provider> --help`)."""
        return emulator_main(argv)

    def start(self) -> None:
        self._handle = start(limits={})

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    def settings(self, redirect_uri: str) -> ProviderSettings:
        return ProviderSettings(
            key=self.provider,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri=redirect_uri,
            api_base=self.handle.api_base,
            identity_base=self.handle.url,
            # The demo compresses days into seconds; Xero's real 60-calls-a-minute budget would only make it wait.
            options={"rate_per_minute": 100_000},
        )

    def set_now(self, moment: datetime) -> None:
        self.handle.core.clock.set(moment, frozen=True)

    def create_company(self, name: str, currency: str, time_zone_offset_hours: int) -> str:
        return self.handle.add_tenant(name, currency=currency)

    def _ledger(self, tenant: str) -> Any:
        return self.handle.state.ledgers[tenant]

    def add_customer(self, tenant: str, name: str, email: str, currency: str) -> str:
        with self.handle.state.lock:
            contact = self._ledger(tenant).upsert_contact(
                {"Name": name, "EmailAddress": email, "DefaultCurrency": currency}, self.handle.state.now()
            )
            self._ledger(tenant).events.clear()  # seeded data sends no webhooks
            return str(contact["ContactID"])

    def add_invoice(
        self, tenant: str, customer: str, number: str, amount: Decimal, currency: str, issued: date, due: date
    ) -> str:
        with self.handle.state.lock:
            record = self._ledger(tenant).create_invoice(
                {
                    "Type": "ACCREC",
                    "Status": "AUTHORISED",
                    "InvoiceNumber": number,
                    "Contact": {"ContactID": customer},
                    "Date": issued.isoformat(),
                    "DueDate": due.isoformat(),
                    "CurrencyCode": currency,
                    "LineItems": [
                        {
                            "Description": "Joinery and fitting",
                            "Quantity": 1,
                            "UnitAmount": str(amount),
                            "AccountCode": "200",
                        }
                    ],
                },
                self.handle.state.now(),
            )
            self._ledger(tenant).events.clear()
            return str(record["InvoiceID"])

    def approve(self, authorize_url: str, tenants: list[str]) -> dict[str, str]:
        """What the user's browser does on Xero's consent page: tick the organisations and allow access."""
        page = requests.get(authorize_url, timeout=10)
        page.raise_for_status()
        hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        form = [*hidden, ("decision", "approve"), *(("tenant", tenant) for tenant in tenants)]
        answer = requests.post(
            urlsplit(authorize_url)._replace(query="").geturl(), data=form, allow_redirects=False, timeout=10
        )
        return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}

    def balance(self, tenant: str, invoice: str) -> Decimal:
        with self.handle.state.lock:
            return Decimal(str(self._ledger(tenant).invoices[invoice]["AmountDue"]))

    def pay(self, tenant: str, invoice: str, amount: Decimal, on: date) -> None:
        """A customer pays (the bank feed reconciles it in Xero), through the admin API."""
        requests.post(
            f"{self.handle.url}/__admin/payments",
            json={"tenant": tenant, "invoice": invoice, "amount": str(amount), "date": on.isoformat()},
            timeout=10,
        ).raise_for_status()

    def ledger_writes(self, tenant: str) -> dict[str, int]:
        """What Nudge wrote back: history notes, fee invoices and credit notes."""
        with self.handle.state.lock:
            ledger = self._ledger(tenant)
            invoices = list(ledger.invoices.values())
            noted = [entries for entries in ledger.history.values() if any(e["Changes"] == "Note" for e in entries)]
            notes = sum(1 for entries in noted for e in entries if e["Changes"] == "Note")
            fees = sum(1 for i in invoices if str(i.get("Reference", "")).startswith("Late fee for"))
            return {"notes": notes, "fee_invoices": fees, "credits": len(ledger.credit_notes)}


def kit() -> XeroDemo:
    """A fresh demo kit (connector.registry.load_demo_kit calls this)."""
    return XeroDemo()
