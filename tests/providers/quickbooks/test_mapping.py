"""mapping.to_invoice / to_customer against the real QuickBooks samples and hostile variants."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.domain.model import InvoiceStatus
from connector.errors import MappingError
from providers.quickbooks.mapping import parse_instant, to_customer, to_invoice
from tests.support.quickbooks import fixture_json


def query_sample() -> dict:
    return fixture_json("qbo_invoice_query.json")["QueryResponse"]["Invoice"][0]


def read_sample() -> dict:
    return fixture_json("qbo_invoice_read.json")["Invoice"]


def test_query_sample_maps_exactly() -> None:
    inv = to_invoice(query_sample(), home_currency="USD")
    assert inv.external_id == "239"
    assert inv.number == "1070"
    assert inv.customer_external_id == "1"
    assert inv.customer_name == "Amy's Bird Sanctuary"
    assert inv.currency == "USD"
    assert inv.total.amount == Decimal("150.00")
    assert inv.total.currency == "USD"
    assert inv.balance.amount == Decimal("150.00")
    assert inv.issue_date == date(2015, 7, 24)
    assert inv.due_date == date(2015, 8, 23)
    assert inv.status is InvoiceStatus.OPEN
    assert inv.updated_at == datetime(2015, 7, 24, 17, 35, 8, tzinfo=UTC)
    assert inv.emails == ()  # the sample has no BillEmail
    assert inv.version == "0"


def test_read_sample_with_tax_lines_maps_exactly() -> None:
    inv = to_invoice(read_sample(), home_currency="USD")
    assert inv.external_id == "130"
    assert inv.number == "1037"
    assert (inv.customer_external_id, inv.customer_name) == ("24", "Sonnenschein Family Store")
    # TotalAmt includes TxnTaxDetail.TotalTax (335.25 + 26.82); exact Decimal, no float noise.
    assert inv.total.amount == Decimal("362.07")
    assert isinstance(inv.total.amount, Decimal)
    assert str(inv.balance.amount) == "362.07"
    assert inv.issue_date == date(2014, 9, 19)
    assert inv.due_date == date(2014, 10, 19)
    assert inv.emails == ("Familiystore@intuit.com",)
    assert inv.updated_at == datetime(2014, 9, 19, 20, 16, 17, tzinfo=UTC)


def test_decimal_parsed_payload_maps_the_same() -> None:
    raw = json.loads((json.dumps(read_sample())), parse_float=Decimal)
    assert to_invoice(raw, home_currency="USD") == to_invoice(read_sample(), home_currency="USD")


def test_multi_currency_invoice_uses_its_currency_ref() -> None:
    raw = read_sample()
    raw["CurrencyRef"] = {"value": "EUR", "name": "Euro"}
    raw["ExchangeRate"] = 1.0876
    inv = to_invoice(raw, home_currency="USD")
    assert inv.currency == "EUR"
    assert inv.total.currency == "EUR"
    assert inv.balance.currency == "EUR"


def test_home_currency_applies_without_currency_ref() -> None:
    assert to_invoice(query_sample(), home_currency="GBP").currency == "GBP"


def test_missing_optional_fields() -> None:
    raw = query_sample()
    for key in ("DocNumber", "DueDate", "TxnDate", "BillEmail", "CurrencyRef", "SyncToken"):
        raw.pop(key, None)
    raw["CustomerRef"] = {"value": "1"}
    raw["Balance"] = 0  # a paid invoice needs no due date; an open one does (next test)
    inv = to_invoice(raw, home_currency="USD")
    assert inv.number == ""
    assert inv.due_date is None
    assert inv.issue_date is None
    assert inv.customer_name == ""


def test_open_invoice_without_due_date_is_quarantined() -> None:
    raw = query_sample()
    raw.pop("DueDate")
    with pytest.raises(MappingError) as info:
        to_invoice(raw, home_currency="USD")
    assert info.value.field == "DueDate"
    assert info.value.external_id == raw["Id"]


def test_paid_and_voided_status() -> None:
    raw = query_sample()
    raw["Balance"] = 0
    assert to_invoice(raw, home_currency="USD").status is InvoiceStatus.PAID
    raw.update(TotalAmt=0, Balance=0, PrivateNote="Voided")
    assert to_invoice(raw, home_currency="USD").status is InvoiceStatus.VOIDED


def test_cdc_tombstone_is_deleted() -> None:
    tomb = {
        "domain": "QBO",
        "status": "Deleted",
        "Id": "42",
        "MetaData": {"LastUpdatedTime": "2024-01-02T03:04:05-08:00"},
    }
    inv = to_invoice(tomb, home_currency="USD")
    assert inv.status is InvoiceStatus.DELETED
    assert inv.external_id == "42"
    assert inv.balance.is_zero()


def test_several_bill_emails() -> None:
    raw = read_sample()
    raw["BillEmail"] = {"Address": "a@x.example, b@y.example"}
    assert to_invoice(raw, home_currency="USD").emails == ("a@x.example", "b@y.example")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("TotalAmt"), "TotalAmt"),
        (lambda r: r.pop("Balance"), "Balance"),
        (lambda r: r.update(Balance="lots"), "Balance"),
        (lambda r: r.pop("CustomerRef"), "CustomerRef"),
        (lambda r: r.update(DueDate="23/08/2015"), "DueDate"),
        (lambda r: r.update(CurrencyRef={"value": "XXQ"}), "CurrencyRef"),
        (lambda r: r.pop("MetaData"), "MetaData.LastUpdatedTime"),
        (lambda r: r.update(Balance=999), "Balance"),
    ],
)
def test_broken_invoice_names_id_and_field(mutate, field) -> None:
    raw = copy.deepcopy(query_sample())
    mutate(raw)
    with pytest.raises(MappingError) as info:
        to_invoice(raw, home_currency="USD")
    assert info.value.external_id == "239"
    assert info.value.field == field


def test_non_digit_id_is_refused() -> None:
    raw = query_sample()
    raw["Id"] = "1 OR 1=1"
    with pytest.raises(MappingError) as info:
        to_invoice(raw, home_currency="USD")
    assert info.value.field == "Id"


def test_instants_in_every_qbo_format() -> None:
    expected = datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    assert parse_instant("2015-10-05T14:42:19-0700") == expected
    assert parse_instant("2015-10-05T14:42:19-07:00") == expected
    assert parse_instant("2025-09-10T21:31:25.179851517Z").microsecond == 179851


def test_customer_mapping() -> None:
    raw = {
        "Id": "7",
        "DisplayName": "Acme",
        "PrimaryEmailAddr": {"Address": "ap@acme.example; boss@acme.example"},
        "Active": False,
    }
    customer = to_customer(raw)
    assert customer.name == "Acme"
    assert customer.emails == ("ap@acme.example", "boss@acme.example")
    assert customer.active is False
