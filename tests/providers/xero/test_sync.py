"""Sync through the real SDK against the emulator: call counts, cursors, closed invoices, limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from connector.domain.model import InvoiceStatus
from connector.errors import RateLimited, Transient
from connector.ports import ProviderSettings
from providers.xero.adapter import XeroAdapter
from providers.xero.client import RateLimiter
from providers.xero.emulator import XeroEmulator
from tests.support.xero import Connected, admin, connect, data_calls


def _drain(adapter: XeroAdapter, cursor: str | None) -> tuple[list, str | None, int]:
    invoices, calls, next_cursor = [], 0, cursor
    for page in adapter.changed_invoices(cursor):
        invoices.extend(page.invoices)
        calls += page.calls
        next_cursor = page.next_cursor
    return invoices, next_cursor, calls


def test_full_sync_of_10000_open_invoices_takes_11_calls(xero: XeroEmulator, settings: ProviderSettings) -> None:
    """10 invoice pages + 1 contacts page; the open credit is read before acting, not by the reconcile."""
    admin(xero, "limits", {"per_minute": 0, "per_day": 0})
    tenant = admin(xero, "generate", {"name": "Big Co", "invoices": 10_000, "contacts": 400})["tenantId"]
    tokens, _ = connect(xero, settings, tenant)
    adapter = XeroAdapter(tenant, tokens, settings)
    xero.core.clear_calls()

    pages = list(adapter.changed_invoices(None))

    calls = data_calls(xero)
    assert len(calls) == 11
    assert all(c.path.endswith(("/Invoices", "/Contacts")) for c in calls)
    assert sum(p.calls for p in pages) == len(calls)
    assert all(p.full for p in pages)
    assert sum(len(p.invoices) for p in pages) == 10_000
    assert len({i.external_id for p in pages for i in p.invoices}) == 10_000
    invoice_calls = [c for c in calls if c.path.endswith("/Invoices")]
    assert len(invoice_calls) == 10
    assert all("pageSize=1000" in c.query and "summaryOnly=True" in c.query for c in invoice_calls)
    assert all("Statuses=AUTHORISED%2CSUBMITTED" in c.query for c in invoice_calls)
    customers = {c.external_id: c for p in pages for c in p.customers}
    assert len(customers) == 400
    assert all(len(c.emails) == 2 for c in customers.values())

    # Nothing changed since: the incremental sweep is one call.
    xero.core.clear_calls()
    _, _, calls_made = _drain(adapter, pages[-1].next_cursor)
    assert len(data_calls(xero)) == 1 == calls_made


def test_incremental_brings_paid_voided_and_deleted(connected: Connected) -> None:
    adapter, xero, tenant = connected.adapter, connected.xero, connected.tenant
    first, cursor, _ = _drain(adapter, None)
    assert sorted(i.number for i in first) == ["INV-0001", "INV-0002"]
    assert cursor is not None
    time.sleep(0.01)
    draft = connected.seeded["invoices"][3]
    barney, fred = connected.seeded["invoices"][0], connected.seeded["invoices"][1]
    admin(xero, "payments", {"tenant": tenant, "invoice": barney, "amount": "100.00"})
    admin(xero, "invoices/update", {"tenant": tenant, "invoice": fred, "changes": {"Status": "VOIDED"}})
    admin(xero, "invoices/update", {"tenant": tenant, "invoice": draft, "changes": {"Status": "DELETED"}})
    xero.core.clear_calls()

    changed, new_cursor, calls = _drain(adapter, cursor)

    by_id = {i.external_id: i for i in changed}
    assert by_id[barney].status is InvoiceStatus.PAID
    assert by_id[barney].balance.is_zero()
    assert by_id[fred].status is InvoiceStatus.VOIDED
    assert by_id[draft].status is InvoiceStatus.DELETED
    assert new_cursor is not None
    assert new_cursor > cursor
    (call,) = [c for c in data_calls(xero) if c.path.endswith("/Invoices")]
    assert "DELETED" in call.query
    assert calls == len(data_calls(xero))
    # inclusive boundary, but invoices already delivered at that instant are not delivered again
    again, same_cursor, _ = _drain(adapter, new_cursor)
    assert again == []
    assert same_cursor == new_cursor


def test_incremental_sends_if_modified_since(connected: Connected) -> None:
    """A sweep bringing changed invoices also reads Payments and CreditNotes modified since; a quiet one is one call."""
    _, cursor, _ = _drain(connected.adapter, None)
    connected.xero.core.clear_calls()
    changed, cursor, calls = _drain(connected.adapter, cursor)  # the paid and draft invoices the reconcile skipped
    assert changed
    invoices, payments, credits = data_calls(connected.xero)
    assert invoices.path.endswith("/Invoices")
    assert "summaryOnly=True" in invoices.query
    assert "pageSize=1000" in invoices.query
    assert (payments.path.rsplit("/", 1)[1], credits.path.rsplit("/", 1)[1]) == ("Payments", "CreditNotes")
    assert calls == 3
    connected.xero.core.clear_calls()
    assert _drain(connected.adapter, cursor)[2] == 1
    (call,) = data_calls(connected.xero)
    assert call.path.endswith("/Invoices")


def test_unapplied_credit_sums_overpayments_prepayments_and_credit_notes(connected: Connected) -> None:
    xero, tenant = connected.xero, connected.tenant
    fred = connected.adapter.get_invoice(connected.seeded["invoices"][1])
    assert fred is not None
    admin(
        xero,
        "seed",
        {
            "tenants": [
                {
                    "tenantId": tenant,
                    "overpayments": [{"Contact": {"ContactID": fred.customer_external_id}, "Total": "30.00"}],
                    "prepayments": [
                        {"Contact": {"ContactID": fred.customer_external_id}, "Total": "50.00", "RemainingCredit": "20"}
                    ],
                    "creditNotes": [
                        {
                            "Type": "ACCRECCREDIT",
                            "Status": "AUTHORISED",
                            "Contact": {"ContactID": fred.customer_external_id},
                            "LineAmountTypes": "NoTax",
                            "LineItems": [
                                {"Description": "Refund", "Quantity": 1, "UnitAmount": "5.25", "AccountCode": "200"}
                            ],
                        }
                    ],
                }
            ]
        },
    )
    credit = connected.adapter.unapplied_credit(fred.customer_external_id)
    assert credit is not None
    assert str(credit) == "55.25 NZD"
    assert (
        connected.adapter.unapplied_credit(
            connected.adapter.get_invoice(connected.seeded["invoices"][0]).customer_external_id
        )
        is None
    )  # type: ignore[union-attr]


def test_customer_contacts_include_in_emails(connected: Connected) -> None:
    barney = connected.adapter.get_invoice(connected.seeded["invoices"][0])
    assert barney is not None
    contact = connected.adapter.customer_contacts(barney.customer_external_id)
    assert contact.name == "Barney Rubble"
    assert contact.emails == ("barney@rubble.example", "betty@rubble.example")


def test_limiter_waits_on_remaining_headers_before_any_429(
    xero: XeroEmulator, settings: ProviderSettings, connected: Connected
) -> None:
    admin(xero, "limits", {"per_minute": 3})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        xero.core.reset_usage()  # the minute window passes

    adapter = XeroAdapter(
        connected.tenant, connected.tokens, settings, limiter=RateLimiter(sleep=sleep, max_wait=90)
    )  # may wait out a minute in-thread
    for _ in range(5):
        adapter.provider_reminders_enabled()
    statuses = [c.status for c in data_calls(xero)]
    assert statuses == [200] * 5
    assert len(slept) == 1
    assert 0 < slept[0] <= 60


def test_minute_429_honours_retry_after(xero: XeroEmulator, settings: ProviderSettings, connected: Connected) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        xero.core.reset_usage()

    admin(xero, "limits", {"per_minute": 1})
    connected.adapter.provider_reminders_enabled()  # uses the only call; a second client doesn't know
    adapter = XeroAdapter(
        connected.tenant, connected.tokens, settings, limiter=RateLimiter(sleep=sleep, max_wait=90)
    )  # may wait out a minute in-thread
    assert adapter.provider_reminders_enabled() is False
    assert [c.status for c in data_calls(xero)] == [200, 429, 200]
    assert len(slept) == 1
    assert 1 <= slept[0] <= 61


def test_daily_limit_raises_rate_limited_day_instead_of_spinning(xero: XeroEmulator, connected: Connected) -> None:
    admin(xero, "limits", {"per_day": 2})
    connected.adapter.provider_reminders_enabled()
    connected.adapter.provider_reminders_enabled()
    with pytest.raises(RateLimited) as info:
        list(connected.adapter.changed_invoices(None))
    assert info.value.limit == "day"
    assert info.value.retry_after > 60
    assert connected.sleeps == []
    # The limiter now refuses without calling Xero at all.
    before = len(data_calls(xero))
    with pytest.raises(RateLimited):
        connected.adapter.provider_reminders_enabled()
    assert len(data_calls(xero)) == before


def test_server_errors_are_retried_then_transient(xero: XeroEmulator, connected: Connected) -> None:
    admin(xero, "faults", {"kind": "status", "status": 503, "path": "/InvoiceReminders", "times": 1})
    assert connected.adapter.provider_reminders_enabled() is False
    admin(xero, "faults", {"kind": "malformed", "path": "/InvoiceReminders", "times": 1})
    assert connected.adapter.provider_reminders_enabled() is False
    admin(xero, "faults", {"kind": "html", "status": 502, "path": "/InvoiceReminders", "times": 5})
    with pytest.raises(Transient):
        connected.adapter.provider_reminders_enabled()
    assert len(connected.sleeps) >= 3  # jittered backoff between attempts


def test_disconnect_fault_is_transient(xero: XeroEmulator, connected: Connected) -> None:
    admin(xero, "faults", {"kind": "disconnect", "path": "/InvoiceReminders", "times": 5})
    with pytest.raises(Transient):
        connected.adapter.provider_reminders_enabled()


def test_reconcile_cursor_never_passes_its_start(connected: Connected) -> None:
    pages = list(connected.adapter.changed_invoices(None))
    cursor = pages[-1].next_cursor
    assert cursor is not None
    assert datetime.fromisoformat(cursor.partition("|")[0]) <= datetime.now(UTC)
