"""Xero JSON → snapshots, against the published sample payload (docs/payloads)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector.domain.model import InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
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


# -- payments, credit notes, overpayments, prepayments (issue 11) --------------------------------------
def test_payments_get_sample_maps_exactly() -> None:
    (raw,) = _payload("xero_payments_get.json")["Payments"]
    (payment,) = mapping.to_payments(raw, home_currency="USD")
    assert payment == PaymentSnapshot(
        external_id="99ea7f6b-c513-4066-bc27-b7c65dcd76c2",
        kind=PaymentKind.PAYMENT,
        invoice_external_id="046d8a6d-1ae1-4b4d-9340-5601bdf41b87",
        customer_external_id="a3675fc4-f8dd-4f03-ba5b-f1870566bcd7",
        amount=Money.of("46.00", "NZD"),  # the invoice's currency, not home_currency
        paid_on=date(2018, 11, 29),
    )


def test_creditnotes_get_sample_maps_exactly() -> None:
    (raw,) = _payload("xero_creditnotes_get.json")["CreditNotes"]
    assert mapping.to_payments(raw, home_currency="USD") == [
        PaymentSnapshot(
            external_id="aea95d78-ea48-456b-9b08-6bc012600072",
            kind=PaymentKind.CREDIT,
            invoice_external_id="87cfa39f-136c-4df9-a70d-bb80d8ddb975",
            customer_external_id="c6c7b870-bb4d-489a-921e-2f0ee4192ff9",
            amount=Money.of("100.00", "NZD"),
            paid_on=date(2016, 12, 16),
        )
    ]  # RemainingCredit 0.00: no unapplied remainder


def test_payments_embedded_in_invoices_sample_map_exactly() -> None:
    """The invoice's own Payments[] summaries carry PaymentID, Date and Amount; with the invoice as context."""
    paid = _payload("xero_invoices_get.json")["Invoices"][1]
    (embedded,) = paid["Payments"]
    raw = {**embedded, "Invoice": {k: paid[k] for k in ("InvoiceID", "Type", "Contact", "CurrencyCode")}}
    (payment,) = mapping.to_payments(raw, home_currency="USD")
    assert payment.external_id == "99ea7f6b-c513-4066-bc27-b7c65dcd76c2"
    assert payment.invoice_external_id == paid["InvoiceID"]
    assert payment.amount == Money.of("46.00", "NZD")
    assert payment.paid_on == date(2018, 11, 29)
    assert paid["CreditNotes"] == []


def test_deleted_payment_is_voided_and_refunds_are_not_payments() -> None:
    (raw,) = _payload("xero_payments_get.json")["Payments"]
    (deleted,) = mapping.to_payments({**raw, "Status": "DELETED"}, home_currency="NZD")
    assert deleted.voided
    for refund in ("ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT", "ACCPAYPAYMENT"):
        assert mapping.to_payments({**raw, "PaymentType": refund}, home_currency="NZD") == []


def test_credit_note_partly_allocated_leaves_the_rest_unapplied() -> None:
    (raw,) = _payload("xero_creditnotes_get.json")["CreditNotes"]
    raw = {**raw, "Status": "AUTHORISED", "Total": Decimal("150.00"), "RemainingCredit": Decimal("50.00")}
    applied, rest = mapping.to_payments(raw, home_currency="USD")
    assert (applied.amount, applied.unapplied) == (Money.of("100.00", "NZD"), False)
    assert (rest.amount, rest.unapplied, rest.paid_on) == (Money.of("50.00", "NZD"), True, date(2016, 12, 16))
    voided = mapping.to_payments({**raw, "Status": "VOIDED"}, home_currency="USD")
    assert [s.voided for s in voided] == [True, True]
    assert mapping.to_payments({**raw, "Type": "ACCPAYCREDIT"}, home_currency="USD") == []
    assert mapping.to_payments({**raw, "Status": "DRAFT"}, home_currency="USD") == []


@pytest.mark.parametrize(("field", "kind"), [("OverpaymentID", "overpayment"), ("PrepaymentID", "prepayment")])
def test_overpayments_and_prepayments_map_allocations_and_remaining_credit(field: str, kind: str) -> None:
    raw = {
        field: "op-1",
        "Type": f"RECEIVE-{kind.upper()}",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1"},
        "DateString": "2026-02-03T00:00:00",
        "Date": "/Date(1770030000000+0000)/",
        "CurrencyCode": "AUD",
        "Total": "80.00",
        "RemainingCredit": "30.00",
        "Allocations": [{"Amount": "50.00", "Date": "/Date(1770076800000+0000)/", "Invoice": {"InvoiceID": "inv-1"}}],
    }
    applied, rest = mapping.to_payments(raw, home_currency="NZD")
    assert applied.kind is rest.kind is PaymentKind(kind)
    assert (applied.invoice_external_id, applied.amount, applied.paid_on) == (
        "inv-1",
        Money.of("50.00", "AUD"),
        date(2026, 2, 3),
    )
    assert (rest.invoice_external_id, rest.amount, rest.paid_on) == ("", Money.of("30.00", "AUD"), date(2026, 2, 3))
    assert mapping.to_payments({**raw, "Type": f"SPEND-{kind.upper()}"}, home_currency="NZD") == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"PaymentID": "p-1", "Amount": "5", "Date": "/Date(0+0000)/"}, "Invoice.InvoiceID"),
        ({"PaymentID": "p-1", "Amount": "-5", "Date": "/Date(0+0000)/", "Invoice": {"InvoiceID": "i"}}, "Amount"),
        ({"PaymentID": "p-1", "Amount": "x", "Date": "/Date(0+0000)/", "Invoice": {"InvoiceID": "i"}}, "Amount"),
        ({"PaymentID": "p-1", "Amount": "5", "Invoice": {"InvoiceID": "i"}}, "Date"),
        ({"PaymentID": "p-1", "Amount": "5", "Date": "soon", "Invoice": {"InvoiceID": "i"}}, "Date"),
        ({"PaymentID": "p-1", "Amount": "5", "Date": "/Date(0+0000)/", "Invoice": "i"}, "Invoice"),
        ({"PaymentID": ""}, "PaymentID"),
        ({"CreditNoteID": "c-1", "Allocations": "all"}, "Allocations"),
        ({"CreditNoteID": "c-1", "Allocations": [{"Amount": "1", "Date": "/Date(0+0000)/"}]}, "Allocations[0]"),
        ({"CreditNoteID": "c-1", "RemainingCredit": "lots", "Date": "/Date(0+0000)/"}, "RemainingCredit"),
        ({"Total": "5"}, "PaymentID"),
    ],
)
def test_hostile_money_objects_raise_mapping_error_naming_the_field(raw: dict, field: str) -> None:
    with pytest.raises(MappingError) as info:
        mapping.to_payments(raw, home_currency="NZD")
    assert info.value.field.startswith(field)


def test_contact_postal_address_and_default_phone_for_the_hand_off_pack() -> None:
    customer = mapping.to_customer(
        {
            "ContactID": "c1",
            "Name": "Rubble",
            "Addresses": [
                {"AddressType": "STREET", "AddressLine1": "Quarry 3"},
                {
                    "AddressType": "POBOX",
                    "AddressLine1": "PO Box 12",
                    "City": "Leeds",
                    "Region": "",
                    "PostalCode": "LS1",
                },
            ],
            "Phones": [
                {"PhoneType": "MOBILE", "PhoneNumber": "07700 900000"},
                {"PhoneType": "DEFAULT", "PhoneCountryCode": "44", "PhoneAreaCode": "113", "PhoneNumber": "496 0000"},
            ],
        }
    )
    assert customer.address == ("PO Box 12", "Leeds LS1")
    assert customer.phone == "44 113 496 0000"
    assert mapping.to_customer({"ContactID": "c2", "Addresses": [], "Phones": []}).address == ()
