"""Xero dates are the organisation's calendar dates (the `...String` twins); an open invoice needs a DueDate."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from connector.errors import MappingError
from providers.xero.mapping import to_invoice

NZ_MIDNIGHT_FEB_4 = "/Date(1770116400000+0000)/"  # 2026-02-04 00:00 in Auckland = 2026-02-03 11:00 UTC


def _raw(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "InvoiceID": "9b0e5b3c-0000-4000-8000-000000000027",
        "Status": "AUTHORISED",
        "Total": "200.00",
        "AmountDue": "200.00",
        "CurrencyCode": "NZD",
        "UpdatedDateUTC": "/Date(1770000000000+0000)/",
        "Contact": {"ContactID": "c1", "Name": "Harbour Cafe"},
    }
    raw.update(fields)
    return raw


def test_due_date_string_wins_over_the_utc_instant() -> None:
    raw = _raw(DueDate=NZ_MIDNIGHT_FEB_4, DueDateString="2026-02-04T00:00:00", Date=NZ_MIDNIGHT_FEB_4)
    raw["DateString"] = "2026-02-04T00:00:00"
    snapshot = to_invoice(raw, home_currency="NZD")
    assert snapshot.due_date == date(2026, 2, 4)
    assert snapshot.issue_date == date(2026, 2, 4)


def test_an_open_invoice_without_a_due_date_is_quarantined_naming_invoice_and_field() -> None:
    with pytest.raises(MappingError) as info:
        to_invoice(_raw(), home_currency="NZD")
    assert info.value.external_id == "9b0e5b3c-0000-4000-8000-000000000027"
    assert info.value.field == "DueDate"
    assert "9b0e5b3c-0000-4000-8000-000000000027" in info.value.user_message


def test_a_draft_without_a_due_date_is_read() -> None:
    assert to_invoice(_raw(Status="DRAFT"), home_currency="NZD").due_date is None


def test_a_bad_due_date_string_names_the_field() -> None:
    with pytest.raises(MappingError) as info:
        to_invoice(_raw(DueDateString="not a date"), home_currency="NZD")
    assert info.value.field == "DueDate"
