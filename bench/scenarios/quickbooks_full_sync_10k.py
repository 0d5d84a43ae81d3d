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
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.targets import Target, at_most
from providers.quickbooks.emulator.kit import QuickBooksKit

NAME = "quickbooks_full_sync_10k"
INVOICES = 10_000
CUSTOMERS = 300
LATENCY_MS = 50
ROUNDS = 3  # concurrent and sequential syncs alternate; the best wall time of each is kept
PAGE_LIMIT = 10  # QuickBooks' concurrent calls per realm (docs/provider-api-facts.md §1.6)


class _Tokens:
    """Minimal TokenSource: the emulator's access token lives an hour, longer than the run."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens

    def current(self) -> Any:
        return self.tokens

    def refreshed(self, rejected_access_token: str) -> Any:
        raise RuntimeError("no refresh expected during the benchmark")


def _timed(run: Callable[[], int], kit: QuickBooksKit, realm: str) -> tuple[float, int, int]:
    """(wall seconds, data calls, 429 answers) of one sync, which must bring every invoice."""
    kit.clear_calls()
    started = time.perf_counter()
    count = run()
    wall = time.perf_counter() - started
    if count != INVOICES:
        raise RuntimeError(f"synced {count} invoices, expected {INVOICES}")
    calls = kit.calls("data", realm)
    return wall, len(calls), sum(1 for call in calls if call["status"] == 429)


def _peak_mb(run: Callable[[], int]) -> float:
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024 / 1024


def run() -> dict[str, float]:
    from quickbooks import QuickBooks
    from quickbooks.objects.invoice import Invoice

    from connector.ports import TokenSet
    from providers.quickbooks import oauth
    from providers.quickbooks.adapter import QuickBooksAdapter

    kit = QuickBooksKit()  # QuickBooks' real limits
    kit.start(process=True)  # a child process: tracemalloc measures the client side only
    try:
        realm = kit.seed_company("Bench Co", customers=CUSTOMERS, invoices=INVOICES)
        kit.set_latency(LATENCY_MS / 1000)
        settings = kit.settings("http://127.0.0.1/callback")
        tokens = TokenSet.from_response(kit.grant(realm), datetime.now(UTC))

        def ours(page_concurrency: int | None = None) -> Callable[[], int]:
            def sync() -> int:
                adapter = QuickBooksAdapter(realm, _Tokens(tokens), settings, page_concurrency=page_concurrency)
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

        concurrent: list[tuple[float, int, int]] = []
        sequential: list[tuple[float, int, int]] = []
        for _ in range(ROUNDS):
            concurrent.append(_timed(ours(), kit, realm))
            sequential.append(_timed(ours(page_concurrency=1), kit, realm))
        peak_mb = _peak_mb(ours())
        peak_concurrent = int(kit.admin(f"companies/{realm}/usage", method="GET")["peak_concurrent"])
        base_wall, base_calls, _ = _timed(naive, kit, realm)
        base_peak = _peak_mb(naive)
    finally:
        kit.stop()
    return {
        "calls": float(concurrent[0][1]),
        "wall_s": round(min(wall for wall, _, _ in concurrent), 3),
        "sequential_calls": float(sequential[0][1]),
        "sequential_wall_s": round(min(wall for wall, _, _ in sequential), 3),
        "rate_limited_calls": float(sum(limited for _, _, limited in concurrent + sequential)),
        "peak_concurrent_calls": float(peak_concurrent),
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


if __name__ == "__main__":
    print(run())
