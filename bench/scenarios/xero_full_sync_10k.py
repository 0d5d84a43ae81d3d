"""Full sync of 10,000 open Xero invoices at 50 ms latency: Nudge's adapter beside naive xero-python.

The emulator (its kit) runs in a child process (so client memory is measured alone). Ours: XeroAdapter
(contacts + `pageSize=1000`, `summaryOnly`, raw JSON). Baseline: `AccountingApi.get_invoices(page=n)`
with the SDK's default page size (100) and its model objects, collected into one list.
Rate limits are switched off so both measure transport and parsing, not Xero's 60/min budget.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from providers.xero.emulator.kit import XeroKit

NAME = "xero_full_sync_10k"
INVOICES = 10_000
CONTACTS = 500
LATENCY_S = 0.05


def _measure(work: Any) -> tuple[Any, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, wall, peak / 1_000_000


def run() -> dict[str, float]:
    from providers.xero.adapter import XeroAdapter
    from providers.xero.client import RateLimiter
    from providers.xero.oauth import LocalTokenSource, api_client, tokens_from_response

    kit = XeroKit(rate_limits=False)
    kit.start(process=True)  # a child process: tracemalloc measures the client side only
    try:
        tenant = kit.seed_company("Bench Ltd", customers=CONTACTS, invoices=INVOICES)
        grant = kit.grant(tenant)
        kit.set_latency(LATENCY_S)
        settings = kit.settings("http://127.0.0.1/cb")
        tokens = LocalTokenSource(settings, tokens_from_response(grant, datetime.now(UTC)))

        def ours() -> int:
            adapter = XeroAdapter(tenant, tokens, settings, limiter=RateLimiter(per_minute=0))
            count = 0
            for page in adapter.changed_invoices(None):
                count += len(page.invoices)  # a consumer stores each page and lets it go
            return count

        def naive() -> int:
            from xero_python.accounting import AccountingApi

            api = AccountingApi(api_client(tokens, settings), base_url=settings.api_base)
            collected: list[Any] = []
            page = 1
            while True:
                batch = api.get_invoices(tenant, where='Type=="ACCREC"', statuses=["AUTHORISED"], page=page).invoices
                if not batch:
                    break
                collected.extend(batch)
                page += 1
            return len(collected)

        kit.clear_calls()
        count, wall, peak = _measure(ours)
        calls = kit.data_calls()
        kit.clear_calls()
        base_count, base_wall, base_peak = _measure(naive)
        base_calls = kit.data_calls()
        if count != INVOICES or base_count != INVOICES:
            raise RuntimeError(f"synced {count} / baseline {base_count} of {INVOICES} invoices")
        return {
            "calls": float(calls),
            "wall_s": round(wall, 3),
            "peak_mb": round(peak, 2),
            "baseline_calls": float(base_calls),
            "baseline_wall_s": round(base_wall, 3),
            "baseline_peak_mb": round(base_peak, 2),
        }
    finally:
        kit.stop()
