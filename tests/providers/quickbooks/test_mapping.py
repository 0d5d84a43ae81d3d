"""mapping.to_invoice / to_customer / to_payments against the real QuickBooks samples and hostile variants."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.domain.model import InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.errors import MappingError
from providers.quickbooks.mapping import parse_instant, to_customer, to_invoice, to_payments
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


# -- to_payments: Payment and CreditMemo (issue 11) ------------------------------------------------------
def payment_sample() -> dict:
    return fixture_json("qbo_payment_read.json")


def creditmemo_sample() -> dict:
    return fixture_json("qbo_creditmemo_create.json")


def test_payment_sample_maps_exactly() -> None:
    """docs/payloads/qbo_payment_read.json: 55.00 to invoice 70, the 10.00 UnappliedAmt left unapplied."""
    applied, unapplied = to_payments(payment_sample(), home_currency="USD")
    assert applied == PaymentSnapshot(
        external_id="163",
        kind=PaymentKind.PAYMENT,
        invoice_external_id="70",
        customer_external_id="20",
        amount=Money.of("55.00", "USD"),
        paid_on=date(2015, 1, 16),
    )
    assert unapplied == PaymentSnapshot(
        "163", PaymentKind.PAYMENT, "", "20", Money.of("10.00", "USD"), date(2015, 1, 16)
    )
    assert unapplied.unapplied
    # The bare object (as CDC and queries return it) and Decimal-parsed JSON map the same.
    assert to_payments(payment_sample()["Payment"], home_currency="USD") == [applied, unapplied]
    decimal_parsed = json.loads(json.dumps(payment_sample()), parse_float=Decimal)
    assert to_payments(decimal_parsed, home_currency="USD") == [applied, unapplied]


def test_creditmemo_sample_maps_exactly() -> None:
    """docs/payloads/qbo_creditmemo_create.json: a new 50.00 memo, RemainingCredit 50.00, all unapplied."""
    assert to_payments(creditmemo_sample(), home_currency="USD") == [
        PaymentSnapshot("150", PaymentKind.CREDIT, "", "3", Money.of("50.00", "USD"), date(2014, 12, 31))
    ]
    assert to_payments(creditmemo_sample()["CreditMemo"], home_currency="EUR")[0].amount == Money.of("50.00", "EUR")


def test_creditmemo_used_on_its_linked_invoice() -> None:
    memo = creditmemo_sample()["CreditMemo"]
    memo.update(RemainingCredit=20.0, Balance=20.0, LinkedTxn=[{"TxnId": "70", "TxnType": "Invoice"}])
    applied, rest = to_payments({"CreditMemo": memo}, home_currency="USD")
    assert (applied.invoice_external_id, applied.amount, applied.kind) == (
        "70",
        Money.of("30", "USD"),
        PaymentKind.CREDIT,
    )
    assert (rest.invoice_external_id, rest.amount) == ("", Money.of("20", "USD"))
    memo["LinkedTxn"] = [{"TxnId": "70", "TxnType": "Invoice"}, {"TxnId": "71", "TxnType": "Invoice"}]
    memo.update(RemainingCredit=0.0, Balance=0.0, TotalAmt=50.01)
    split = to_payments({"CreditMemo": memo}, home_currency="USD")
    assert [(s.invoice_external_id, s.amount.amount) for s in split] == [
        ("70", Decimal("25.01")),
        ("71", Decimal("25.00")),
    ]


def test_payment_applying_a_credit_memo_is_no_money_of_its_own() -> None:
    """QuickBooks applies a credit memo by a zero-amount Payment linking both: the memo carries that credit."""
    raw = {
        "Id": "9",
        "CustomerRef": {"value": "3"},
        "TxnDate": "2026-01-02",
        "TotalAmt": 0,
        "UnappliedAmt": 0,
        "Line": [
            {"Amount": 15, "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]},
            {"Amount": 15, "LinkedTxn": [{"TxnId": "150", "TxnType": "CreditMemo"}]},
        ],
    }
    assert to_payments({"Payment": raw}, home_currency="USD") == []
    raw["TotalAmt"] = 5  # 20 to the invoice: 15 from the memo, 5 in cash
    raw["Line"][0]["Amount"] = 20
    [cash] = to_payments({"Payment": raw}, home_currency="USD")
    assert (cash.invoice_external_id, cash.amount) == ("70", Money.of("5", "USD"))


def test_voided_and_deleted_money_objects_have_nothing_left() -> None:
    voided = payment_sample()["Payment"]
    voided.update(TotalAmt=0.0, UnappliedAmt=0.0, PrivateNote="Voided")
    voided["Line"][0]["Amount"] = 0.0
    assert to_payments({"Payment": voided}, home_currency="USD") == []
    tombstone = {
        "domain": "QBO",
        "status": "Deleted",
        "Id": "163",
        "MetaData": {"LastUpdatedTime": "2015-01-16T15:08:12-08:00"},
    }
    assert to_payments({"Payment": tombstone}, home_currency="USD") == []
    assert to_payments({"CreditMemo": tombstone}, home_currency="USD") == []


def test_foreign_currency_payment_uses_its_currency_ref() -> None:
    raw = payment_sample()
    raw["Payment"]["CurrencyRef"] = {"value": "EUR", "name": "Euro"}
    assert {s.amount.currency for s in to_payments(raw, home_currency="USD")} == {"EUR"}


@pytest.mark.parametrize(
    ("entity", "mutate", "field"),
    [
        ("Payment", lambda p: p.pop("Id"), "Id"),
        ("Payment", lambda p: p.pop("CustomerRef"), "CustomerRef"),
        ("Payment", lambda p: p.pop("TxnDate"), "TxnDate"),
        ("Payment", lambda p: p.update(TxnDate="2015-02-30"), "TxnDate"),
        ("Payment", lambda p: p.update(TotalAmt="lots"), "TotalAmt"),
        ("Payment", lambda p: p.update(TotalAmt=-65), "TotalAmt"),
        ("Payment", lambda p: p.update(TotalAmt=20), "TotalAmt"),
        ("Payment", lambda p: p.update(UnappliedAmt=-1), "UnappliedAmt"),
        ("Payment", lambda p: p.update(Line="all of it"), "Line"),
        ("Payment", lambda p: p["Line"][0].update(Amount=-55), "Line.Amount"),
        ("Payment", lambda p: p["Line"][0].update(Amount=None), "Line.Amount"),
        ("Payment", lambda p: p["Line"][0].update(LinkedTxn={"TxnId": "70"}), "Line.LinkedTxn"),
        ("Payment", lambda p: p["Line"][0].update(LinkedTxn=[{"TxnType": "Invoice"}]), "Line.LinkedTxn.TxnId"),
        ("Payment", lambda p: p.update(CurrencyRef={"value": "ZZZ"}), "CurrencyRef"),
        ("Payment", lambda p: p.update(UnappliedAmt=1e30, TotalAmt=1e31), "UnappliedAmt"),
        ("Payment", lambda p: p["Line"][0].update(Amount=1e30) or p.update(TotalAmt=1e31), "Line.Amount"),
        ("CreditMemo", lambda m: m.update(RemainingCredit=60.0), "RemainingCredit"),
        ("CreditMemo", lambda m: m.pop("TxnDate"), "TxnDate"),
        ("CreditMemo", lambda m: m.update(LinkedTxn="70"), "LinkedTxn"),
        ("CreditMemo", lambda m: m.update(TotalAmt=None), "TotalAmt"),
    ],
)
def test_broken_money_object_names_id_and_field(entity, mutate, field) -> None:
    raw = (payment_sample() if entity == "Payment" else creditmemo_sample())[entity]
    mutate(raw)
    with pytest.raises(MappingError) as caught:
        to_payments({entity: raw}, home_currency="USD")
    assert caught.value.field == field
    assert caught.value.external_id == str(raw.get("Id", ""))
    assert field in str(caught.value)


def test_a_money_object_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MappingError):
        to_payments([], home_currency="USD")  # type: ignore[arg-type]


def test_customer_address_and_phone_for_the_hand_off_pack() -> None:
    raw = {
        "Id": "7",
        "DisplayName": "Acme",
        "BillAddr": {
            "Id": "2",
            "Line1": "1 High St",
            "Line2": "",
            "City": "London",
            "PostalCode": "N1 9GU",
            "Country": "UK",
        },
        "PrimaryPhone": {"FreeFormNumber": "+44 20 7946 0000"},
    }
    customer = to_customer(raw)
    assert customer.address == ("1 High St", "London N1 9GU", "UK")
    assert customer.phone == "+44 20 7946 0000"
    assert to_customer({"Id": "8", "DisplayName": "Bare"}).address == ()
