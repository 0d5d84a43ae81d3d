"""Full sync of 10,000 open Xero invoices at 50 ms latency: Nudge's adapter beside naive xero-python.

The emulator runs in a child process (so client memory is measured alone). Ours: XeroAdapter
(contacts + `pageSize=1000`, `summaryOnly`, raw JSON). Baseline: `AccountingApi.get_invoices(page=n)`
with the SDK's default page size (100) and its model objects, collected into one list.
Rate limits are switched off so both measure transport and parsing, not Xero's 60/min budget.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import requests

NAME = "xero_full_sync_10k"
INVOICES = 10_000
CONTACTS = 500
LATENCY_S = 0.05


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/__admin/clock", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("the Xero emulator did not start")


def _data_calls(url: str) -> int:
    return int(requests.get(f"{url}/__admin/calls", params={"category": "data"}, timeout=30).json()["count"])


def _measure(work: Any) -> tuple[Any, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, wall, peak / 1_000_000


def run() -> dict[str, float]:
    from connector.ports import ProviderSettings
    from providers.xero.adapter import XeroAdapter
    from providers.xero.client import RateLimiter
    from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    from providers.xero.oauth import LocalTokenSource, api_client, tokens_from_response

    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "providers.xero.emulator", "--port", str(port), "--no-limits"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url)
        spec = {"name": "Bench Ltd", "invoices": INVOICES, "contacts": CONTACTS}
        tenant = requests.post(f"{url}/__admin/generate", json=spec, timeout=120).json()["tenantId"]
        grant = requests.post(f"{url}/__admin/grant", json={"tenants": [tenant]}, timeout=10).json()
        requests.post(f"{url}/__admin/latency", json={"seconds": LATENCY_S}, timeout=10)
        settings = ProviderSettings(
            key="xero",
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri="http://127.0.0.1/cb",
            api_base=f"{url}/api.xro/2.0",
            identity_base=url,
        )
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

        requests.delete(f"{url}/__admin/calls", timeout=10)
        count, wall, peak = _measure(ours)
        calls = _data_calls(url)
        requests.delete(f"{url}/__admin/calls", timeout=10)
        base_count, base_wall, base_peak = _measure(naive)
        base_calls = _data_calls(url)
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
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
