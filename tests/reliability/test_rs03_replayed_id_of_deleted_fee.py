"""RS-03 — the user deleted Nudge's fee invoice in QuickBooks, then a retry replays the old `requestid`.

The emulator keeps QuickBooks' requestid replay store: the retry is answered with the original response,
naming an invoice that no longer exists (GET → 610). The adapter reads every created record back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.domain.money import Money
from connector.errors import Rejected, ReplayedObjectGone
from connector.ports import ProviderSettings
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle, start
from tests.support.quickbooks import Company


@pytest.fixture(scope="module")
def qbo() -> Iterator[EmulatorHandle]:
    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def company(qbo: EmulatorHandle) -> Company:
    settings = ProviderSettings(
        key="quickbooks",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri="http://127.0.0.1:5000/oauth/quickbooks/callback",
        environment=qbo.discovery_url,
        api_base=qbo.api_base,
        options={"retry_base_s": 0.01, "timeout_s": 10},
    )
    return Company(qbo, settings)


def _fees(company: Company) -> list[dict[str, object]]:
    return [i for i in company.entities("Invoice") if str(i.get("DocNumber", "")).startswith("LF-")]


def test_rs03_replayed_requestid_of_a_deleted_fee_invoice_stores_no_dead_id(
    qbo: EmulatorHandle, company: Company
) -> None:
    """Nudge detects a replayed response for a missing object (GET returns 610) and does not store a dead Id."""
    customer = company.customer("Deleted Fee Ltd", "ap@deleted.example")
    original = company.invoice(customer, "400.00", DocNumber="1042", DueDate="2026-01-31")
    adapter = company.adapter()
    invoice = adapter.get_invoice(original["Id"])
    assert invoice is not None
    first = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03")  # then: crash
    fee = qbo.store.read(company.realm, "Invoice", first.external_ref)
    qbo.store.delete(company.realm, "Invoice", {"Id": fee["Id"], "SyncToken": fee["SyncToken"]})  # the user
    with pytest.raises(ReplayedObjectGone) as info:
        company.adapter().create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03")
    assert info.value.external_id == first.external_ref
    assert isinstance(info.value, Rejected)  # not retried unchanged: the executor records it, never as done
    assert "deleted" in info.value.user_message
    assert _fees(company) == []  # nothing re-created under the old key
    replays = [c for c in qbo.core.calls("data", company.realm) if c.request_id == "fee-rs03"]
    assert len(replays) == 2  # the original create and its replay


def test_rs03_recreated_only_under_a_new_generation_key(qbo: EmulatorHandle, company: Company) -> None:
    """It re-creates only with a new generation key (when policy says so): exactly one live fee invoice."""
    customer = company.customer("Second Try Ltd", "ap@second.example")
    original = company.invoice(customer, "400.00", DocNumber="2042", DueDate="2026-01-31")
    adapter = company.adapter()
    invoice = adapter.get_invoice(original["Id"])
    assert invoice is not None
    first = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b")
    fee = qbo.store.read(company.realm, "Invoice", first.external_ref)
    qbo.store.delete(company.realm, "Invoice", {"Id": fee["Id"], "SyncToken": fee["SyncToken"]})
    with pytest.raises(ReplayedObjectGone):
        adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b")
    again = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b:gen2")
    assert again.external_ref != first.external_ref
    assert [f["Id"] for f in _fees(company)] == [again.external_ref]
