"""Xero JSON (PascalCase, as the Accounting API returns it) → Nudge's provider-neutral snapshots.

Quirks (docs/provider-api-facts.md §2.2): dates are `/Date(<ms>+0000)/` with ISO `...String` twins; `AmountDue` is the
authority for what is still owed; `Status` is one of DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED, DELETED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.domain.model import CustomerSnapshot, InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import MappingError
from providers.xero.constants import PROVIDER_KEY

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
    )


def cursor_text(moment: datetime) -> str:
    """A sync cursor: the instant in ISO 8601 with milliseconds, UTC."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_cursor(cursor: str) -> datetime:
    """The instant a cursor names."""
    return parse_instant(cursor)
