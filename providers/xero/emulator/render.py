"""Records → Xero JSON (PascalCase, `/Date(..)/` with `...String` twins), full or `summaryOnly`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from providers.xero.emulator.ledger import Ledger
from providers.xero.emulator.wire import date_string, ms_date

# summaryOnly drops the computation-heavy collections (docs/provider-api-facts.md §2.2; exact field list [unverified]).
_SUMMARY_DROPS = ("LineItems", "Payments", "CreditNotes", "Prepayments", "Overpayments")


def local_midnight(ledger: Ledger, day: date) -> datetime:
    """The instant a calendar date of the organisation starts: Xero's `/Date(ms+0000)/` of a date field is the
    organisation's local midnight in UTC milliseconds, so in New Zealand it reads as the previous UTC day."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(ledger.time_zone))


@lru_cache(maxsize=65_536)
def _midnight_ms(day: date, time_zone: str) -> str:
    """`/Date(..)/` of a calendar date's local midnight in `time_zone`: a listing renders thousands of dates, most
    of them alike; a pure function of its arguments, so remembering it cannot go stale."""
    return ms_date(datetime.combine(day, time(0), tzinfo=ZoneInfo(time_zone)))


@lru_cache(maxsize=65_536)
def _utc_ms(stamp: datetime) -> str:
    """`/Date(..)/` of a UTC instant (only UTC-aware instants come here: a naive one depends on the process zone)."""
    return ms_date(stamp)


def _date_ms(ledger: Ledger, value: date) -> str:
    if type(value) is date:
        return _midnight_ms(value, ledger.time_zone)
    return ms_date(local_midnight(ledger, value))


def _stamp_ms(stamp: datetime) -> str:
    return _utc_ms(stamp) if stamp.tzinfo is UTC else ms_date(stamp)


def _dates(ledger: Ledger, record: dict[str, Any], out: dict[str, Any]) -> None:
    for key in ("Date", "DueDate", "FullyPaidOnDate", "ExpectedPaymentDate"):
        value = record.get(key)
        if isinstance(value, date):
            out[key] = _date_ms(ledger, value)
            if key in ("Date", "DueDate"):
                out[f"{key}String"] = date_string(value)
        elif key in out:
            del out[key]
    stamp = record.get("UpdatedDateUTC")
    if isinstance(stamp, datetime):
        out["UpdatedDateUTC"] = _stamp_ms(stamp)


def _contact_stub(ledger: Ledger, contact_id: str, name: str) -> dict[str, Any]:
    return {
        "ContactID": contact_id,
        "Name": known.get("Name", name) if (known := ledger.contacts.get(contact_id)) is not None else name,
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasValidationErrors": False,
    }


def invoice(ledger: Ledger, record: dict[str, Any], *, summary: bool = False) -> dict[str, Any]:
    """One invoice as GET /Invoices returns it (payload xero_invoices_get.json)."""
    out = dict(record)
    out["Contact"] = _contact_stub(ledger, record["Contact"]["ContactID"], record["Contact"]["Name"])
    if summary:
        for key in _SUMMARY_DROPS:
            out.pop(key, None)
    else:
        out["Payments"] = [_nested_dates(p) for p in record["Payments"]]
        out["CreditNotes"] = [_nested_dates(c) for c in record["CreditNotes"]]
        out["Overpayments"] = [_nested_dates(o) for o in record["Overpayments"]]
        out["Prepayments"] = [_nested_dates(p) for p in record["Prepayments"]]
    _dates(ledger, record, out)
    if record["Type"] == "ACCPAY" or not record.get("SentToContact"):
        out.pop("SentToContact", None)
    return out


def _nested_dates(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if isinstance(item.get("Date"), date):
        out["Date"] = ms_date(item["Date"])
    if isinstance(item.get("UpdatedDateUTC"), datetime):
        out["UpdatedDateUTC"] = ms_date(item["UpdatedDateUTC"])
    return out


def contact(ledger: Ledger, record: dict[str, Any], *, summary: bool = False) -> dict[str, Any]:
    """One contact as GET /Contacts returns it."""
    out = {
        "ContactID": record["ContactID"],
        "ContactStatus": record["ContactStatus"],
        "Name": record["Name"],
        "FirstName": record.get("FirstName", ""),
        "LastName": record.get("LastName", ""),
        "EmailAddress": record.get("EmailAddress", ""),
        "ContactPersons": [dict(p) for p in record.get("ContactPersons", [])],
        "IsSupplier": bool(record.get("IsSupplier")),
        "IsCustomer": bool(record.get("IsCustomer")),
        "Addresses": [dict(a) for a in record.get("Addresses", [])],
        "Phones": [dict(p) for p in record.get("Phones", [])],
        "ContactGroups": [],
        "HasValidationErrors": False,
        "UpdatedDateUTC": ms_date(record["UpdatedDateUTC"]),
    }
    if summary:
        for key in ("ContactPersons", "Addresses", "Phones", "ContactGroups"):
            out.pop(key)
    return out


def credit_note(ledger: Ledger, record: dict[str, Any]) -> dict[str, Any]:
    """One credit note with its allocations."""
    out = dict(record)
    out["Contact"] = _contact_stub(ledger, record["Contact"]["ContactID"], record["Contact"]["Name"])
    out["Allocations"] = [_nested_dates(a) for a in record["Allocations"]]
    _dates(ledger, record, out)
    return out


def unapplied(ledger: Ledger, record: dict[str, Any]) -> dict[str, Any]:
    """One overpayment or prepayment."""
    out = dict(record)
    out["Contact"] = _contact_stub(ledger, record["Contact"]["ContactID"], record["Contact"]["Name"])
    out["Allocations"] = [_nested_dates(a) for a in record.get("Allocations", [])]
    _dates(ledger, record, out)
    return out


def payment(ledger: Ledger, record: dict[str, Any]) -> dict[str, Any]:
    """One payment as GET /Payments returns it (xero_payments_get.json): its invoice with contact and currency."""
    out = _nested_dates(record)
    invoice = ledger.invoices.get(record["Invoice"]["InvoiceID"])
    if invoice is not None:
        contact = invoice["Contact"]
        out["Invoice"] = {
            "Type": invoice["Type"],
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice["InvoiceNumber"],
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "CurrencyCode": invoice["CurrencyCode"],
            "Status": invoice["Status"],
        }
    return out


def history(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History records (payload xero_invoice_history_get.json)."""
    out = []
    for record in records:
        stamp: datetime = record["DateUTC"]
        out.append(
            {
                "Changes": record["Changes"],
                "DateUTCString": stamp.strftime("%Y-%m-%dT%H:%M:%S"),
                "DateUTC": ms_date(stamp),
                "User": record["User"],
                "Details": record["Details"],
            }
        )
    return out
