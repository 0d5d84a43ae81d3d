"""The QuickBooks emulator's `EmulatorKit` (providers._emulator.kit): start it, point Nudge at it, seed
companies, approve OAuth as a browser would, record payments and count what Nudge wrote back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings
from providers._emulator import ChildEmulator, KitBase, LocalSetup, PostalAddress, RateLimits
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle, start
from providers.quickbooks.emulator import main as emulator_main
from providers.quickbooks.emulator.notify import sign

MODULE = "providers.quickbooks.emulator"
BANNER = "QuickBooks emulator on"
FEE_PREFIX = "LF-"  # DocNumber of the fee invoices the adapter creates (its default option)
CREDIT_PREFIX = "CR-"  # DocNumber of the credit memos the adapter creates
NOTE_MARKER = "[nudge "  # the adapter's marker in an invoice's PrivateNote


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def nudge_settings(url: str, redirect_uri: str, *, webhook_key: str = "", **options: Any) -> ProviderSettings:
    """Nudge's QuickBooks settings for the emulator at `url` (a kit's, or a handle's from `start()`)."""
    return ProviderSettings(
        key=QuickBooksKit.provider,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri=redirect_uri,
        webhook_key=webhook_key,
        environment=f"{url}/.well-known/openid_configuration",
        api_base=f"{url}/v3",
        options=options,
    )


LOCAL_PORT = 8765  # `nudge init --emulators` / `nudge dev` (the emulator command's default port too)
# The verifier token the emulator signs webhooks with when `nudge dev` points them at the local web app: a fixture
# value for the local emulator, not a credential.
LOCAL_WEBHOOK_KEY = "nudge-emulator-quickbooks-verifier"


class QuickBooksKit(KitBase):
    """One QuickBooks Online emulator (`rate_limits=False`: QBO's 500 a minute and 10 at once are off)."""

    provider = "quickbooks"
    currency = "USD"
    token_path = "/oauth2/v1/tokens/bearer"
    access_token_lifetime = timedelta(hours=1)
    compressed_time_options: ClassVar[Mapping[str, Any]] = {
        "retry_base_s": 0.05,
        "timeout_s": 20,
        "rate_per_minute": 100_000,
    }

    @staticmethod
    def main(argv: list[str]) -> int:
        """Serve this emulator from a shell until Ctrl-C (`nudge emulator quickbooks --help`)."""
        return emulator_main(argv)

    @classmethod
    def local_setup(cls, base_url: str, port_offset: int = 0) -> LocalSetup:
        """The emulator on 127.0.0.1:LOCAL_PORT (+ offset) as nudge.yaml's `providers.quickbooks` and `.env`."""
        port = LOCAL_PORT + port_offset
        url = f"http://127.0.0.1:{port}"
        block = {
            "enabled": True,
            "client_id": "${QBO_CLIENT_ID}",
            "client_secret": "${QBO_CLIENT_SECRET}",
            "redirect_uri": f"{base_url}/oauth/{cls.provider}/callback",
            "webhook_key": "${QBO_WEBHOOK_VERIFIER}",
            "environment": f"{url}/.well-known/openid_configuration",
            "api_base": f"{url}/v3",
        }
        env = {
            "QBO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "QBO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "QBO_WEBHOOK_VERIFIER": LOCAL_WEBHOOK_KEY,
        }
        return LocalSetup(cls.provider, port, block, env)

    def point_webhooks(self, url: str, key: str) -> None:
        self.admin("webhooks", {"url": url, "verifier_token": key})

    def _serve_here(self, port: int) -> EmulatorHandle:
        return start(port, limits=None if self.rate_limits else RateLimits())

    def _serve_child(self, port: int) -> ChildEmulator:
        child = ChildEmulator(MODULE, BANNER, port, [])
        if not self.rate_limits:
            requests.post(f"{child.url}/__admin/limits", json=asdict(RateLimits()), timeout=10).raise_for_status()
        return child

    @property
    def emulator(self) -> EmulatorHandle:
        """The in-process emulator (its store, OAuth state and notifier)."""
        handle: EmulatorHandle = self.handle
        return handle

    # -- Nudge's side ----------------------------------------------------------------------------
    def settings(self, redirect_uri: str, *, webhook_key: str = "", **options: Any) -> ProviderSettings:
        return nudge_settings(self.url, redirect_uri, webhook_key=webhook_key, **options)

    def approve(self, authorize_url: str, tenants: list[str]) -> dict[str, str]:
        """Intuit's consent page: pick the (one) company and approve."""
        answer = requests.post(
            f"{self.url}/connect/oauth2/decide",
            data={**_query(authorize_url), "realm": tenants[0], "decision": "approve"},
            allow_redirects=False,
            timeout=10,
        )
        answer.raise_for_status()
        return _query(answer.headers["Location"])

    def grant(self, tenant: str) -> dict[str, Any]:
        grant: dict[str, Any] = self.admin(f"companies/{tenant}/tokens", {})
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
        """A company in `country` (default US) and `subdivision` (CompanyAddr); its answers' `time` runs in
        `time_zone` (IANA) when given, else at the fixed `utc_offset_hours` (default -7)."""
        company = self.emulator.store.add_company(
            name,
            currency=currency or self.currency,
            multicurrency=foreign_currencies,
            utc_offset_hours=-7 if utc_offset_hours is None else utc_offset_hours,
            country=country or "US",
            subdivision=subdivision,
            time_zone=time_zone,
        )
        return company.realm

    def add_customer(
        self, tenant: str, name: str, email: str, currency: str = "", *, address: PostalAddress | None = None
    ) -> str:
        body: dict[str, Any] = {"DisplayName": name, "CompanyName": name, "PrimaryEmailAddr": {"Address": email}}
        if currency:
            body["CurrencyRef"] = {"value": currency}
        if address is not None:  # a QBO PhysicalAddress (Line1-5, City, PostalCode, Country) and TelephoneNumber
            lines = {f"Line{n}": line for n, line in enumerate(address.lines[:5], start=1)}
            body["BillAddr"] = {
                **lines,
                "City": address.city,
                "PostalCode": address.postal_code,
                "Country": address.country,
            }
            if address.phone:
                body["PrimaryPhone"] = {"FreeFormNumber": address.phone}
        return str(self.emulator.store.create(tenant, "Customer", body, notify=False)["Id"])

    def add_invoice(
        self, tenant: str, customer: str, number: str, amount: Decimal, currency: str, issued: date, due: date
    ) -> str:
        body: dict[str, Any] = {
            "DocNumber": number,
            "CustomerRef": {"value": customer},
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
        if currency:
            body["CurrencyRef"] = {"value": currency}
        return str(self.emulator.store.create(tenant, "Invoice", body, notify=False)["Id"])

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        store = self.emulator.store
        customer = store.create(
            tenant,
            "Customer",
            {
                "DisplayName": f"Contract Customer {len(store.company(tenant).entities['Customer'])}",
                "PrimaryEmailAddr": {"Address": "ap@contract.example"},
            },
        )
        ids = []
        for n in range(count):
            amount = f"{100 + n}.00"
            line = {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount,
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
            }
            body = {"CustomerRef": {"value": customer["Id"]}, "DueDate": "2024-01-31", "Line": [line]}
            ids.append(str(store.create(tenant, "Invoice", body)["Id"]))
        return ids

    def seed_company(self, name: str, *, customers: int, invoices: int) -> str:
        realm = str(self.admin("companies", {"name": name})["realm"])
        self.admin(f"companies/{realm}/seed", {"customers": customers, "invoices": invoices})
        return realm

    def pay(self, tenant: str, invoice: str, amount: Decimal | None = None, on: date | None = None) -> str:
        """A customer pays (through the admin API, as the ledger would record it); the Payment's Id."""
        body: dict[str, Any] = {"invoice_id": invoice}
        if amount is not None:
            body["amount"] = str(amount)
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin(f"companies/{tenant}/pay", body)["Payment"]["Id"])

    def credit(self, tenant: str, invoice: str, amount: Decimal, on: date | None = None) -> str:
        """A user credits the invoice: a CreditMemo applied to it (by a zero-amount Payment); the memo's Id."""
        body: dict[str, Any] = {"invoice_id": invoice, "amount": str(amount)}
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin(f"companies/{tenant}/credit", body)["CreditMemo"]["Id"])

    def overpay(self, tenant: str, customer: str, amount: Decimal, on: date | None = None) -> str:
        """The customer pays money no invoice takes (a Payment with UnappliedAmt); the Payment's Id."""
        body: dict[str, Any] = {"customer_id": customer, "amount": str(amount)}
        if on is not None:
            body["date"] = on.isoformat()
        return str(self.admin(f"companies/{tenant}/overpay", body)["Payment"]["Id"])

    def void_payment(self, tenant: str, payment: str) -> None:
        """A user voids the Payment (zero amounts, "Voided" memo; its invoices' balances restored)."""
        self.admin(f"companies/{tenant}/payments/{payment}/void")

    def delete_payment(self, tenant: str, payment: str) -> None:
        """A user deletes the Payment (CDC then answers its tombstone)."""
        self.admin(f"companies/{tenant}/payments/{payment}/delete")

    def touch_invoice(self, tenant: str, invoice: str) -> None:
        self.admin(f"companies/{tenant}/invoices/{invoice}", {"CustomerMemo": {"value": "edited by a user"}})

    def annotate_invoice(self, tenant: str, invoice: str, text: str) -> None:
        self.admin(f"companies/{tenant}/invoices/{invoice}", {"PrivateNote": text})

    def balance(self, tenant: str, invoice: str) -> Decimal:
        return Decimal(str(self.emulator.store.read(tenant, "Invoice", invoice)["Balance"]))

    def ledger_writes(self, tenant: str) -> dict[str, int]:
        """Notes ("[nudge …]" markers in PrivateNote), fee invoices (LF-…) and Nudge's credit memos (CR-…; a
        user's credit recorded with `credit` is not Nudge's write)."""
        entities = self.emulator.store.company(tenant).entities
        invoices = list(entities["Invoice"].values())
        notes = sum(str(i.get("PrivateNote") or "").count(NOTE_MARKER) for i in invoices)
        fees = sum(1 for i in invoices if str(i.get("DocNumber", "")).startswith(FEE_PREFIX))
        credits = sum(
            1 for m in entities["CreditMemo"].values() if str(m.get("DocNumber", "")).startswith(CREDIT_PREFIX)
        )
        return {"notes": notes, "fee_invoices": fees, "credits": credits}

    def note_count(self, tenant: str, invoice: str, text: str) -> int:
        return str(self.emulator.store.read(tenant, "Invoice", invoice).get("PrivateNote") or "").count(text)

    # -- OAuth -----------------------------------------------------------------------------------
    def expire_access_tokens(self, tenant: str) -> None:
        self.admin(f"companies/{tenant}/expire-access")

    def strict_refresh(self) -> None:
        self.admin("oauth", {"strict": True})

    def forget_idempotency(self, tenant: str) -> None:
        company = self.emulator.store.company(tenant)
        with company.lock:
            company.replies.clear()

    # -- webhooks --------------------------------------------------------------------------------
    def webhook_body(self, tenant: str, invoice: str) -> bytes:
        """The legacy `eventNotifications` shape (fixtures/qbo_webhook_legacy.json)."""
        entity = {"name": "Invoice", "id": invoice, "operation": "Update", "lastUpdated": "2025-09-08T20:52:31.657Z"}
        body = {"eventNotifications": [{"realmId": tenant, "dataChangeEvent": {"entities": [entity]}}]}
        return json.dumps(body, separators=(",", ":")).encode()

    def sign_webhook(self, body: bytes, key: str) -> str:
        return sign(body, key)
