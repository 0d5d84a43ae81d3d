"""Contract suite: every provider with an installed emulator kit, the real SDK against its emulator on 127.0.0.1.

A provider joins by installing an `EmulatorKit` (providers/_emulator/kit.py) under the `nudge.emulators`
entry-point group: `provider_harness` is parametrized over every installed kit (test ids are the provider
keys); one harness (one emulator) serves a session. The harness is the kit plus what only a test does
with it: the provider's own OAuth calls around the kit's consent page, and the options the suite runs with.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connector.ports import ProviderSettings, ProviderSpec, TokenSet
from providers._emulator.kit import EmulatorKit, emulator_kit, emulator_names

REDIRECT_URI = "http://127.0.0.1:5000/oauth/{key}/callback"
WEBHOOK_KEY = "contract-webhook-key"
# Provider options the suite runs with (short retry waits; Xero's fee account and references spelled out).
OPTIONS: dict[str, dict[str, Any]] = {
    "quickbooks": {"retry_base_s": 0.01, "max_retry_after_s": 2, "timeout_s": 10},
    "xero": {"late_fee_account_code": "260", "late_fee_tax_type": "NONE", "fee_reference_prefix": "Late fee for"},
}


class ContractHarness:
    """One provider's emulator kit and spec, as the contract tests use them."""

    def __init__(self, kit: EmulatorKit) -> None:
        self.kit = kit
        self.key = kit.provider
        self.currency = kit.currency
        self.spec: ProviderSpec = importlib.import_module(f"providers.{self.key}").PROVIDER

    def settings(self) -> ProviderSettings:
        """Settings pointing the provider at the emulator."""
        redirect_uri = REDIRECT_URI.format(key=self.key)
        return self.kit.settings(redirect_uri, webhook_key=WEBHOOK_KEY, **OPTIONS.get(self.key, {}))

    def new_tenant(self, name: str) -> str:
        """A fresh, empty company/organisation."""
        return self.kit.add_company(name)

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        """`count` open invoices of one customer with an email."""
        return self.kit.seed_invoices(tenant, count)

    def authorize(self, tenant: str, state: str, code_challenge: str = "") -> dict[str, str]:
        """The provider's authorize URL, approved on the emulator's consent page for `tenant`."""
        return self.kit.approve(self.spec.authorization_url(self.settings(), state, code_challenge), [tenant])

    def tokens(self, tenant: str) -> TokenSet:
        """Connected tokens for `tenant` (consent + code exchange)."""
        params = self.authorize(tenant, "contract-state")
        return self.spec.exchange_code(self.settings(), params, "", datetime.now(UTC))

    def record_payment(self, tenant: str, invoice_id: str, amount: Decimal | None, on: date | None = None) -> str:
        """A customer pays `amount` (None: the balance) of the invoice, dated `on`; the payment object's id."""
        return self.kit.pay(tenant, invoice_id, amount, on)

    def record_credit(self, tenant: str, invoice_id: str, amount: Decimal, on: date | None = None) -> str:
        """A user credits `amount` to the invoice in the ledger; the credit object's id."""
        return self.kit.credit(tenant, invoice_id, amount, on)

    def record_overpayment(self, tenant: str, customer_id: str, amount: Decimal, on: date | None = None) -> str:
        """The customer pays `amount` that no invoice takes; the payment object's id."""
        return self.kit.overpay(tenant, customer_id, amount, on)

    def void_payment(self, tenant: str, payment_id: str) -> None:
        """A user voids or deletes the payment in the ledger."""
        self.kit.void_payment(tenant, payment_id)

    def touch_invoice(self, tenant: str, invoice_id: str) -> None:
        self.kit.touch_invoice(tenant, invoice_id)

    def annotate_invoice(self, tenant: str, invoice_id: str, text: str) -> None:
        """A user writes `text` where Nudge keeps its fee marker (QuickBooks PrivateNote, Xero Reference)."""
        self.kit.annotate_invoice(tenant, invoice_id, text)

    def new_located_tenant(self, name: str, country: str, subdivision: str, time_zone: str) -> str:
        """A fresh company/organisation in `country`, `subdivision` (its address) and `time_zone`."""
        return self.kit.add_company(name, country=country, subdivision=subdivision, time_zone=time_zone)

    def expire_access_token(self, tenant: str) -> None:
        self.kit.expire_access_tokens(tenant)

    def data_calls(self, tenant: str) -> int:
        return self.kit.data_calls(tenant)

    def note_count(self, tenant: str, invoice_id: str, text: str) -> int:
        return self.kit.note_count(tenant, invoice_id, text)

    def fee_invoices(self, tenant: str) -> int:
        return self.kit.ledger_writes(tenant)["fee_invoices"]

    def credits(self, tenant: str) -> int:
        return self.kit.ledger_writes(tenant)["credits"]

    def forget_idempotency(self, tenant: str) -> None:
        self.kit.forget_idempotency(tenant)

    def webhook_body(self, tenant: str, invoice_id: str) -> bytes:
        return self.kit.webhook_body(tenant, invoice_id)

    def sign_webhook(self, body: bytes) -> tuple[str, str]:
        """(signature header value, key) as the provider signs a delivery."""
        return self.kit.sign_webhook(body, WEBHOOK_KEY), WEBHOOK_KEY


KITS = emulator_names()


@pytest.fixture(scope="session", params=KITS, ids=KITS)
def provider_harness(request: pytest.FixtureRequest) -> Iterator[ContractHarness]:
    with emulator_kit(request.param) as kit:
        yield ContractHarness(kit)


@pytest.fixture
def provider(provider_harness: ContractHarness) -> ProviderSpec:
    spec = provider_harness.spec
    assert spec.key == provider_harness.key
    return spec
