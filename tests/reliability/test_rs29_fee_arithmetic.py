"""RS-29: percentage late fees in JPY, USD and EUR, in a foreign currency and on taxed invoices, planned
by Nudge and created through the real adapters in the emulators; Nudge's Decimal equals the ledger's Total."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.domain.money import Money
from connector.outbox.codec import action_from_json
from connector.worker.turn import adapter_for
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import customer_email

PERCENT = Decimal("1.5")
RULES = rules(
    [{"id": "fee", "offset": 3, "late_fee": "pct"}],
    late_fees={"pct": {"kind": "percent", "percent": 1.5, "warning_required": False}},
)


@dataclass(frozen=True)
class Case:
    """One fee: the company's home currency, the invoice's currency and amount, and the expected fee."""

    home: str
    currency: str  # "" = the home currency
    amount: str
    expected: str  # the balance x 1.5 %, rounded half-up to the currency's minor unit
    tax: str = ""  # Xero only: "Inclusive" / "Exclusive" line amounts at 15 % GST (OUTPUT2)
    balance: str = ""  # the invoice's balance when tax changes it ("" = amount)


CASES = {
    "jpy_0dp_half_up": Case("JPY", "", "12300", "185"),  # 184.5 -> 185 (half-even would give 184)
    "usd_2dp_half_up": Case("USD", "", "1231.00", "18.47"),  # 18.465 -> 18.47
    "eur_2dp": Case("EUR", "", "999.90", "15.00"),  # 14.9985 -> 15.00
    "foreign_eur_invoice_in_a_usd_company": Case("USD", "EUR", "333.33", "5.00"),  # 4.99995 -> 5.00 EUR
}
XERO_TAX_CASES = {
    "xero_tax_inclusive_org": Case("NZD", "", "1150.00", "17.25", tax="Inclusive", balance="1150.00"),
    "xero_tax_exclusive_org": Case("NZD", "", "1000.00", "17.25", tax="Exclusive", balance="1150.00"),
}
PARAMS = [
    *(
        pytest.param(provider, case, id=f"{provider}-{name}")
        for provider in ("quickbooks", "xero")
        for name, case in CASES.items()
    ),
    *(pytest.param("xero", case, id=name) for name, case in XERO_TAX_CASES.items()),
]


def _taxed_xero_invoice(world: Pipeline, tenant: str, customer: str, case: Case, issued: date, due: date) -> str:
    """A Xero invoice whose one line carries 15 % GST, entered tax-inclusive or tax-exclusive."""
    line = {
        "Description": "Joinery",
        "Quantity": 1,
        "UnitAmount": case.amount,
        "AccountCode": "200",
        "TaxType": "OUTPUT2",
    }
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "InvoiceNumber": "TX-1",
        "Contact": {"ContactID": customer},
        "Date": issued.isoformat(),
        "DueDate": due.isoformat(),
        "LineAmountTypes": case.tax,
        "LineItems": [line],
    }
    state = world.kit.emulator.state  # type: ignore[attr-defined]
    with state.lock:
        ledger = state.ledgers[tenant]
        record = ledger.create_invoice(body, state.now())
        ledger.events.clear()
        return str(record["InvoiceID"])


def _ledger_total(world: Pipeline, tenant: str, fee_id: str, home: str) -> tuple[Decimal, str]:
    """The fee invoice's Total and currency as the emulator stores them (QuickBooks omits a home CurrencyRef)."""
    if world.kit.provider == "quickbooks":
        raw = world.kit.emulator.store.read(tenant, "Invoice", fee_id)  # type: ignore[attr-defined]
        return Decimal(str(raw["TotalAmt"])), str((raw.get("CurrencyRef") or {}).get("value") or home)
    state = world.kit.emulator.state  # type: ignore[attr-defined]
    with state.lock:
        raw = state.ledgers[tenant].invoices[fee_id]
        return Decimal(str(raw["Total"])), str(raw["CurrencyCode"])


@pytest.mark.parametrize(("provider", "case"), PARAMS)
def test_rs29_percentage_fee_is_rounded_in_decimal_and_matches_the_ledger_total(
    provider: str, case: Case, tmp_path: Path
) -> None:
    """Expected: Decimal throughout; the fee equals the rounded value; the provider's Total matches Nudge's total."""
    now = datetime.now(UTC)
    with pipeline(provider, tmp_path, RULES, start=now) as world:
        kit = world.kit
        tenant = kit.add_company("Fee Co", case.home, foreign_currencies=bool(case.currency))
        customer = kit.add_customer(tenant, "Late Payer", customer_email("Late Payer"), case.currency)
        due = now.date() - timedelta(days=10)
        issued = due - timedelta(days=30)
        if case.tax:
            invoice = _taxed_xero_invoice(world, tenant, customer, case, issued, due)
        else:
            invoice = kit.add_invoice(tenant, customer, "FEE-1", Decimal(case.amount), case.currency, issued, due)
        currency = case.currency or case.home
        assert kit.balance(tenant, invoice) == Decimal(case.balance or case.amount)
        connection = world.connect(tenant)

        turn = world.turn(connection)

        [fee] = [row for row in world.actions(connection) if row.kind == "late_fee"]
        assert fee.state == "done", fee.error
        assert turn.execution.done == [fee.key]
        amount = action_from_json(fee.payload).amount
        assert isinstance(amount, Money)
        assert isinstance(amount.amount, Decimal)
        assert amount == Money.of(case.expected, currency)
        assert str(amount.amount) == case.expected  # the currency's minor unit: no "185.00" yen
        assert amount.amount == (Decimal(case.balance or case.amount) * PERCENT / 100).quantize(
            Decimal(case.expected), ROUND_HALF_UP
        )

        total, ledger_currency = _ledger_total(world, tenant, fee.external_ref, case.home)
        assert (total, ledger_currency) == (amount.amount, currency)
        with world.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection)
            assert row is not None
            adapter = adapter_for(world.services, row)
        read_back = adapter.get_invoice(fee.external_ref)
        assert read_back is not None
        assert read_back.total == amount
        assert isinstance(read_back.total.amount, Decimal)
