"""Full sync of 10,000 open QuickBooks invoices against the emulator with 50 ms added latency per call.

Ours: `QuickBooksAdapter.changed_invoices(None)` (one batch call, the first page of 1000, then the other pages
read ahead concurrently within the realm's 10 concurrent calls, yielded page by page in order).
`sequential_wall_s`: the same adapter with `page_concurrency=1` (one page at a time), in the same run; the
two are measured alternately, three times each, and the best of each is kept (the machine is shared).
Baseline, same run: the naive python-quickbooks way — `Invoice.all(start_position=..., qb=qb)` with its
default 100 per page, collecting every invoice. The emulator (its kit) runs in a separate process with
QuickBooks' real limits (500 a minute, 10 at once per realm) so that tracemalloc's peak measures the client side
only and `rate_limited_calls` counts the 429s our syncs drew; wall time is measured without tracemalloc.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.sync_race import Timing, peak_mb, race_metrics, race_targets, timed_sync
from bench.targets import Target
from providers.quickbooks.emulator.kit import QuickBooksKit

NAME = "quickbooks_full_sync_10k"
INVOICES = 10_000
CUSTOMERS = 300
LATENCY_MS = 50
ROUNDS = 3  # concurrent and sequential syncs alternate; the best wall time of each is kept
PAGE_LIMIT = 10  # QuickBooks' concurrent calls per realm (docs/provider-api-facts.md §1.6)


def run() -> dict[str, float]:
    from quickbooks import QuickBooks
    from quickbooks.objects.invoice import Invoice

    from connector.ports import TokenSet
    from providers.quickbooks import oauth
    from providers.quickbooks.adapter import QuickBooksAdapter
    from providers.quickbooks.oauth import FixedTokens

    kit = QuickBooksKit()  # QuickBooks' real limits
    kit.start(process=True)  # a child process: tracemalloc measures the client side only
    try:
        realm = kit.seed_company("Bench Co", customers=CUSTOMERS, invoices=INVOICES)
        kit.set_latency(LATENCY_MS / 1000)
        settings = kit.settings("http://127.0.0.1/callback")
        tokens = TokenSet.from_response(kit.grant(realm), datetime.now(UTC))

        def ours(page_concurrency: int | None = None) -> Callable[[], int]:
            def sync() -> int:
                adapter = QuickBooksAdapter(realm, FixedTokens(tokens), settings, page_concurrency=page_concurrency)
                return sum(len(page.invoices) for page in adapter.changed_invoices(None))

            return sync

        def naive() -> int:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http to the loopback emulator only
            client = oauth.auth_client(settings, access_token=tokens.access_token, refresh_token=tokens.refresh_token)
            qb = QuickBooks(auth_client=client, refresh_token=tokens.refresh_token, company_id=realm, minorversion=75)
            qb.api_url_v3 = settings.api_base
            everything: list[Any] = []
            position = 1
            while True:
                page = Invoice.all(start_position=position, qb=qb)  # default max_results=100
                everything.extend(page)
                if len(page) < 100:
                    return len(everything)
                position += 100

        concurrent: list[Timing] = []
        sequential: list[Timing] = []
        for _ in range(ROUNDS):
            concurrent.append(timed_sync(ours(), kit, realm, INVOICES))
            sequential.append(timed_sync(ours(page_concurrency=1), kit, realm, INVOICES))
        ours_peak_mb = peak_mb(ours())
        peak_concurrent = int(kit.admin(f"companies/{realm}/usage", method="GET")["peak_concurrent"])
        baseline = timed_sync(naive, kit, realm, INVOICES)
        base_peak = peak_mb(naive)
    finally:
        kit.stop()
    return race_metrics(
        concurrent,
        sequential,
        peak_concurrent=peak_concurrent,
        ours_peak_mb=ours_peak_mb,
        baseline=baseline,
        baseline_peak_mb=base_peak,
    )


def targets(metrics: dict[str, float]) -> list[Target]:
    return race_targets(metrics, PAGE_LIMIT)


if __name__ == "__main__":
    print(run())
