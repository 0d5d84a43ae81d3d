"""QuickBooks JSON objects → Nudge's provider-neutral snapshots.

Field facts: docs/provider-api-facts.md §1.7 and the samples qbo_invoice_query.json /
qbo_invoice_read.json. Amounts become exact Decimals (floats are read through their shortest repr,
so 362.07 stays 362.07); a record that cannot be mapped raises MappingError naming the field, and the
adapter quarantines it instead of failing the whole page.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.domain.model import CustomerSnapshot, InvoiceSnapshot, InvoiceStatus
from connector.domain.money import CurrencyError, Money, normalize_currency
from connector.errors import MappingError
from providers.quickbooks.constants import PROVIDER_KEY

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_instant(text: str) -> datetime:
    """QBO instant (`2015-07-24T10:35:08-07:00`, `...-0700`, `...Z`, up to 9 fraction digits) → aware UTC."""
    try:
        moment = datetime.fromisoformat(text)  # the common `2015-07-24T10:35:08-07:00` form, fast path
    except ValueError:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00")))
    if moment.tzinfo is None:
        raise ValueError(f"instant without UTC offset: {text!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before the first representable instant
        raise ValueError(f"instant out of range: {text[:40]!r}") from None


def _amount(raw: dict[str, Any], key: str, ident: str) -> Decimal:
    value = raw.get(key)
    if isinstance(value, Decimal) and value.is_finite():
        return value  # parsed with parse_float=Decimal already
    if value is None or isinstance(value, bool) or value == "":
        raise MappingError(ident, key, "missing", provider=PROVIDER_KEY)
    try:
        amount = Decimal(str(value))  # str(float) is the shortest repr: 362.07 → Decimal("362.07")
    except InvalidOperation:
        raise MappingError(ident, key, "not a number", provider=PROVIDER_KEY) from None
    if not amount.is_finite():
        raise MappingError(ident, key, "not a finite number", provider=PROVIDER_KEY)
    return amount


def _money(amount: Decimal, currency: str, ident: str, key: str) -> Money:
    try:
        return Money(amount, currency)
    except ArithmeticError:  # beyond what the currency's precision can hold (e.g. 1E+30)
        raise MappingError(ident, key, "out of range", provider=PROVIDER_KEY) from None


def _date(raw: dict[str, Any], key: str, ident: str) -> date | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MappingError(ident, key, "not a YYYY-MM-DD date", provider=PROVIDER_KEY) from None


def _ref(raw: dict[str, Any], key: str) -> dict[str, Any]:
    ref = raw.get(key)
    return ref if isinstance(ref, dict) else {}


def split_emails(value: Any) -> tuple[str, ...]:
    """QBO email fields may hold several comma-separated addresses."""
    if not isinstance(value, str):
        return ()
    return tuple(part.strip() for part in value.replace(";", ",").split(",") if "@" in part)


def _currency(raw: dict[str, Any], home_currency: str, ident: str) -> str:
    # CurrencyRef is absent when multicurrency is off: the home currency applies (sample payloads).
    code = _ref(raw, "CurrencyRef").get("value") or home_currency
    try:
        return normalize_currency(str(code))
    except CurrencyError:
        raise MappingError(ident, "CurrencyRef", f"unknown currency {str(code)[:8]!r}", provider=PROVIDER_KEY) from None


def _updated(raw: dict[str, Any], ident: str) -> datetime:
    meta = raw.get("MetaData")
    text = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
    if not text:
        raise MappingError(ident, "MetaData.LastUpdatedTime", "missing", provider=PROVIDER_KEY)
    try:
        return parse_instant(str(text))
    except ValueError:
        raise MappingError(
            ident, "MetaData.LastUpdatedTime", "not an ISO 8601 instant", provider=PROVIDER_KEY
        ) from None


def is_voided(raw: dict[str, Any]) -> bool:
    """QBO keeps voided invoices with zero amounts and "Voided" in PrivateNote [unverified wording]."""
    note = str(raw.get("PrivateNote") or "")
    try:
        zero = Decimal(str(raw.get("TotalAmt", "0"))) == 0
    except InvalidOperation:
        zero = False
    return zero and note.startswith("Voided")


def to_invoice(raw: dict[str, Any], *, home_currency: str) -> InvoiceSnapshot:
    """One QBO Invoice object (as the JSON API returns it) → InvoiceSnapshot; raises MappingError."""
    if not isinstance(raw, dict):
        raise MappingError("", "Invoice", "not a JSON object", provider=PROVIDER_KEY)
    ident = str(raw.get("Id") or "")
    if not ident.isdigit():
        raise MappingError(ident[:20], "Id", "missing or not digits", provider=PROVIDER_KEY)
    if str(raw.get("status", "")).lower() == "deleted":
        # CDC tombstone: only Id, status and MetaData are present (docs/provider-api-facts.md §1.4).
        currency = _currency(raw, home_currency, ident)
        meta = raw.get("MetaData")
        updated = _updated(raw, ident) if isinstance(meta, dict) and meta.get("LastUpdatedTime") else _EPOCH
        return InvoiceSnapshot(
            external_id=ident,
            number=str(raw.get("DocNumber") or ""),
            customer_external_id=str(_ref(raw, "CustomerRef").get("value") or ""),
            customer_name=str(_ref(raw, "CustomerRef").get("name") or ""),
            currency=currency,
            total=Money.zero(currency),
            balance=Money.zero(currency),
            issue_date=None,
            due_date=None,
            status=InvoiceStatus.DELETED,
            updated_at=updated,
        )
    customer = _ref(raw, "CustomerRef")
    customer_id = str(customer.get("value") or "")
    if not customer_id:
        raise MappingError(ident, "CustomerRef", "missing", provider=PROVIDER_KEY)
    currency = _currency(raw, home_currency, ident)
    total = _amount(raw, "TotalAmt", ident)
    balance = _amount(raw, "Balance", ident)
    if balance < 0 or (total >= 0 and balance > total):
        raise MappingError(ident, "Balance", "outside 0..TotalAmt", provider=PROVIDER_KEY)
    if is_voided(raw):
        status = InvoiceStatus.VOIDED
    elif balance == 0:
        status = InvoiceStatus.PAID
    else:
        status = InvoiceStatus.OPEN
    due_date = _date(raw, "DueDate", ident)
    if due_date is None and status is InvoiceStatus.OPEN:
        # QuickBooks always fills DueDate (terms, else TxnDate): an open invoice without one is a broken record,
        # quarantined with a message rather than silently never chased (RS-24).
        raise MappingError(ident, "DueDate", "missing on an open invoice", provider=PROVIDER_KEY)
    emails = split_emails(_ref(raw, "BillEmail").get("Address"))
    return InvoiceSnapshot(
        external_id=ident,
        number=str(raw.get("DocNumber") or ""),
        customer_external_id=customer_id,
        customer_name=str(customer.get("name") or ""),
        currency=currency,
        total=_money(total, currency, ident, "TotalAmt"),
        balance=_money(balance, currency, ident, "Balance"),
        issue_date=_date(raw, "TxnDate", ident),
        due_date=due_date,
        status=status,
        updated_at=_updated(raw, ident),
        emails=emails,
        version=str(raw.get("SyncToken") or ""),
    )


def to_customer(raw: dict[str, Any]) -> CustomerSnapshot:
    """One QBO Customer object → CustomerSnapshot (PrimaryEmailAddr may list several addresses)."""
    if not isinstance(raw, dict):
        raise MappingError("", "Customer", "not a JSON object", provider=PROVIDER_KEY)
    ident = str(raw.get("Id") or "")
    if not ident.isdigit():
        raise MappingError(ident[:20], "Id", "missing or not digits", provider=PROVIDER_KEY)
    if str(raw.get("status", "")).lower() == "deleted":
        return CustomerSnapshot(external_id=ident, name="", active=False)
    name = str(raw.get("DisplayName") or raw.get("CompanyName") or raw.get("FullyQualifiedName") or "")
    if not name:
        raise MappingError(ident, "DisplayName", "missing", provider=PROVIDER_KEY)
    return CustomerSnapshot(
        external_id=ident,
        name=name,
        emails=split_emails(_ref(raw, "PrimaryEmailAddr").get("Address")),
        active=raw.get("Active", True) is not False,
    )
