"""RS-33 — QuickBooks query injection: names and DocNumbers holding `'`, `\\`, `\\'`, `%`, `"` and newlines; ids
holding `1 OR 1=1` or `' AND Id='2` (and digits that are not ASCII, like `²` or `١٢٣`).

The adapter's lookups run against the emulator's query language (real HTTP, the real SDK).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import Rejected
from providers.quickbooks.adapter import QuickBooksAdapter
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company, emulator_company

HOSTILE = [
    "O'Brien & Sons",
    "Back\\slash Ltd",
    "Escaped \\' quote",
    "100% Legit",
    'Say "hello"',
    "Two\nLines",
    "' OR '1'='1",
    "x' OR DisplayName LIKE '%",
]
BAD_IDS = ["1 OR 1=1", "' AND Id='2", "²", "١٢٣", "1; DROP", ""]


@pytest.fixture
def company(qbo: EmulatorHandle) -> Company:
    return emulator_company(qbo, retry_base_s=0.01, timeout_s=10)


def _statuses(qbo: EmulatorHandle, company: Company, since: int) -> list[int]:
    return [c.status for c in qbo.core.calls("data", company.realm)[since:]]


def test_rs33_hostile_names_and_doc_numbers_find_only_the_intended_row(qbo: EmulatorHandle, company: Company) -> None:
    """A valid, correctly escaped query; only the intended rows returned."""
    ids = {name: company.customer(name) for name in HOSTILE}
    company.customer("O")  # decoys a broken escape would match
    company.customer("Back")
    docs: dict[str, str] = {}
    for number, name in enumerate(HOSTILE):
        doc = name.replace("\n", "\\n")[:14] + f"-{number}"
        docs[doc] = company.invoice(ids[name], "10.00", DocNumber=doc)["Id"]
    adapter = company.adapter()
    before = len(qbo.core.calls("data", company.realm))
    for name, ident in ids.items():
        found = adapter._find_one("Customer", "DisplayName", name)
        assert found is not None, name
        assert found["Id"] == ident
    for doc, ident in docs.items():
        found = adapter._find_one("Invoice", "DocNumber", doc)
        assert found is not None, doc
        assert found["Id"] == ident
    assert adapter._find_one("Customer", "DisplayName", "' OR ''='") is None
    assert set(_statuses(qbo, company, before)) == {200}  # every query parsed (no 4000 QueryParserError)


def _snapshot(external_id: str, customer_id: str = "1") -> InvoiceSnapshot:
    return InvoiceSnapshot(
        external_id=external_id,
        number="1001",
        customer_external_id=customer_id,
        customer_name="Anyone",
        currency="USD",
        total=Money.of("10.00", "USD"),
        balance=Money.of("10.00", "USD"),
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
        status=InvoiceStatus.OPEN,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _calls(bad: str) -> list[tuple[str, Callable[[QuickBooksAdapter], Any]]]:
    fee = Money.of("5.00", "USD")
    return [
        ("get_invoice", lambda a: a.get_invoice(bad)),
        ("customer_contacts", lambda a: a.customer_contacts(bad)),
        ("unapplied_credit", lambda a: a.unapplied_credit(bad)),
        ("add_note", lambda a: a.add_note(_snapshot(bad), "note", "k-note")),
        ("add_fee_line", lambda a: a.add_fee_line(_snapshot(bad), fee, "fee", "k-line")),
        ("create_credit", lambda a: a.create_credit(_snapshot("1", bad), fee, "credit", "k-credit")),
        ("void_fee_invoice", lambda a: a.void_fee_invoice(bad, "k-void")),
        ("send_via_provider", lambda a: a.send_via_provider(_snapshot(bad), "ap@x.example", "k-send")),
    ]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_rs33_non_digit_ids_are_rejected_before_any_call(qbo: EmulatorHandle, company: Company, bad: str) -> None:
    """Non-digit ids rejected before any call."""
    adapter = company.adapter()
    adapter._items = {"Late fee": "1", "Early payment discount": "1"}  # no item lookups in the way
    before = company.data_calls()
    for name, call in _calls(bad):
        with pytest.raises(Rejected):
            call(adapter)
        assert company.data_calls() == before, name
    with pytest.raises(Rejected):
        QuickBooksAdapter(bad, company.tokens, company.settings)
