"""QuickBooks JSON objects → Nudge's provider-neutral snapshots.

Field facts: docs/provider-api-facts.md §1.7 and the samples qbo_invoice_query.json /
qbo_invoice_read.json (qbo_payment_read.json, qbo_creditmemo_create.json: the money objects).
Amounts become exact Decimals (floats are read through their shortest repr, so 362.07 stays 362.07);
a record that cannot be mapped raises MappingError naming the field, and the adapter quarantines it
instead of failing the whole page.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from connector.domain.model import CustomerSnapshot, InvoiceSnapshot, InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import CurrencyError, Money, normalize_currency
from connector.errors import MappingError
from providers.quickbooks.constants import FEE_MARKER, PROVIDER_KEY

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


def carries_fee_marker(raw: dict[str, Any]) -> bool:
    """Whether the invoice is a late fee Nudge wrote (from any installation): its PrivateNote holds FEE_MARKER."""
    return FEE_MARKER in str(raw.get("PrivateNote") or "")


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
        created_by_nudge=carries_fee_marker(raw),
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
        address=_address(_ref(raw, "BillAddr")),
        phone=str(_ref(raw, "PrimaryPhone").get("FreeFormNumber") or "")[:60],
    )


_ADDRESS_LINES = ("Line1", "Line2", "Line3", "Line4", "Line5")


def _address(raw: dict[str, Any]) -> tuple[str, ...]:
    """A QBO PhysicalAddress (BillAddr) as lines: Line1-5, then "City Region PostalCode", then Country."""
    lines = [str(raw.get(key) or "").strip() for key in _ADDRESS_LINES]
    place = " ".join(
        part for key in ("City", "CountrySubDivisionCode", "PostalCode") if (part := str(raw.get(key) or "").strip())
    )
    lines += [place.strip(), str(raw.get("Country") or "").strip()]
    return tuple(line[:200] for line in lines if line)


MONEY_ENTITIES = {"Payment": PaymentKind.PAYMENT, "CreditMemo": PaymentKind.CREDIT}


def _unwrap(raw: Any) -> tuple[str, dict[str, Any]]:
    """(entity, object) of `{"Payment": {...}}` / `{"CreditMemo": {...}}` (a read answer) or a bare object."""
    if not isinstance(raw, dict):
        raise MappingError("", "Payment", "not a JSON object", provider=PROVIDER_KEY)
    for entity in MONEY_ENTITIES:
        inner = raw.get(entity)
        if isinstance(inner, dict):
            return entity, inner
    # A bare object (CDC, query): a CreditMemo carries RemainingCredit/Balance, a Payment UnappliedAmt.
    return ("CreditMemo" if "RemainingCredit" in raw or "Balance" in raw else "Payment"), raw


def _non_negative(raw: dict[str, Any], key: str, ident: str, *, field: str = "") -> Decimal:
    amount = _amount(raw, key, ident) if field == "" else _line_amount(raw, ident, field)
    if amount < 0:
        raise MappingError(ident, field or key, "negative", provider=PROVIDER_KEY)
    return amount


def _line_amount(line: dict[str, Any], ident: str, field: str) -> Decimal:
    try:
        return _amount(line, "Amount", ident)
    except MappingError as exc:
        raise MappingError(ident, field, exc.reason, provider=PROVIDER_KEY) from None


def _optional_amount(raw: dict[str, Any], key: str, ident: str) -> Decimal:
    """A non-negative amount that QuickBooks may leave out (0 then)."""
    return Decimal(0) if raw.get(key) in (None, "") else _non_negative(raw, key, ident)


def _links(holder: dict[str, Any], ident: str, field: str) -> list[tuple[str, str]]:
    """(TxnType, TxnId) of a LinkedTxn list; a malformed list is a MappingError naming `field`."""
    links = holder.get("LinkedTxn")
    if links in (None, ""):
        return []
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise MappingError(ident, field, "not a list of objects", provider=PROVIDER_KEY)
    found: list[tuple[str, str]] = []
    for link in links:
        kind, txn = str(link.get("TxnType") or ""), str(link.get("TxnId") or "")
        if kind in ("Invoice", "CreditMemo") and not txn.isdigit():
            raise MappingError(ident, f"{field}.TxnId", "missing or not digits", provider=PROVIDER_KEY)
        found.append((kind, txn))
    return found


class _Money:
    """What one money object's snapshots share (id, kind, customer, currency, date, voided)."""

    def __init__(self, entity: str, raw: dict[str, Any], ident: str, home_currency: str) -> None:
        self.ident = ident
        self.kind = MONEY_ENTITIES[entity]
        customer = str(_ref(raw, "CustomerRef").get("value") or "")
        if not customer:
            raise MappingError(ident, "CustomerRef", "missing", provider=PROVIDER_KEY)
        self.customer = customer
        self.currency = _currency(raw, home_currency, ident)
        paid_on = _date(raw, "TxnDate", ident)
        if paid_on is None:
            raise MappingError(ident, "TxnDate", "missing", provider=PROVIDER_KEY)
        self.paid_on = paid_on
        self.voided = is_voided(raw)

    def snapshots(self, amounts: dict[str, Decimal], field: str, unapplied_field: str) -> list[PaymentSnapshot]:
        """One snapshot per invoice ("" = unapplied) with a positive amount, in `amounts`' order; an amount
        too large for its currency is a MappingError naming `field` (`unapplied_field` for the remainder)."""
        return [
            PaymentSnapshot(
                external_id=self.ident,
                kind=self.kind,
                invoice_external_id=invoice,
                customer_external_id=self.customer,
                amount=_money(amount, self.currency, self.ident, field if invoice else unapplied_field),
                paid_on=self.paid_on,
                voided=self.voided,
            )
            for invoice, amount in amounts.items()
            if amount > 0
        ]


def _payment_lines(raw: dict[str, Any], ident: str) -> tuple[dict[str, Decimal], Decimal]:
    """(amount per invoice, amount taken from credit memos) of a Payment's Line[]."""
    lines = raw.get("Line")
    if lines in (None, ""):
        lines = []
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MappingError(ident, "Line", "not a list of objects", provider=PROVIDER_KEY)
    per_invoice: dict[str, Decimal] = {}
    from_credits = Decimal(0)
    for line in lines:
        links = _links(line, ident, "Line.LinkedTxn")
        kinds = {kind for kind, _ in links}
        if not kinds & {"Invoice", "CreditMemo"}:
            continue  # deposits, journal entries: not money to an invoice
        amount = _non_negative(line, "Amount", ident, field="Line.Amount")
        if "Invoice" in kinds:
            invoice = next(txn for kind, txn in links if kind == "Invoice")
            per_invoice[invoice] = per_invoice.get(invoice, Decimal(0)) + amount
        else:
            from_credits += amount
    return per_invoice, from_credits


def _payment(raw: dict[str, Any], ident: str, home_currency: str) -> list[PaymentSnapshot]:
    """A Payment: the cash it applies to each invoice (credit memos it applies are the memos' own
    snapshots, so a zero-amount Payment that only applies a credit yields none) plus UnappliedAmt."""
    common = _Money("Payment", raw, ident, home_currency)
    total = _non_negative(raw, "TotalAmt", ident)
    per_invoice, credit_left = _payment_lines(raw, ident)
    cash: dict[str, Decimal] = {}
    for invoice, amount in per_invoice.items():
        from_credit = min(amount, credit_left)
        credit_left -= from_credit
        cash[invoice] = amount - from_credit
    unapplied = _optional_amount(raw, "UnappliedAmt", ident)
    if sum(cash.values(), Decimal(0)) + unapplied > total:
        raise MappingError(ident, "TotalAmt", "less than the amounts applied and unapplied", provider=PROVIDER_KEY)
    return common.snapshots({**cash, "": unapplied}, "Line.Amount", "UnappliedAmt")


def _credit_memo(raw: dict[str, Any], ident: str, home_currency: str) -> list[PaymentSnapshot]:
    """A CreditMemo: what was used (TotalAmt - RemainingCredit) to the invoices its LinkedTxn names, the
    rest unapplied. QuickBooks does not say how a memo used on several invoices split: evenly, in order."""
    common = _Money("CreditMemo", raw, ident, home_currency)
    total = _non_negative(raw, "TotalAmt", ident)
    key = "RemainingCredit" if raw.get("RemainingCredit") not in (None, "") else "Balance"
    remaining = _optional_amount(raw, key, ident)
    if remaining > total:
        raise MappingError(ident, key, "more than TotalAmt", provider=PROVIDER_KEY)
    invoices = list(dict.fromkeys(txn for kind, txn in _links(raw, ident, "LinkedTxn") if kind == "Invoice"))
    used = total - remaining
    amounts: dict[str, Decimal] = {}
    if invoices and used > 0:
        exponent = _money(used, common.currency, ident, "TotalAmt").amount.as_tuple().exponent
        step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else -2)
        share = (used / len(invoices)).quantize(step, rounding=ROUND_DOWN)
        amounts = dict.fromkeys(invoices, share)
        amounts[invoices[0]] += used - share * len(invoices)
    amounts[""] = remaining
    return common.snapshots(amounts, "TotalAmt", key)


def to_payments(raw: dict[str, Any], *, home_currency: str) -> list[PaymentSnapshot]:
    """One QBO Payment or CreditMemo (bare, or a read answer's `{"Payment": {...}}`) → its complete
    current set of PaymentSnapshots; a deleted or voided object (amounts zeroed) → []; raises MappingError."""
    entity, obj = _unwrap(raw)
    ident = str(obj.get("Id") or "")
    if not ident.isdigit():
        raise MappingError(ident[:20], "Id", "missing or not digits", provider=PROVIDER_KEY)
    if str(obj.get("status", "")).lower() == "deleted":
        return []  # CDC tombstone: nothing of it is left
    if entity == "Payment":
        return _payment(obj, ident, home_currency)
    return _credit_memo(obj, ident, home_currency)
