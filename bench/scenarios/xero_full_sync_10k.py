"""Full sync of 10,000 open Xero invoices at 50 ms latency: Nudge's adapter beside naive xero-python.

The emulator (its kit) runs in a child process (so client memory is measured alone) with Xero's real limits
(60 calls a minute, 5 at once, per organisation). Ours: XeroAdapter (contacts + `pageSize=1000`, `summaryOnly`,
raw JSON; after the first page the others are read ahead concurrently, 5 at once, yielded in order).
`sequential_wall_s`: the same adapter with `page_concurrency=1` (one page at a time), in the same run, against a
second organisation seeded alike (a sync spends 11 of an organisation's 60 calls a minute: one organisation
could not host every run). The two alternate, three times each, and the best of each is kept (the machine is
shared); wall time is measured without tracemalloc, the peak in a pass of its own. `rate_limited_calls` counts
the 429s our syncs drew; `peak_concurrent_calls` is the most calls the adapter had in flight at once.
Baseline: `AccountingApi.get_invoices(page=n)` with the SDK's default page size (100) and its model objects,
collected into one list — 101 calls, so the emulator's limits are lifted for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.sync_race import Timing, peak_mb, race_metrics, race_targets, timed_sync
from bench.targets import Target
from providers.xero.client import RateLimiter
from providers.xero.emulator.kit import XeroKit

NAME = "xero_full_sync_10k"
INVOICES = 10_000
CONTACTS = 500
LATENCY_S = 0.05
ROUNDS = 3  # concurrent and sequential syncs alternate; the best wall time of each is kept
PAGE_LIMIT = 5  # Xero's concurrent calls per organisation (docs/provider-api-facts.md §2.4)


def run() -> dict[str, float]:
    from xero_python.accounting import AccountingApi

    from providers.xero.adapter import XeroAdapter
    from providers.xero.oauth import LocalTokenSource, api_client, tokens_from_response

    kit = XeroKit()  # Xero's real limits
    kit.start(process=True)  # a child process: tracemalloc measures the client side only
    try:
        tenant = kit.seed_company("Bench Ltd", customers=CONTACTS, invoices=INVOICES)
        twin = kit.seed_company("Bench Twin Ltd", customers=CONTACTS, invoices=INVOICES)
        kit.set_latency(LATENCY_S)
        settings = kit.settings("http://127.0.0.1/cb")
        tokens = {
            org: LocalTokenSource(settings, tokens_from_response(kit.grant(org), datetime.now(UTC)))
            for org in (tenant, twin)
        }
        limiters = {org: RateLimiter() for org in (tenant, twin)}  # one per organisation, as in a worker

        def ours(org: str, page_concurrency: int | None = None) -> Callable[[], int]:
            def sync() -> int:
                adapter = XeroAdapter(
                    org, tokens[org], settings, limiter=limiters[org], page_concurrency=page_concurrency
                )
                count = 0
                for page in adapter.changed_invoices(None):
                    count += len(page.invoices)  # a consumer stores each page and lets it go
                return count

            return sync

        def naive() -> int:
            api = AccountingApi(api_client(tokens[tenant], settings), base_url=settings.api_base)
            collected: list[Any] = []
            page = 1
            while True:
                batch = api.get_invoices(tenant, where='Type=="ACCREC"', statuses=["AUTHORISED"], page=page).invoices
                if not batch:
                    break
                collected.extend(batch)
                page += 1
            return len(collected)

        concurrent: list[Timing] = []
        sequential: list[Timing] = []
        for _ in range(ROUNDS):
            concurrent.append(timed_sync(ours(tenant), kit, tenant, INVOICES))
            sequential.append(timed_sync(ours(twin, page_concurrency=1), kit, twin, INVOICES))
        ours_peak_mb = peak_mb(ours(tenant))
        kit.set_limits()  # the naive SDK paging takes 101 calls: more than a minute's 60
        baseline = timed_sync(naive, kit, tenant, INVOICES)
        base_peak = peak_mb(naive)
    finally:
        kit.stop()
    return race_metrics(
        concurrent,
        sequential,
        peak_concurrent=limiters[tenant].peak_in_flight,
        ours_peak_mb=ours_peak_mb,
        baseline=baseline,
        baseline_peak_mb=base_peak,
    )


def targets(metrics: dict[str, float]) -> list[Target]:
    return race_targets(metrics, PAGE_LIMIT)
