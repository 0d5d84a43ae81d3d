"""Properties of both providers' mapping and webhook parsing over arbitrary input.

`to_invoice` on any JSON-like object returns an InvoiceSnapshot or raises MappingError (`to_payments`: a list
of PaymentSnapshots, each with a positive amount, or MappingError); `parse` on any
bytes or JSON returns ChangeNotices or raises PayloadError. Nothing else may escape: the sync
quarantines a MappingError and the webhook intake answers 400 to a PayloadError, but any other
exception would fail a whole page or delivery.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.model import ChangeNotice, InvoiceSnapshot, PaymentSnapshot
from connector.errors import MappingError, PayloadError
from providers.quickbooks import mapping as qbo_mapping
from providers.quickbooks import webhooks as qbo_webhooks
from providers.xero import mapping as xero_mapping
from providers.xero import webhooks as xero_webhooks

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "2024-02-30",
            "2024-01-10",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "/Date(99999999999999999)/",
            "/Date(-62135596800001+0000)/",
            "/Date(1539950400000+1300)/",
            "2015-07-24T10:35:08-07:00",
            "AUTHORISED",
            "PAID",
            "deleted",
            "USD",
            "XXX",
            "1e400",
            "NaN",
            "-Infinity",
            "12",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
QBO_KEYS = ["Id", "status", "DocNumber", "CustomerRef", "CurrencyRef", "TotalAmt", "Balance", "TxnDate", "DueDate",
            "MetaData", "BillEmail", "PrivateNote", "SyncToken"]  # fmt: skip
XERO_KEYS = ["InvoiceID", "Status", "CurrencyCode", "Contact", "Total", "AmountDue", "Date", "DateString", "DueDate",
             "DueDateString", "UpdatedDateUTC", "InvoiceNumber", "Type"]  # fmt: skip


def invoices(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the provider's own field names (so the mapping gets past its first checks) or any."""
    nested = st.fixed_dictionaries(
        {},
        optional={
            "value": json_values,
            "name": json_values,
            "Address": json_values,
            "LastUpdatedTime": json_values,
            "ContactID": json_values,
            "EmailAddress": json_values,
            "ContactPersons": json_values,
        },
    )
    field = json_values | nested
    known = st.fixed_dictionaries({}, optional={key: field for key in keys})
    return known | st.dictionaries(st.text(max_size=12), json_values, max_size=6)


def _maps_or_refuses(module: ModuleType, raw: dict[str, Any], home_currency: str) -> None:
    try:
        snapshot = module.to_invoice(raw, home_currency=home_currency)
    except MappingError:
        return
    assert isinstance(snapshot, InvoiceSnapshot)


@PROPERTY
@given(raw=invoices(QBO_KEYS), home_currency=st.sampled_from(["USD", "EUR", "JPY", "", "usd", "ZZZ"]))
def test_quickbooks_to_invoice_maps_or_raises_mapping_error(raw: dict[str, Any], home_currency: str) -> None:
    _maps_or_refuses(qbo_mapping, raw, home_currency)


@PROPERTY
@given(raw=invoices(XERO_KEYS), home_currency=st.sampled_from(["NZD", "EUR", "JPY", "", "nzd", "ZZZ"]))
def test_xero_to_invoice_maps_or_raises_mapping_error(raw: dict[str, Any], home_currency: str) -> None:
    _maps_or_refuses(xero_mapping, raw, home_currency)


QBO_MONEY_KEYS = ["Id", "status", "CustomerRef", "CurrencyRef", "TotalAmt", "UnappliedAmt", "RemainingCredit",
                  "Balance", "TxnDate", "PrivateNote", "LinkedTxn", "Line"]  # fmt: skip


def qbo_money_objects() -> st.SearchStrategy[dict[str, Any]]:
    """QuickBooks Payments / CreditMemos (bare or wrapped) with lines and links of any shape."""
    link = st.fixed_dictionaries(
        {},
        optional={"TxnId": json_values, "TxnType": st.sampled_from(["Invoice", "CreditMemo", "Deposit"]) | json_values},
    )
    line = st.fixed_dictionaries(
        {}, optional={"Amount": json_values, "LinkedTxn": st.lists(link, max_size=3) | json_values}
    )
    ref = st.fixed_dictionaries({}, optional={"value": json_values, "name": json_values})
    field = {key: json_values for key in QBO_MONEY_KEYS} | {
        "Id": st.sampled_from(["163", "1", "x", ""]) | json_values,
        "CustomerRef": ref | json_values,
        "CurrencyRef": ref | json_values,
        "TxnDate": st.sampled_from(["2015-01-16", "2024-02-30"]) | json_values,
        "Line": st.lists(line | json_values, max_size=3) | json_values,
        "LinkedTxn": st.lists(link, max_size=3) | json_values,
    }
    bare = st.fixed_dictionaries({}, optional=field)
    wrapped = st.builds(lambda entity, obj: {entity: obj}, st.sampled_from(["Payment", "CreditMemo"]), bare)
    return bare | wrapped | st.dictionaries(st.text(max_size=12), json_values, max_size=6)


@PROPERTY
@given(raw=qbo_money_objects(), home_currency=st.sampled_from(["USD", "EUR", "JPY", "", "usd", "ZZZ"]))
def test_quickbooks_to_payments_maps_or_raises_mapping_error(raw: dict[str, Any], home_currency: str) -> None:
    try:
        snapshots = qbo_mapping.to_payments(raw, home_currency=home_currency)
    except MappingError:
        return
    assert isinstance(snapshots, list)
    assert all(isinstance(s, PaymentSnapshot) and s.amount.is_positive() for s in snapshots)


def _parses_or_refuses(module: ModuleType, body: bytes) -> None:
    try:
        notices = module.parse(body)
    except PayloadError:
        return
    assert isinstance(notices, list)
    assert all(isinstance(notice, ChangeNotice) for notice in notices)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


qbo_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_json_bytes),
    st.fixed_dictionaries({"eventNotifications": json_values}).map(_json_bytes),
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["qbo.invoice.updated.v1", "qbo..v1", "qbo.x"]) | json_values},
            optional={"intuitentityid": json_values, "intuitaccountid": json_values, "time": json_values},
        ),
        max_size=3,
    ).map(_json_bytes),
)
xero_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_json_bytes),
    st.fixed_dictionaries(
        {
            "events": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        key: json_values
                        for key in ("tenantId", "resourceId", "eventCategory", "eventType", "eventDateUtc")
                    },
                )
                | json_values,
                max_size=3,
            )
        }
    ).map(_json_bytes),
)


@PROPERTY
@given(body=qbo_bodies)
def test_quickbooks_webhook_parse_returns_notices_or_raises_payload_error(body: bytes) -> None:
    _parses_or_refuses(qbo_webhooks, body)


@PROPERTY
@given(body=xero_bodies)
def test_xero_webhook_parse_returns_notices_or_raises_payload_error(body: bytes) -> None:
    _parses_or_refuses(xero_webhooks, body)


@pytest.mark.parametrize(
    ("module", "raw"),
    [
        (qbo_mapping, {"Id": "1", "CustomerRef": {"value": "2"}, "TotalAmt": 10**30, "Balance": 1,
                       "MetaData": {"LastUpdatedTime": "2024-01-01T00:00:00Z"}}),
        (qbo_mapping, {"Id": "1", "CustomerRef": {"value": "2"}, "TotalAmt": 1, "Balance": 1,
                       "MetaData": {"LastUpdatedTime": "0001-01-01T00:00:00+01:00"}}),
        (xero_mapping, {"InvoiceID": "a", "Status": "PAID", "Total": 1, "AmountDue": 0, "Contact": "Rubble",
                        "UpdatedDateUTC": "/Date(1539950400000+0000)/"}),
        (xero_mapping, {"InvoiceID": "a", "Status": "PAID", "Total": 1, "AmountDue": 0,
                        "UpdatedDateUTC": "/Date(99999999999999999)/"}),
    ],
)  # fmt: skip
def test_found_crashes_are_mapping_errors_now(module: ModuleType, raw: dict[str, Any]) -> None:
    """Inputs that crashed the mappings before (overflowing amounts and instants, a non-object Contact)."""
    _maps_or_refuses(module, raw, "USD")


# -- Xero money objects (issue 11): to_payments maps or raises MappingError ------------------------------
XERO_MONEY_KEYS = ["Status", "Type", "PaymentType", "CurrencyCode", "Contact", "Amount", "Total", "RemainingCredit",
                   "Date", "DateString", "Invoice", "Allocations"]  # fmt: skip
_xero_money_nested = st.fixed_dictionaries(
    {},
    optional={
        "InvoiceID": json_values,
        "ContactID": json_values,
        "CurrencyCode": json_values,
        "Type": json_values,
        "Contact": json_values,
        "Amount": json_values,
        "Date": json_values,
        "Invoice": json_values,
        "IsDeleted": json_values,
    },
)
_xero_money_field = json_values | _xero_money_nested | st.lists(_xero_money_nested, max_size=3)


def xero_money_objects() -> st.SearchStrategy[dict[str, Any]]:
    """A Payment, CreditNote, Overpayment or Prepayment built from Xero's field names, or anything."""
    id_field = st.sampled_from(["PaymentID", "CreditNoteID", "OverpaymentID", "PrepaymentID"])
    known = st.tuples(
        id_field, json_values, st.fixed_dictionaries({}, optional=dict.fromkeys(XERO_MONEY_KEYS, _xero_money_field))
    )
    return st.builds(lambda t: {t[0]: t[1], **t[2]}, known) | st.dictionaries(
        st.text(max_size=12), json_values, max_size=6
    )


@PROPERTY
@given(raw=xero_money_objects(), home_currency=st.sampled_from(["NZD", "EUR", "JPY", "", "nzd", "ZZZ"]))
def test_xero_to_payments_maps_or_raises_mapping_error(raw: dict[str, Any], home_currency: str) -> None:
    try:
        snapshots = xero_mapping.to_payments(raw, home_currency=home_currency)
    except MappingError:
        return
    assert all(isinstance(s, PaymentSnapshot) and s.amount.is_positive() for s in snapshots)
