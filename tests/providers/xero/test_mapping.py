"""Xero JSON → snapshots, against the published sample payload (docs/payloads)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector.domain.model import InvoiceStatus
from connector.errors import MappingError
from providers.xero import mapping

PAYLOADS = Path(__file__).resolve().parents[3] / "docs" / "payloads"
FIXTURES = Path(__file__).resolve().parents[3] / "providers" / "xero" / "fixtures"


def _payload(name: str) -> dict:
    path = FIXTURES / name if (FIXTURES / name).exists() else PAYLOADS / name
    return json.loads(path.read_text(), parse_float=Decimal)


def test_invoices_get_sample_maps_exactly() -> None:
    invoices = [mapping.to_invoice(raw, home_currency="USD") for raw in _payload("xero_invoices_get.json")["Invoices"]]

    voided, paid, open_ = invoices
    assert [i.status for i in invoices] == [InvoiceStatus.VOIDED, InvoiceStatus.PAID, InvoiceStatus.OPEN]
    assert [i.number for i in invoices] == ["INV-0001", "INV-0002", "INV-0003"]
    assert open_.external_id == "7ef31b20-de17-4312-8382-412f869b1510"
    assert open_.customer_external_id == "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7"
    assert open_.customer_name == "Barney Rubble-83203"
    assert open_.currency == "NZD"  # the invoice's own currency wins over home_currency
    assert open_.balance.amount == Decimal("115.00")
    assert isinstance(open_.balance.amount, Decimal)
    assert open_.total.amount == Decimal("115.00")
    assert open_.issue_date == date(2018, 11, 2)
    assert open_.due_date == date(2018, 11, 7)
    assert open_.updated_at == datetime(2018, 11, 2, 16, 37, 28, 927000, tzinfo=UTC)
    assert open_.is_open
    assert paid.balance.amount == Decimal("0.00")
    assert paid.total.amount == Decimal("46.00")
    assert voided.total.amount == Decimal("40.00")
    assert voided.due_date == date(2018, 12, 30)
    assert voided.issue_date == date(2018, 10, 20)
    assert all(i.emails == () for i in invoices)


def test_float_amounts_and_missing_currency() -> None:
    raw = dict(_payload("xero_invoices_get.json")["Invoices"][2])
    raw.pop("CurrencyCode")
    raw["AmountDue"] = 115.1  # a plain json.loads float
    snapshot = mapping.to_invoice(raw, home_currency="gbp")
    assert snapshot.currency == "GBP"
    assert snapshot.balance.amount == Decimal("115.10")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1539993600000+0000)/", date(2018, 10, 20)),
        ("/Date(1539993600000)/", date(2018, 10, 20)),
        ("/Date(1539950400000+1300)/", date(2018, 10, 20)),  # 2018-10-19T12:00Z read in +13:00
        ("2018-10-20T00:00:00", date(2018, 10, 20)),
    ],
)
def test_dates(text: str, expected: date) -> None:
    assert mapping.parse_day(text) == expected


def test_unknown_status_is_a_mapping_error_naming_the_field() -> None:
    raw = dict(_payload("xero_invoices_get.json")["Invoices"][0], Status="SOMETHING")
    with pytest.raises(MappingError) as info:
        mapping.to_invoice(raw, home_currency="NZD")
    assert info.value.field == "Status"


def test_contact_emails_primary_then_included_persons() -> None:
    customer = mapping.to_customer(
        {
            "ContactID": "c1",
            "Name": "Rubble",
            "EmailAddress": "ap@rubble.example",
            "ContactStatus": "ARCHIVED",
            "ContactPersons": [
                {"EmailAddress": "betty@rubble.example", "IncludeInEmails": True},
                {"EmailAddress": "bamm@rubble.example", "IncludeInEmails": False},
                {"EmailAddress": "AP@rubble.example", "IncludeInEmails": True},
            ],
        }
    )
    assert customer.emails == ("ap@rubble.example", "betty@rubble.example")
    assert customer.active is False


def test_cursor_round_trip() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert mapping.parse_cursor(mapping.cursor_text(moment)) == moment
