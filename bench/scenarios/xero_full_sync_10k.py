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

import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bench.targets import Target, at_most
from providers.xero.client import RateLimiter
from providers.xero.emulator.kit import XeroKit

NAME = "xero_full_sync_10k"
INVOICES = 10_000
CONTACTS = 500
LATENCY_S = 0.05
ROUNDS = 3  # concurrent and sequential syncs alternate; the best wall time of each is kept
PAGE_LIMIT = 5  # Xero's concurrent calls per organisation (docs/provider-api-facts.md §2.4)


class PeakLimiter(RateLimiter):
    """Xero's real per-tenant limiter, also remembering the most calls it had in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0
        self._in_flight = 0
        self._count_lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with super().slot():
            with self._count_lock:
                self._in_flight += 1
                self.peak = max(self.peak, self._in_flight)
            try:
                yield
            finally:
                with self._count_lock:
                    self._in_flight -= 1


def _timed(sync: Callable[[], int], kit: XeroKit, tenant: str) -> tuple[float, int, int]:
    """(wall seconds, data calls, 429 answers) of one sync, which must bring every invoice."""
    kit.clear_calls()
    started = time.perf_counter()
    count = sync()
    wall = time.perf_counter() - started
    if count != INVOICES:
        raise RuntimeError(f"synced {count} invoices, expected {INVOICES}")
    calls = kit.calls("data", tenant)
    return wall, len(calls), sum(1 for call in calls if call["status"] == 429)


def _peak_mb(work: Callable[[], int]) -> float:
    tracemalloc.start()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1_000_000


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
        limiters = {org: PeakLimiter() for org in (tenant, twin)}  # one per organisation, as in a worker

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

        concurrent: list[tuple[float, int, int]] = []
        sequential: list[tuple[float, int, int]] = []
        for _ in range(ROUNDS):
            concurrent.append(_timed(ours(tenant), kit, tenant))
            sequential.append(_timed(ours(twin, page_concurrency=1), kit, twin))
        peak_mb = _peak_mb(ours(tenant))
        kit.set_limits()  # the naive SDK paging takes 101 calls: more than a minute's 60
        base_wall, base_calls, _ = _timed(naive, kit, tenant)
        base_peak = _peak_mb(naive)
    finally:
        kit.stop()
    return {
        "calls": float(concurrent[0][1]),
        "wall_s": round(min(wall for wall, _, _ in concurrent), 3),
        "sequential_calls": float(sequential[0][1]),
        "sequential_wall_s": round(min(wall for wall, _, _ in sequential), 3),
        "rate_limited_calls": float(sum(limited for _, _, limited in concurrent + sequential)),
        "peak_concurrent_calls": float(limiters[tenant].peak),
        "peak_mb": round(peak_mb, 2),
        # Pages overlap only where the machine has a core to spare: a loaded machine narrows the gap to sequential.
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "baseline_calls": float(base_calls),
        "baseline_wall_s": round(base_wall, 3),
        "baseline_peak_mb": round(base_peak, 2),
    }


def targets(metrics: dict[str, float]) -> list[Target]:
    """Issue 13: pages concurrently, at most 0.6 x the one-at-a-time wall time, same calls (≤ 11), no 429."""
    ratio = metrics["wall_s"] / metrics["sequential_wall_s"]
    return [
        Target(
            f"wall_s <= 0.6 x sequential_wall_s (is {metrics['wall_s']:g} = {ratio:.2f} x "
            f"{metrics['sequential_wall_s']:g})",
            metrics["wall_s"] <= 0.6 * metrics["sequential_wall_s"],
        ),
        at_most(metrics, "calls", 11),
        Target(
            f"calls == sequential_calls (is {metrics['calls']:g} and {metrics['sequential_calls']:g})",
            metrics["calls"] == metrics["sequential_calls"],
        ),
        at_most(metrics, "rate_limited_calls", 0),
        at_most(metrics, "peak_concurrent_calls", PAGE_LIMIT),
    ]
