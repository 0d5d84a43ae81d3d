"""RS-20 — QuickBooks throttling: a 429 with `Retry-After` (JSON Fault), ThrottleExceeded (3001) as an XML body on
HTTP 403, and as a JSON Fault on HTTP 200.

The emulator's throttle knob answers with the chosen status, body format and headers and carries nothing out;
the client's sleep is recorded (never slept for real), so the back-off is asserted by value, not by timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from connector.domain.model import InvoiceSnapshot
from connector.ratelimit.tenant import LimitWaits
from providers.quickbooks.adapter import QuickBooksAdapter
from providers.quickbooks.client import QboClient
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company, emulator_company, faults_cleared


@pytest.fixture
def company(qbo: EmulatorHandle) -> Iterator[Company]:
    """A fresh company; `qbo` (tests/conftest.py) keeps QuickBooks' own limits on: 500 a minute, 10 at once."""
    with faults_cleared(qbo):
        yield emulator_company(qbo, retry_base_s=0.01, max_retry_after_s=30, timeout_s=10)
    qbo.core.latency_s = 0.0


def _adapter(company: Company, sleeps: list[float]) -> QuickBooksAdapter:
    client = QboClient(company.realm, company.tokens, company.settings, sleep=sleeps.append)
    return company.adapter(client=client)


def _throttle(qbo: EmulatorHandle, **spec: object) -> None:
    requests.post(f"{qbo.url}/__admin/throttle", json=spec, timeout=5).raise_for_status()


def _full_sync(adapter: QuickBooksAdapter) -> int:
    return sum(len(page.invoices) for page in adapter.changed_invoices(None))


@pytest.mark.parametrize(
    ("status", "body_format"),
    [
        pytest.param(429, "json", id="429-json"),
        pytest.param(403, "xml", id="403-xml"),
        pytest.param(200, "json", id="200-json-fault"),
        pytest.param(200, "xml", id="200-xml-fault"),
    ],
)
def test_rs20_throttled_sync_honours_retry_after_and_finishes(
    qbo: EmulatorHandle, company: Company, status: int, body_format: str
) -> None:
    """Back-off honours Retry-After and the sync finishes (429 JSON; ThrottleExceeded 3001 as XML on 403; on 200)."""
    company.seed(customers=3, invoices=25)
    _throttle(qbo, status=status, format=body_format, retry_after=7, times=2, path="/query")
    sleeps: list[float] = []
    adapter = _adapter(company, sleeps)
    before = adapter.limit_waits()
    assert _full_sync(adapter) == 25
    assert sleeps == [7.0, 7.0]
    # Counted as waits for the realm's limit (the sync run records them; GET /metrics reports them).
    assert adapter.limit_waits().since(before) == LimitWaits(2, 14.0)
    throttled = [c for c in qbo.core.calls("data", company.realm) if c.path.endswith("/query") and c.status == status]
    assert len(throttled) >= 2


def test_rs20_throttled_writes_are_not_duplicated(qbo: EmulatorHandle, company: Company) -> None:
    """No duplicate writes: a note whose update is throttled (200 + Fault 3001, then 403 XML) is written once."""
    customer = company.customer("Throttle Ltd", "ap@throttle.example")
    raw = company.invoice(customer, "120.00")
    sleeps: list[float] = []
    adapter = _adapter(company, sleeps)
    invoice = adapter.get_invoice(raw["Id"])
    assert isinstance(invoice, InvoiceSnapshot)
    _throttle(qbo, status=200, format="json", retry_after=3, times=1, path="/invoice", method="POST")
    _throttle(qbo, status=403, format="xml", retry_after=4, times=1, path="/invoice", method="POST")
    adapter.add_note(invoice, "Reminder 1 sent", "note-rs20")
    adapter.add_note(invoice, "Reminder 1 sent", "note-rs20")  # the executor's retry: found, not re-applied
    assert sleeps == [3.0, 4.0]
    note = str(qbo.store.read(company.realm, "Invoice", raw["Id"]).get("PrivateNote") or "")
    assert note.count("[nudge ") == 1
    writes = [c for c in qbo.core.calls("data", company.realm) if c.method == "POST" and c.path.endswith("/invoice")]
    assert [c.status for c in writes] == [200, 403, 200]


def test_rs20_the_client_keeps_within_10_concurrent_and_500_a_minute(qbo: EmulatorHandle, company: Company) -> None:
    """The emulator records ≤ 10 concurrent and ≤ 500/min per realm (16 threads reading at once)."""
    customer = company.customer("Busy Ltd", "ap@busy.example")
    ids = [company.invoice(customer, "10.00")["Id"] for _ in range(4)]
    qbo.core.latency_s = 0.02  # each call takes a moment, so the threads overlap
    errors: list[BaseException] = []

    def reader() -> None:
        adapter = company.adapter()
        try:
            for ident in ids:
                adapter.get_invoice(ident)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = requests.get(f"{qbo.url}/__admin/companies/{company.realm}/usage", timeout=5).json()
    assert errors == []
    assert 1 < usage["peak_concurrent"] <= 10
    assert usage["peak_per_minute"] <= 500
    refused = [c for c in qbo.core.calls("data", company.realm) if c.status == 429]
    assert refused == []
