"""Issue 13: a full sync reads its pages concurrently, within each provider's real limits, yet hands them over
in order, with the calls and cursors of the one-page-at-a-time sync.

Both emulators run over HTTP on 127.0.0.1 with the providers' real limits (QuickBooks 500 a minute and 10 at
once per realm, Xero 60 a minute and 5 at once per organisation) and a small added latency, so that calls
really overlap. Each company has more invoice pages than the provider's concurrent-call limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.errors import Transient
from connector.ports import Page, TokenSet
from providers._emulator import Fault, KitBase
from providers.quickbooks.adapter import QuickBooksAdapter
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.quickbooks.mapping import parse_instant
from providers.quickbooks.oauth import FixedTokens
from providers.xero.adapter import XeroAdapter
from providers.xero.client import RateLimiter
from providers.xero.emulator.kit import XeroKit
from providers.xero.oauth import LocalTokenSource, tokens_from_response
from tests.support.workers import wait_for

LATENCY_S = 0.02
CALLBACK = "http://127.0.0.1/callback"


@dataclass
class Ledger:
    """One seeded company behind a provider emulator, and how to build the adapter for it."""

    kit: KitBase
    tenant: str
    invoices: int
    limit: int  # the provider's concurrent calls per tenant
    calls: int  # data calls of one full sync (the sequential adapter's count, fixed by the layout)
    page_path: str  # what the invoice pages' requests have in their path
    adapter: Callable[[int | None], Any]  # page_concurrency -> adapter
    peak_in_flight: Callable[[], int]

    def log(self) -> list[Any]:
        return list(self.kit.core.calls("data", self.tenant))


def _quickbooks(kit: QuickBooksKit) -> Ledger:
    invoices = 11_500  # 12 pages of 1000: more than QuickBooks' 10 concurrent calls
    realm = kit.seed_company("Many Pages Co", customers=40, invoices=invoices)
    tokens = FixedTokens(TokenSet.from_response(kit.grant(realm), datetime.now(UTC)))
    settings = kit.settings(CALLBACK, retry_base_s=0.01)

    def adapter(page_concurrency: int | None) -> QuickBooksAdapter:
        return QuickBooksAdapter(realm, tokens, settings, page_concurrency=page_concurrency)

    def peak() -> int:
        return int(kit.admin(f"companies/{realm}/usage", method="GET")["peak_concurrent"])

    # One batch call (counts, customers, open credits), then one query per page of open invoices.
    return Ledger(kit, realm, invoices, 10, 1 + 12, "/query", adapter, peak)


def _xero(kit: XeroKit) -> Ledger:
    invoices = 6_000  # 6 pages of 1000: more than Xero's 5 concurrent calls
    tenant = kit.seed_company("Many Pages Ltd", customers=40, invoices=invoices)
    settings = kit.settings(CALLBACK)
    tokens = LocalTokenSource(settings, tokens_from_response(kit.grant(tenant), datetime.now(UTC)))
    limiter = RateLimiter()  # one per organisation, shared by every adapter of it, as in a worker

    def adapter(page_concurrency: int | None) -> XeroAdapter:
        return XeroAdapter(tenant, tokens, settings, limiter=limiter, page_concurrency=page_concurrency)

    # Contacts (one page), then the invoice pages (the open credit is read before acting, not by the reconcile).
    return Ledger(kit, tenant, invoices, 5, 1 + 6, "/Invoices", adapter, lambda: limiter.peak_in_flight)


@pytest.fixture(params=["quickbooks", "xero"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    kit: KitBase = QuickBooksKit() if request.param == "quickbooks" else XeroKit()  # the real limits
    with kit:
        kit.set_latency(LATENCY_S)
        yield _quickbooks(kit) if isinstance(kit, QuickBooksKit) else _xero(kit)  # type: ignore[arg-type]


def _reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("qbo-pages", "xero-pages"))]


def _shape(pages: list[Page]) -> list[tuple[Any, ...]]:
    """What a consumer stores of each page, in order (a QuickBooks cursor is the server's time: compared apart)."""
    return [
        (
            [invoice.external_id for invoice in page.invoices],
            sorted(customer.external_id for customer in page.customers),
            page.next_cursor is None,
            page.calls,
            page.full,
            sorted(page.payments),
            page.quarantined,
        )
        for page in pages
    ]


def test_a_full_sync_reads_its_pages_at_once_within_the_limits_and_hands_them_over_as_one_at_a_time_does(
    ledger: Ledger,
) -> None:
    ledger.kit.clear_calls()
    sequential = list(ledger.adapter(1).changed_invoices(None))
    sequential_log = ledger.log()
    assert ledger.peak_in_flight() == 1

    ledger.kit.clear_calls()
    concurrent = list(ledger.adapter(None).changed_invoices(None))
    log = ledger.log()

    # The same pages in the same order, each with the same invoices, customers, calls and cursor position.
    assert _shape(concurrent) == _shape(sequential)
    assert sum(len(page.invoices) for page in concurrent) == ledger.invoices
    ids = [invoice.external_id for page in concurrent for invoice in page.invoices]
    assert len(set(ids)) == ledger.invoices
    assert all(page.full for page in concurrent)
    if isinstance(ledger.kit, XeroKit):
        # Xero's cursor is the newest UpdatedDateUTC seen so far (in ascending order): the same cursors.
        assert [page.next_cursor for page in concurrent] == [page.next_cursor for page in sequential]
        stamps = [invoice.updated_at for page in concurrent for invoice in page.invoices]
        assert stamps == sorted(stamps)
    else:
        # QuickBooks pages come by ascending Id; only the last page has a cursor: the batch answer's server time.
        assert [page.next_cursor is None for page in concurrent] == [True] * (len(concurrent) - 1) + [False]
        numbers = [int(ident) for ident in ids]
        assert numbers == sorted(numbers)
        cursor, earlier = concurrent[-1].next_cursor, sequential[-1].next_cursor
        assert cursor is not None
        assert earlier is not None
        assert parse_instant(cursor) >= parse_instant(earlier)

    # Exactly the calls of the sequential sync, every one reported by the pages; no 429 from the real limits.
    assert len(log) == len(sequential_log) == ledger.calls
    assert sum(page.calls for page in concurrent) == ledger.calls
    assert [call.status for call in log] == [200] * ledger.calls
    assert sorted(call.path for call in log) == sorted(call.path for call in sequential_log)
    # Calls really overlapped, never more at once than the provider allows.
    assert 1 < ledger.peak_in_flight() <= ledger.limit
    assert _reader_threads() == []


@pytest.mark.parametrize("page_concurrency", [1, None], ids=["one_at_a_time", "concurrent"])
def test_a_page_failing_mid_reconcile_raises_its_error_after_the_pages_before_it_and_leaves_no_thread(
    ledger: Ledger, page_concurrency: int | None
) -> None:
    """The first page passes; every later page answers 503 until the retries are spent (as RS-23's lasting
    fault): both ways, the first page is handed over, then the same error, and no reader thread is left."""
    ledger.kit.add_fault(Fault("delay", path=ledger.page_path, seconds=0, times=1))
    ledger.kit.add_fault(Fault("status", path=ledger.page_path, status=503, times=1000))
    handed: list[Page] = []
    with pytest.raises(Transient):
        handed.extend(ledger.adapter(page_concurrency).changed_invoices(None))
    ledger.kit.clear_faults()
    assert len(handed) == 1
    assert len(handed[0].invoices) == 1000
    assert handed[0].full
    assert _reader_threads() == []
    assert all(call.status != 429 for call in ledger.log())


def test_a_consumer_that_stops_after_the_first_page_stops_the_read_ahead(ledger: Ledger) -> None:
    ledger.kit.clear_calls()
    pages = ledger.adapter(None).changed_invoices(None)
    first = next(pages)
    pages.close()  # e.g. the sync's store failed on the first page

    assert len(first.invoices) == 1000
    assert _reader_threads() == []
    # Only the pages already read ahead were asked for: never more than the limit beyond the first.
    page_calls = [call for call in ledger.log() if ledger.page_path in call.path]
    assert 1 <= len(page_calls) <= 1 + ledger.limit


def test_a_quickbooks_listing_shorter_than_counted_ends_early_and_reports_the_pages_read_ahead_past_it() -> None:
    """Invoices paid (here deleted) between the COUNT and the pages: the page that comes back short ends the
    reconcile with an empty last page carrying the cursor, as one page at a time does; a page already read
    ahead past the end was still a call, and the last page reports it."""
    with QuickBooksKit() as kit:
        realm = kit.add_company("Shrinking Co")
        invoices = kit.seed_invoices(realm, 2_500)  # counted: 3 pages
        tokens = FixedTokens(TokenSet.from_response(kit.grant(realm), datetime.now(UTC)))
        adapter = QuickBooksAdapter(realm, tokens, kit.settings(CALLBACK))
        kit.clear_calls()
        # The first page waits: meanwhile 600 of the counted invoices go, so the second page brings 900.
        kit.add_fault(Fault("delay", path="/query", seconds=1.5, times=1))
        pages: list[Page] = []
        reader = threading.Thread(target=lambda: pages.extend(adapter.changed_invoices(None)))
        reader.start()
        wait_for(lambda: any("/batch" in call.path for call in kit.core.calls("data", realm)), 10, "the COUNT")
        for ident in invoices[:600]:
            kit.emulator.store.delete(realm, "Invoice", {"Id": ident, "SyncToken": "0"})
        reader.join(timeout=30)

        assert [len(page.invoices) for page in pages] == [1000, 900, 0]
        assert [page.next_cursor is None for page in pages] == [True, True, False]
        # The batch, the three pages (the third read ahead, empty): every call reported, the last by the end page.
        assert sum(page.calls for page in pages) == kit.data_calls(realm) == 1 + 3
        assert pages[-1].calls == 1
        assert _reader_threads() == []
