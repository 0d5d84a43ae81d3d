"""Contract harness for QuickBooks Online (protocol: tests/contract/conftest.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings, TokenSet
from providers.quickbooks import oauth
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle, start
from providers.quickbooks.webhooks import sign

VERIFIER = "contract-verifier-token"


class QuickBooksHarness:
    key = "quickbooks"
    currency = "USD"

    def __init__(self) -> None:
        self.qbo: EmulatorHandle | None = None

    @property
    def emu(self) -> EmulatorHandle:
        assert self.qbo is not None, "harness not started"
        return self.qbo

    def start(self) -> None:
        self.qbo = start()

    def stop(self) -> None:
        self.emu.stop()

    def settings(self) -> ProviderSettings:
        return ProviderSettings(
            key="quickbooks",
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri="http://127.0.0.1:5000/oauth/quickbooks/callback",
            webhook_key=VERIFIER,
            environment=self.emu.discovery_url,
            api_base=self.emu.api_base,
            options={"retry_base_s": 0.01, "max_retry_after_s": 2, "timeout_s": 10},
        )

    def new_tenant(self, name: str) -> str:
        return self.emu.store.add_company(name).realm

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        store = self.emu.store
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
            invoice = store.create(
                tenant,
                "Invoice",
                {
                    "CustomerRef": {"value": customer["Id"]},
                    "DueDate": "2024-01-31",
                    "Line": [
                        {
                            "DetailType": "SalesItemLineDetail",
                            "Amount": amount,
                            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
                        }
                    ],
                },
            )
            ids.append(invoice["Id"])
        return ids

    def authorize(self, tenant: str, state: str, code_challenge: str = "") -> dict[str, str]:
        url = oauth.authorization_url(self.settings(), state, code_challenge)
        args = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        answer = requests.post(
            f"{self.emu.url}/connect/oauth2/decide",
            data={**args, "realm": tenant, "decision": "approve"},
            allow_redirects=False,
            timeout=5,
        )
        return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}

    def tokens(self, tenant: str) -> TokenSet:
        settings = self.settings()
        params = self.authorize(tenant, "contract-state")
        return oauth.exchange_code(settings, params, "", datetime.now(UTC))

    def record_payment(self, tenant: str, invoice_id: str, amount: Decimal | None = None) -> None:
        body: dict[str, object] = {"invoice_id": invoice_id}
        if amount is not None:
            body["amount"] = str(amount)
        requests.post(f"{self.emu.url}/__admin/companies/{tenant}/pay", json=body, timeout=5).raise_for_status()

    def touch_invoice(self, tenant: str, invoice_id: str) -> None:
        requests.post(
            f"{self.emu.url}/__admin/companies/{tenant}/invoices/{invoice_id}",
            json={"CustomerMemo": {"value": "edited by a user"}},
            timeout=5,
        ).raise_for_status()

    def expire_access_token(self, tenant: str) -> None:
        requests.post(f"{self.emu.url}/__admin/companies/{tenant}/expire-access", timeout=5).raise_for_status()

    def data_calls(self, tenant: str) -> int:
        return self.emu.data_calls(tenant)

    def note_count(self, tenant: str, invoice_id: str, text: str) -> int:
        note = str(self.emu.store.read(tenant, "Invoice", invoice_id).get("PrivateNote") or "")
        return note.count(text)

    def fee_invoices(self, tenant: str) -> int:
        invoices = self.emu.store.company(tenant).entities["Invoice"].values()
        return sum(1 for i in invoices if str(i.get("DocNumber", "")).startswith("LF-"))

    def credits(self, tenant: str) -> int:
        return len(self.emu.store.company(tenant).entities["CreditMemo"])

    def forget_idempotency(self, tenant: str) -> None:
        company = self.emu.store.company(tenant)
        with company.lock:
            company.replies.clear()

    def webhook_body(self, tenant: str, invoice_id: str) -> bytes:
        body = {
            "eventNotifications": [
                {
                    "realmId": tenant,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Invoice",
                                "id": invoice_id,
                                "operation": "Update",
                                "lastUpdated": "2025-09-08T20:52:31.657Z",
                            }
                        ]
                    },
                }
            ]
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def sign_webhook(self, body: bytes) -> tuple[str, str]:
        return sign(body, VERIFIER), VERIFIER


HARNESS = QuickBooksHarness
