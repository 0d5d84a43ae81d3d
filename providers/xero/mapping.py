"""Xero JSON (PascalCase, as the Accounting API returns it) → Nudge's provider-neutral snapshots.

Quirks (docs/provider-api-facts.md §2.2): dates are `/Date(<ms>+0000)/` with ISO `...String` twins; `AmountDue` is the
authority for what is still owed; `Status` is one of DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED, DELETED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from connector.domain.calendar import holiday_subdivision
from connector.domain.model import CustomerSnapshot, InvoiceSnapshot, InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.errors import MappingError
from providers.xero.constants import FEE_MARKER, PROVIDER_KEY

_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")

STATUS = {
    "DRAFT": InvoiceStatus.DRAFT,
    # SUBMITTED = awaiting approval; still emailable (docs/provider-api-facts.md §2.3), so Nudge treats it as open.
    "SUBMITTED": InvoiceStatus.OPEN,
    "AUTHORISED": InvoiceStatus.OPEN,
    "PAID": InvoiceStatus.PAID,
    "VOIDED": InvoiceStatus.VOIDED,
    "DELETED": InvoiceStatus.DELETED,
}


def _from_milliseconds(text: str) -> datetime:
    """The instant `text` milliseconds after the epoch; ValueError when no datetime can hold it."""
    try:
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    except (OverflowError, OSError):
        raise ValueError(f"timestamp out of range: {text[:24]}") from None


def parse_instant(value: Any) -> datetime:
    """An aware UTC datetime from `/Date(ms+zzzz)/`, an ISO string, or a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value or "").strip()
    match = _MS_DATE.match(text)
    if match:
        return _from_milliseconds(match.group(1))
    if not text:
        raise ValueError("empty timestamp")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # Xero's "...UTC" fields carry no zone


def parse_day(value: Any) -> date | None:
    """A calendar date from `/Date(ms+zzzz)/` (read in the offset it names) or `2018-10-20T00:00:00`."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    match = _MS_DATE.match(text)
    if match:
        instant = _from_milliseconds(match.group(1))
        if match.group(2):
            offset = timedelta(hours=int(match.group(3)), minutes=int(match.group(4)))
            try:
                instant += offset if match.group(2) == "+" else -offset
            except OverflowError:
                raise ValueError(f"date out of range: {text[:40]}") from None
        return instant.date()
    return date.fromisoformat(text[:10])


def _calendar_date(raw: Mapping[str, Any], invoice_id: str, field: str) -> date | None:
    """The organisation's calendar date of `field`, read from its `...String` twin first.

    `DueDateString` (`2026-02-04T00:00:00`) is the date as the organisation sees it; `DueDate` is
    `/Date(ms+0000)/` of the organisation's local midnight, so read in UTC a New Zealand date comes out
    a day early. The `/Date(..)/` form is only the fallback when no twin is sent.
    """
    try:
        return parse_day(raw.get(f"{field}String") or raw.get(field))
    except ValueError as exc:
        raise MappingError(invoice_id, field, str(exc), provider=PROVIDER_KEY) from exc


def amount(value: Any) -> Decimal:
    """Exact Decimal from a JSON number (Decimal with parse_float=Decimal, int, float) or string."""
    if isinstance(value, bool) or value is None:
        raise ValueError("missing amount")
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def contact_emails(contact: Mapping[str, Any]) -> tuple[str, ...]:
    """The primary email, then every contact person flagged "include in emails" (docs/provider-api-facts.md §2.3)."""
    emails: list[str] = []
    primary = str(contact.get("EmailAddress") or "").strip()
    if primary:
        emails.append(primary)
    persons = contact.get("ContactPersons")
    for person in persons if isinstance(persons, list) else []:
        if not isinstance(person, Mapping):
            continue
        address = str(person.get("EmailAddress") or "").strip()
        if person.get("IncludeInEmails") and address and address.lower() not in (e.lower() for e in emails):
            emails.append(address)
    return tuple(emails)


def carries_fee_marker(raw: Mapping[str, Any]) -> bool:
    """Whether the invoice is a late fee Nudge wrote (from any installation): its Reference holds FEE_MARKER."""
    return FEE_MARKER in str(raw.get("Reference") or "")


def to_invoice(raw: Mapping[str, Any], *, home_currency: str) -> InvoiceSnapshot:
    """One Xero invoice object → InvoiceSnapshot; raises MappingError naming the bad field."""
    invoice_id = str(raw.get("InvoiceID") or "")
    if not invoice_id:
        raise MappingError("", "InvoiceID", "missing", provider=PROVIDER_KEY)
    status_text = str(raw.get("Status") or "").upper()
    if status_text not in STATUS:
        raise MappingError(invoice_id, "Status", f"unknown status {status_text[:20]!r}", provider=PROVIDER_KEY)
    currency = str(raw.get("CurrencyCode") or home_currency)
    contact = raw.get("Contact") or {}
    if not isinstance(contact, Mapping):
        raise MappingError(invoice_id, "Contact", "not an object", provider=PROVIDER_KEY)
    try:
        total = Money.of(amount(raw.get("Total")), currency)
        balance = Money.of(amount(raw.get("AmountDue")), currency)
    except (ValueError, ArithmeticError) as exc:
        raise MappingError(invoice_id, "Total/AmountDue/CurrencyCode", str(exc), provider=PROVIDER_KEY) from exc
    issue = _calendar_date(raw, invoice_id, "Date")
    due = _calendar_date(raw, invoice_id, "DueDate")
    if due is None and STATUS[status_text] is InvoiceStatus.OPEN:
        raise MappingError(invoice_id, "DueDate", "missing on an open invoice", provider=PROVIDER_KEY)
    try:
        updated = parse_instant(raw.get("UpdatedDateUTC"))
    except ValueError as exc:
        raise MappingError(invoice_id, "UpdatedDateUTC", str(exc), provider=PROVIDER_KEY) from exc
    return InvoiceSnapshot(
        external_id=invoice_id,
        number=str(raw.get("InvoiceNumber") or ""),
        customer_external_id=str(contact.get("ContactID") or ""),
        customer_name=str(contact.get("Name") or ""),
        currency=total.currency,
        total=total,
        balance=balance,
        issue_date=issue,
        due_date=due,
        status=STATUS[status_text],
        updated_at=updated,
        emails=contact_emails(contact),
        created_by_nudge=carries_fee_marker(raw),
    )


def to_customer(raw: Mapping[str, Any]) -> CustomerSnapshot:
    """One Xero contact → CustomerSnapshot (archived contacts are inactive)."""
    contact_id = str(raw.get("ContactID") or "")
    if not contact_id:
        raise MappingError("", "ContactID", "missing", provider=PROVIDER_KEY)
    return CustomerSnapshot(
        external_id=contact_id,
        name=str(raw.get("Name") or ""),
        emails=contact_emails(raw),
        active=str(raw.get("ContactStatus") or "ACTIVE").upper() == "ACTIVE",
        address=_address(raw.get("Addresses")),
        phone=_phone(raw.get("Phones")),
    )


def _address(addresses: Any) -> tuple[str, ...]:
    """The contact's postal address (`POBOX`, Xero's billing address; else the first) as lines."""
    rows = [row for row in addresses or [] if isinstance(row, Mapping)]
    chosen = next((row for row in rows if row.get("AddressType") == "POBOX"), rows[0] if rows else {})
    lines = [str(chosen.get(f"AddressLine{n}") or "").strip() for n in range(1, 5)]
    place = " ".join(part for key in ("City", "Region", "PostalCode") if (part := str(chosen.get(key) or "").strip()))
    lines += [place.strip(), str(chosen.get("Country") or "").strip()]
    return tuple(line[:200] for line in lines if line)


def _phone(phones: Any) -> str:
    """The contact's `DEFAULT` phone number as one string (country, area, number)."""
    rows = [row for row in phones or [] if isinstance(row, Mapping)]
    chosen = next((row for row in rows if row.get("PhoneType") == "DEFAULT"), rows[0] if rows else {})
    parts = (str(chosen.get(key) or "").strip() for key in ("PhoneCountryCode", "PhoneAreaCode", "PhoneNumber"))
    return " ".join(part for part in parts if part)[:60]


# -- the organisation's country, holiday subdivision and zone (GET /Organisation) ------------------------------
def zone_name(name: Any) -> str:
    """The IANA name a Xero `Timezone` stands for: an IANA name itself, or Xero's Windows-style id
    (`NEWZEALANDSTANDARDTIME`, CLDR's Windows table as tzlocal ships it); "" when it names no known zone."""
    text = str(name or "").strip()
    if not text:
        return ""
    with suppress(ZoneInfoNotFoundError, ValueError):
        ZoneInfo(text)
        return text
    wanted = "".join(ch for ch in text.upper() if ch.isalnum())
    for windows, iana in win_tz.items():
        if "".join(ch for ch in windows.upper() if ch.isalnum()) == wanted:
            with suppress(ZoneInfoNotFoundError, ValueError):
                ZoneInfo(iana)
                return str(iana)
    return ""


def organisation_region(row: Mapping[str, Any]) -> dict[str, str]:
    """{"country", "subdivision", "time_zone"} of one GET /Organisation row ("" where it tells nothing usable).

    `CountryCode` is ISO 3166-1 alpha-2; `Timezone` is mapped to IANA by `zone_name`; the subdivision is the
    `Region` of the organisation's street (else postal) address when `holidays` knows it by that code or name.
    """
    code = str(row.get("CountryCode") or "").strip().upper()
    country = code if len(code) == 2 and code.isalpha() else ""
    addresses = [a for a in row.get("Addresses") or [] if isinstance(a, Mapping)]
    addresses.sort(key=lambda a: {"STREET": 0, "POBOX": 1}.get(str(a.get("AddressType") or "").upper(), 2))
    subdivision = next((found for a in addresses if (found := holiday_subdivision(country, a.get("Region")))), "")
    return {"country": country, "subdivision": subdivision, "time_zone": zone_name(row.get("Timezone"))}


def cursor_text(moment: datetime) -> str:
    """A sync cursor: the instant in ISO 8601 with milliseconds, UTC."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_cursor(cursor: str) -> datetime:
    """The instant a cursor names."""
    return parse_instant(cursor)


# -- payments, credit notes, overpayments, prepayments ------------------------------------------------
_MONEY_KINDS = (
    ("PaymentID", PaymentKind.PAYMENT),
    ("CreditNoteID", PaymentKind.CREDIT),
    ("OverpaymentID", PaymentKind.OVERPAYMENT),
    ("PrepaymentID", PaymentKind.PREPAYMENT),
)
_RECEIVABLE_TYPES = {
    PaymentKind.CREDIT: ("ACCRECCREDIT",),
    PaymentKind.OVERPAYMENT: ("RECEIVE-OVERPAYMENT",),
    PaymentKind.PREPAYMENT: ("RECEIVE-PREPAYMENT",),
}
_GONE = frozenset({"VOIDED", "DELETED"})
_NOT_YET_MONEY = frozenset({"DRAFT", "SUBMITTED"})


def _money_kind(raw: Mapping[str, Any]) -> tuple[str, PaymentKind]:
    """The object's id and kind, told apart by which id field it carries."""
    for field, kind in _MONEY_KINDS:
        if field in raw:
            value = raw.get(field)
            if not isinstance(value, str) or not value.strip():
                raise MappingError("", field, "missing", provider=PROVIDER_KEY)
            return value.strip(), kind
    raise MappingError("", "PaymentID", "not a Payment, CreditNote, Overpayment or Prepayment", provider=PROVIDER_KEY)


def money_key(raw: Mapping[str, Any]) -> tuple[str, PaymentKind]:
    """A money object's id and kind (Payment, CreditNote, Overpayment, Prepayment); MappingError otherwise."""
    return _money_kind(raw)


def _text(value: Any) -> str:
    """A string field's text ("" for anything that is not a string)."""
    return value.strip() if isinstance(value, str) else ""


def _object(raw: Mapping[str, Any], field: str, object_id: str) -> Mapping[str, Any]:
    """A nested object (`{}` when absent); MappingError when it is something else."""
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MappingError(object_id, field, "not an object", provider=PROVIDER_KEY)
    return value


def _positive(value: Any, currency: str, object_id: str, field: str) -> Money:
    """A positive amount in `currency`; MappingError naming the field otherwise."""
    try:
        money = Money.of(amount(value), currency)
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise MappingError(object_id, field, str(exc) or "not an amount", provider=PROVIDER_KEY) from exc
    if not money.is_positive():
        raise MappingError(object_id, field, f"must be positive, got {money.amount}", provider=PROVIDER_KEY)
    return money


def _day(raw: Mapping[str, Any], object_id: str, field: str) -> date:
    """A required calendar date (`...String` twin first)."""
    day = _calendar_date(raw, object_id, field)
    if day is None:
        raise MappingError(object_id, field, "missing", provider=PROVIDER_KEY)
    return day


def _currency(raw: Mapping[str, Any], home_currency: str) -> str:
    return _text(raw.get("CurrencyCode")).upper() or home_currency


def _payment(raw: Mapping[str, Any], payment_id: str, home_currency: str) -> list[PaymentSnapshot]:
    """A Payment on one invoice (a refund out of a credit or a bill payment is not one)."""
    payment_type = _text(raw.get("PaymentType")).upper()
    if payment_type and payment_type != "ACCRECPAYMENT":
        return []
    invoice = _object(raw, "Invoice", payment_id)
    if _text(invoice.get("Type")).upper() not in ("", "ACCREC"):
        return []
    invoice_id = _text(invoice.get("InvoiceID"))
    if not invoice_id:
        raise MappingError(payment_id, "Invoice.InvoiceID", "missing", provider=PROVIDER_KEY)
    contact = _object(invoice, "Contact", payment_id)
    currency = _currency(invoice, home_currency)
    return [
        PaymentSnapshot(
            external_id=payment_id,
            kind=PaymentKind.PAYMENT,
            invoice_external_id=invoice_id,
            customer_external_id=_text(contact.get("ContactID")),
            amount=_positive(raw.get("Amount"), currency, payment_id, "Amount"),
            paid_on=_day(raw, payment_id, "Date"),
            voided=_text(raw.get("Status")).upper() in _GONE,
        )
    ]


def _allocated(raw: Mapping[str, Any], object_id: str, kind: PaymentKind, home_currency: str) -> list[PaymentSnapshot]:
    """A credit note, overpayment or prepayment: one snapshot per allocation, one for the remaining credit."""
    object_type = _text(raw.get("Type")).upper()
    if object_type and object_type not in _RECEIVABLE_TYPES[kind]:
        return []  # a supplier credit or a spend overpayment/prepayment
    status = _text(raw.get("Status")).upper()
    if status in _NOT_YET_MONEY:
        return []
    voided = status in _GONE
    currency = _currency(raw, home_currency)
    customer = _text(_object(raw, "Contact", object_id).get("ContactID"))
    allocations = raw.get("Allocations") or []
    if not isinstance(allocations, list):
        raise MappingError(object_id, "Allocations", "not a list", provider=PROVIDER_KEY)
    out: list[PaymentSnapshot] = []
    for index, allocation in enumerate(allocations):
        where = f"Allocations[{index}]"
        if not isinstance(allocation, Mapping):
            raise MappingError(object_id, where, "not an object", provider=PROVIDER_KEY)
        if allocation.get("IsDeleted") is True:
            continue
        invoice_id = _text(_object(allocation, "Invoice", object_id).get("InvoiceID"))
        if not invoice_id:
            raise MappingError(object_id, f"{where}.Invoice.InvoiceID", "missing", provider=PROVIDER_KEY)
        out.append(
            PaymentSnapshot(
                external_id=object_id,
                kind=kind,
                invoice_external_id=invoice_id,
                customer_external_id=customer,
                amount=_positive(allocation.get("Amount"), currency, object_id, f"{where}.Amount"),
                paid_on=_allocation_day(allocation, object_id, where),
                voided=voided,
            )
        )
    remaining = raw.get("RemainingCredit")
    if remaining not in (None, "") and not _is_zero(remaining, object_id):
        out.append(
            PaymentSnapshot(
                external_id=object_id,
                kind=kind,
                invoice_external_id="",
                customer_external_id=customer,
                amount=_positive(remaining, currency, object_id, "RemainingCredit"),
                paid_on=_day(raw, object_id, "Date"),
                voided=voided,
            )
        )
    return out


def _allocation_day(allocation: Mapping[str, Any], object_id: str, where: str) -> date:
    """An allocation's date (the day the credit was applied)."""
    try:
        day = parse_day(allocation.get("DateString") or allocation.get("Date"))
    except ValueError as exc:
        raise MappingError(object_id, f"{where}.Date", str(exc), provider=PROVIDER_KEY) from exc
    if day is None:
        raise MappingError(object_id, f"{where}.Date", "missing", provider=PROVIDER_KEY)
    return day


def _is_zero(value: Any, object_id: str) -> bool:
    try:
        return amount(value) == 0
    except (ValueError, ArithmeticError) as exc:
        raise MappingError(object_id, "RemainingCredit", str(exc) or "not an amount", provider=PROVIDER_KEY) from exc


def to_payments(raw: Mapping[str, Any], *, home_currency: str) -> list[PaymentSnapshot]:
    """One Xero Payment, CreditNote, Overpayment or Prepayment → its complete set of PaymentSnapshots.

    A Payment applies to one invoice (`Date` → paid_on; currency from `Invoice.CurrencyCode`); a credit
    note, overpayment or prepayment yields one snapshot per allocation (its `Amount` and `Date`) and one
    unapplied snapshot for `RemainingCredit`. VOIDED/DELETED objects come with `voided=True`; drafts and
    payables (and refunds paid out of a credit) yield none. Hostile input raises MappingError.
    """
    if not isinstance(raw, Mapping):
        raise MappingError("", "Payment", "not an object", provider=PROVIDER_KEY)
    object_id, kind = _money_kind(raw)
    if kind is PaymentKind.PAYMENT:
        return _payment(raw, object_id, home_currency)
    return _allocated(raw, object_id, kind, home_currency)
