"""Full sync of 10,000 open QuickBooks invoices against the emulator with 50 ms added latency per call.

Ours: `QuickBooksAdapter.changed_invoices(None)` (one batch call + pages of 1000, yielded page by page).
Baseline, same run: the naive python-quickbooks way — `Invoice.all(start_position=..., qb=qb)` with its
default 100 per page, collecting every invoice. The emulator (its kit) runs in a separate process so that
tracemalloc's peak measures the client side only; wall time is measured in a pass without tracemalloc.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from providers.quickbooks.emulator.kit import QuickBooksKit

NAME = "quickbooks_full_sync_10k"
INVOICES = 10_000
CUSTOMERS = 300
LATENCY_MS = 50


class _Tokens:
    """Minimal TokenSource: the emulator's access token lives an hour, longer than the run."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens

    def current(self) -> Any:
        return self.tokens

    def refreshed(self, rejected_access_token: str) -> Any:
        raise RuntimeError("no refresh expected during the benchmark")


def _measure(run: Callable[[], int], kit: QuickBooksKit, realm: str) -> dict[str, float]:
    kit.clear_calls()
    started = time.perf_counter()
    count = run()
    wall = time.perf_counter() - started
    calls = kit.data_calls(realm)
    if count != INVOICES:
        raise RuntimeError(f"synced {count} invoices, expected {INVOICES}")
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"calls": float(calls), "wall_s": wall, "peak_mb": peak / 1024 / 1024}


def run() -> dict[str, float]:
    from quickbooks import QuickBooks
    from quickbooks.objects.invoice import Invoice

    from connector.ports import TokenSet
    from providers.quickbooks import oauth
    from providers.quickbooks.adapter import QuickBooksAdapter

    kit = QuickBooksKit()
    kit.start(process=True)  # a child process: tracemalloc measures the client side only
    try:
        realm = kit.seed_company("Bench Co", customers=CUSTOMERS, invoices=INVOICES)
        kit.set_latency(LATENCY_MS / 1000)
        settings = kit.settings("http://127.0.0.1/callback")
        tokens = TokenSet.from_response(kit.grant(realm), datetime.now(UTC))

        def ours() -> int:
            adapter = QuickBooksAdapter(realm, _Tokens(tokens), settings)
            return sum(len(page.invoices) for page in adapter.changed_invoices(None))

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

        mine = _measure(ours, kit, realm)
        theirs = _measure(naive, kit, realm)
    finally:
        kit.stop()
    return {
        **mine,
        **{f"baseline_{key}": value for key, value in theirs.items()},
    }


if __name__ == "__main__":
    print(run())
