"""The Xero emulator's `EmulatorKit` (providers._emulator.kit): start it, point Nudge at it, seed
organisations, consent as a browser would, record payments and count what Nudge wrote back."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings
from providers._emulator import ChildEmulator, KitBase, LocalSetup, PostalAddress
from providers.xero.emulator import XeroEmulator, start
from providers.xero.emulator import main as emulator_main
from providers.xero.emulator.ledger import Ledger
from providers.xero.emulator.state import ACCESS_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, sign_webhook

MODULE = "providers.xero.emulator"
BANNER = "Xero emulator on"
FEE_PREFIX = "Late fee for"  # Reference of the fee invoices the adapter creates (its default option)
CREDIT_PREFIX = "Credit for"  # Reference of the credit notes the adapter creates (its default option)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def nudge_settings(url: str, redirect_uri: str, *, webhook_key: str = "", **options: Any) -> ProviderSettings:
    """Nudge's Xero settings for the emulator at `url` (a kit's, or a handle's from `start()`)."""
    return ProviderSettings(
        key=XeroKit.provider,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri=redirect_uri,
        webhook_key=webhook_key,
        api_base=f"{url}/api.xro/2.0",
        identity_base=url,
        options=options,
    )


LOCAL_PORT = 8402  # `nudge init --emulators` / `nudge dev` (the emulator command's default port too)
# The key the emulator signs webhooks with when `nudge dev` points them at the local web app: a fixture value for
# the local emulator, not a credential.
LOCAL_WEBHOOK_KEY = "nudge-emulator-xero-webhook-key"


class XeroKit(KitBase):
    """One Xero emulator (`rate_limits=False`: Xero's 60 a minute, 5 at once and 5000 a day are off)."""

    provider = "xero"
    currency = "NZD"
    token_path = "/connect/token"
    access_token_lifetime = ACCESS_TTL
    compressed_time_options: ClassVar[Mapping[str, Any]] = {"rate_per_minute": 100_000}

    @staticmethod
    def main(argv: list[str]) -> int:
        """Serve this emulator from a shell until Ctrl-C (`nudge emulator xero --help`)."""
        return emulator_main(argv)

    @classmethod
    def local_setup(cls, base_url: str, port_offset: int = 0) -> LocalSetup:
        """The emulator on 127.0.0.1:LOCAL_PORT (+ offset) as nudge.yaml's `providers.xero` and `.env`."""
        port = LOCAL_PORT + port_offset
        url = f"http://127.0.0.1:{port}"
        block = {
            "enabled": True,
            "client_id": "${XERO_CLIENT_ID}",
            "client_secret": "${XERO_CLIENT_SECRET}",
            "redirect_uri": f"{base_url}/oauth/{cls.provider}/callback",
            "webhook_key": "${XERO_WEBHOOK_KEY}",
            "api_base": f"{url}/api.xro/2.0",
            "identity_base": url,
        }
        env = {
            "XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "XERO_WEBHOOK_KEY": LOCAL_WEBHOOK_KEY,
        }
        return LocalSetup(cls.provider, port, block, env)

    def point_webhooks(self, url: str, key: str) -> None:
        self.admin("webhooks", {"url": url, "key": key})

    def _serve_here(self, port: int) -> XeroEmulator:
        return start(port, limits=None if self.rate_limits else {})

    def _serve_child(self, port: int) -> ChildEmulator:
        return ChildEmulator(MODULE, BANNER, port, [] if self.rate_limits else ["--no-limits"])

    @property
    def emulator(self) -> XeroEmulator:
        """The in-process emulator (its state: ledgers, OAuth world, idempotency, webhooks)."""
        handle: XeroEmulator = self.handle
        return handle

    def _ledger(self, tenant: str) -> Ledger:
        return self.emulator.state.ledgers[tenant]

    # -- Nudge's side ----------------------------------------------------------------------------
    def settings(self, redirect_uri: str, *, webhook_key: str = "", **options: Any) -> ProviderSettings:
        return nudge_settings(self.url, redirect_uri, webhook_key=webhook_key, **options)

    def approve(self, authorize_url: str, tenants: list[str]) -> dict[str, str]:
        """Xero's consent page: tick the organisations and allow access."""
        page = requests.get(authorize_url, timeout=10)
        page.raise_for_status()
        form = [*_HIDDEN.findall(page.text), ("decision", "approve"), *(("tenant", tenant) for tenant in tenants)]
        answer = requests.post(
            urlsplit(authorize_url)._replace(query="").geturl(), data=form, allow_redirects=False, timeout=10
        )
        return _query(answer.headers["Location"])

    def grant(self, tenant: str) -> dict[str, Any]:
        grant: dict[str, Any] = self.admin("grant", {"tenants": [tenant]})
        return grant

    # -- the ledger ------------------------------------------------------------------------------
    def add_company(
        self,
        name: str,
        currency: str = "",
        *,
        utc_offset_hours: int | None = None,
        foreign_currencies: bool = False,
        country: str = "",
        subdivision: str = "",
        time_zone: str = "",
    ) -> str:
        """A new organisation (every Xero organisation may bill in foreign currencies) in `country` (default NZ),
        with `subdivision` as its street address's Region and `time_zone` (IANA, default Pacific/Auckland);
        `utc_offset_hours` is ignored: a Xero organisation has a named zone."""
        return self.emulator.add_tenant(
            name, currency=currency or self.currency, country=country, region=subdivision, time_zone=time_zone
        )

    def add_customer(
        self, tenant: str, name: str, email: str, currency: str = "", *, address: PostalAddress | None = None
    ) -> str:
        contact: dict[str, Any] = {"Name": name, "EmailAddress": email}
        if currency:
            contact["DefaultCurrency"] = currency
        if address is not None:  # Xero's billing address is the POBOX one; its main phone the DEFAULT one
            lines = {f"AddressLine{n}": line for n, line in enumerate(address.lines[:4], start=1)}
            contact["Addresses"] = [
                {
                    "AddressType": "POBOX",
                    **lines,
                    "City": address.city,
                    "PostalCode": address.postal_code,
                    "Country": address.country,
                }
            ]
            if address.phone:
                contact["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": address.phone}]
        state = self.emulator.state
        with state.lock:
            record = self._ledger(tenant).upsert_contact(contact, state.now())
            self._ledger(tenant).events.clear()  # seeded data sends no webhooks
            return str(record["ContactID"])

    def add_invoice(
        self, tenant: str, customer: str, number: str, amount: Decimal, currency: str, issued: date, due: date
    ) -> str:
        line = {"Description": "Joinery and fitting", "Quantity": 1, "UnitAmount": str(amount), "AccountCode": "200"}
        invoice: dict[str, Any] = {
            "Type": "ACCREC",
            "Status": "AUTHORISED",
            "InvoiceNumber": number,
            "Contact": {"ContactID": customer},
            "Date": issued.isoformat(),
            "DueDate": due.isoformat(),
            "LineItems": [line],
        }
        if currency:
            invoice["CurrencyCode"] = currency
        state = self.emulator.state
        with state.lock:
            record = self._ledger(tenant).create_invoice(invoice, state.now())
            self._ledger(tenant).events.clear()
            return str(record["InvoiceID"])

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        name = f"Contract Customer {len(self._ledger(tenant).contacts)}"
        invoices = [
            {
                "Type": "ACCREC",
                "Contact": {"Name": name},
                "Date": "2024-01-01",
                "DueDate": "2024-01-31",
                "Status": "AUTHORISED",
                "LineAmountTypes": "NoTax",
                "LineItems": [
                    {"Description": "Services", "Quantity": 1, "UnitAmount": f"{100 + n}.00", "AccountCode": "200"}
                ],
            }
            for n in range(count)
        ]
        contacts = [{"Name": name, "EmailAddress": "ap@contract.example"}]
        body = {"tenants": [{"tenantId": tenant, "contacts": contacts, "invoices": invoices}]}
        return [str(invoice) for invoice in self.admin("seed", body)["tenants"][0]["invoices"]]

    def seed_company(self, name: str, *, customers: int, invoices: int) -> str:
        return str(self.admin("generate", {"name": name, "invoices": invoices, "contacts": customers})["tenantId"])

    def pay(self, tenant: str, invoice: str, amount: Decimal | None = None, on: date | None = None) -> str:
        """A customer pays (the bank feed reconciles it in Xero), through the admin API; the PaymentID."""
        paid = self.balance(tenant, invoice) if amount is None else amount
        body: dict[str, Any] = {"tenant": tenant, "invoice": invoice, "amount": str(paid)}
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin("payments", body)["PaymentID"])

    def credit(self, tenant: str, invoice: str, amount: Decimal, on: date | None = None) -> str:
        """A user raises a credit note for `amount` and allocates it to the invoice; the CreditNoteID."""
        body: dict[str, Any] = {"tenant": tenant, "invoice": invoice, "amount": str(amount)}
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin("credits", body)["CreditNoteID"])

    def overpay(self, tenant: str, customer: str, amount: Decimal, on: date | None = None) -> str:
        """The customer pays `amount` no invoice takes (a RECEIVE-OVERPAYMENT); the OverpaymentID."""
        body: dict[str, Any] = {"tenant": tenant, "contact": customer, "amount": str(amount)}
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin("overpayments", body)["OverpaymentID"])

    def void_payment(self, tenant: str, payment: str) -> None:
        """A user deletes the payment in Xero (it stays listed as DELETED; its invoice owes the money again)."""
        self.admin("payments/delete", {"tenant": tenant, "payment": payment})

    def touch_invoice(self, tenant: str, invoice: str) -> None:
        changes = {"Reference": "edited by a user"}
        self.admin("invoices/update", {"tenant": tenant, "invoice": invoice, "changes": changes})

    def annotate_invoice(self, tenant: str, invoice: str, text: str) -> None:
        self.admin("invoices/update", {"tenant": tenant, "invoice": invoice, "changes": {"Reference": text}})

    def balance(self, tenant: str, invoice: str) -> Decimal:
        with self.emulator.state.lock:
            return Decimal(str(self._ledger(tenant).invoices[invoice]["AmountDue"]))

    def ledger_writes(self, tenant: str) -> dict[str, int]:
        """History notes, fee invoices ("Late fee for …" references) and credit notes ("Credit for …"): what
        Nudge wrote back, not a user's credit recorded with `credit`."""
        with self.emulator.state.lock:
            ledger = self._ledger(tenant)
            notes = sum(1 for entries in ledger.history.values() for e in entries if e["Changes"] == "Note")
            invoices = ledger.invoices.values()
            fees = sum(1 for i in invoices if str(i.get("Reference", "")).startswith(FEE_PREFIX))
            credits = sum(
                1 for c in ledger.credit_notes.values() if str(c.get("Reference", "")).startswith(CREDIT_PREFIX)
            )
            return {"notes": notes, "fee_invoices": fees, "credits": credits}

    def note_count(self, tenant: str, invoice: str, text: str) -> int:
        with self.emulator.state.lock:
            history = self._ledger(tenant).history.get(invoice, [])
            return sum(str(record["Details"]).count(text) for record in history if record["Changes"] == "Note")

    # -- OAuth -----------------------------------------------------------------------------------
    def expire_access_tokens(self, tenant: str) -> None:
        """Every access token is expired (the emulator's switch is global, which covers `tenant`)."""
        self.admin("tokens/expire")

    def strict_refresh(self) -> None:
        self.admin("oauth", {"strict_refresh": True})

    def forget_idempotency(self, tenant: str) -> None:
        state = self.emulator.state
        with state.lock:
            for key in [key for key in state.idempotency if key[0] == tenant]:
                del state.idempotency[key]

    # -- webhooks --------------------------------------------------------------------------------
    def webhook_body(self, tenant: str, invoice: str) -> bytes:
        """One INVOICE UPDATE event (fixtures/xero_webhook_invoice_event_item.json)."""
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice}",
            "resourceId": invoice,
            "eventDateUtc": "2025-10-21T01:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        body = {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "CONTRACTENTROPY"}
        return json.dumps(body, separators=(",", ":")).encode()

    def sign_webhook(self, body: bytes, key: str) -> str:
        return sign_webhook(body, key)
