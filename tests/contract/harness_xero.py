"""Contract harness for Xero (protocol: tests/contract/conftest.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from connector.ports import ProviderSettings, TokenSet
from providers.xero import oauth
from providers.xero.emulator import XeroEmulator, start
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

WEBHOOK_KEY = "contract-xero-webhook-key"
FEE_PREFIX = "Late fee for"


class XeroHarness:
    key = "xero"
    currency = "NZD"

    def __init__(self) -> None:
        self._emu: XeroEmulator | None = None

    @property
    def emu(self) -> XeroEmulator:
        assert self._emu is not None, "harness not started"
        return self._emu

    def start(self) -> None:
        self._emu = start()

    def stop(self) -> None:
        self.emu.stop()

    def settings(self) -> ProviderSettings:
        return ProviderSettings(
            key="xero",
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri="http://127.0.0.1:5000/oauth/xero/callback",
            webhook_key=WEBHOOK_KEY,
            api_base=self.emu.api_base,
            identity_base=self.emu.url,
            options={"late_fee_account_code": "260", "late_fee_tax_type": "NONE", "fee_reference_prefix": FEE_PREFIX},
        )

    def _admin(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        answer = requests.request(method, f"{self.emu.url}/__admin/{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def new_tenant(self, name: str) -> str:
        return self.emu.add_tenant(name)

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        ledger = self.emu.state.ledgers[tenant]
        name = f"Contract Customer {len(ledger.contacts)}"
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
        body = {
            "tenants": [
                {
                    "tenantId": tenant,
                    "contacts": [{"Name": name, "EmailAddress": "ap@contract.example"}],
                    "invoices": invoices,
                }
            ]
        }
        return list(self._admin("seed", body)["tenants"][0]["invoices"])

    def authorize(self, tenant: str, state: str, code_challenge: str = "") -> dict[str, str]:
        url = oauth.authorization_url(self.settings(), state, code_challenge)
        page = requests.get(url, timeout=10)
        page.raise_for_status()
        hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        form = [*hidden, ("decision", "approve"), ("tenant", tenant)]
        answer = requests.post(urlsplit(url)._replace(query="").geturl(), data=form, allow_redirects=False, timeout=10)
        return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}

    def tokens(self, tenant: str) -> TokenSet:
        params = self.authorize(tenant, "contract-state")
        return oauth.exchange_code(self.settings(), params, "", datetime.now(UTC))

    def record_payment(self, tenant: str, invoice_id: str, amount: Decimal | None = None) -> None:
        if amount is None:
            amount = self.emu.state.ledgers[tenant].invoices[invoice_id]["AmountDue"]
        self._admin("payments", {"tenant": tenant, "invoice": invoice_id, "amount": str(amount)})

    def touch_invoice(self, tenant: str, invoice_id: str) -> None:
        self._admin(
            "invoices/update", {"tenant": tenant, "invoice": invoice_id, "changes": {"Reference": "edited by a user"}}
        )

    def expire_access_token(self, tenant: str) -> None:
        self._admin("tokens/expire")

    def data_calls(self, tenant: str) -> int:
        return len(self.emu.core.calls("data", tenant))

    def note_count(self, tenant: str, invoice_id: str, text: str) -> int:
        history = self.emu.state.ledgers[tenant].history.get(invoice_id, [])
        return sum(str(record["Details"]).count(text) for record in history if record["Changes"] == "Note")

    def fee_invoices(self, tenant: str) -> int:
        invoices = self.emu.state.ledgers[tenant].invoices.values()
        return sum(1 for i in invoices if str(i.get("Reference", "")).startswith(FEE_PREFIX))

    def credits(self, tenant: str) -> int:
        return len(self.emu.state.ledgers[tenant].credit_notes)

    def forget_idempotency(self, tenant: str) -> None:
        with self.emu.state.lock:
            for key in [k for k in self.emu.state.idempotency if k[0] == tenant]:
                del self.emu.state.idempotency[key]

    def webhook_body(self, tenant: str, invoice_id: str) -> bytes:
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}",
            "resourceId": invoice_id,
            "eventDateUtc": "2025-10-21T01:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        body = {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "CONTRACTENTROPY"}
        return json.dumps(body, separators=(",", ":")).encode()

    def sign_webhook(self, body: bytes) -> tuple[str, str]:
        return self.emu.state.sign(body, WEBHOOK_KEY), WEBHOOK_KEY


HARNESS = XeroHarness
