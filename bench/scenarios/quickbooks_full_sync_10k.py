"""Full sync of 10,000 open QuickBooks invoices against the emulator with 50 ms added latency per call.

Ours: `QuickBooksAdapter.changed_invoices(None)` (one batch call + pages of 1000, yielded page by page).
Baseline, same run: the naive python-quickbooks way — `Invoice.all(start_position=..., qb=qb)` with its
default 100 per page, collecting every invoice. The emulator runs in a separate process so that
tracemalloc's peak measures the client side only; wall time is measured in a pass without tracemalloc.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

NAME = "quickbooks_full_sync_10k"
INVOICES = 10_000
CUSTOMERS = 300
LATENCY_MS = 50
REALM = "4620816365000000001"
ROOT = Path(__file__).resolve().parents[2]


class _Tokens:
    """Minimal TokenSource: the emulator's access token lives an hour, longer than the run."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens

    def current(self) -> Any:
        return self.tokens

    def refreshed(self, rejected_access_token: str) -> Any:
        raise RuntimeError("no refresh expected during the benchmark")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_emulator(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "providers.quickbooks.emulator",
        "--port",
        str(port),
        "--company",
        "Bench Co",
        "--realm",
        REALM,
        "--seed-customers",
        str(CUSTOMERS),
        "--seed-invoices",
        str(INVOICES),
        "--latency-ms",
        str(LATENCY_MS),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if "QuickBooks emulator on" in line:
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the QuickBooks emulator did not start")


def _measure(run: Callable[[], int], base: str) -> dict[str, float]:
    requests.delete(f"{base}/__admin/calls", timeout=10)
    started = time.perf_counter()
    count = run()
    wall = time.perf_counter() - started
    calls = requests.get(f"{base}/__admin/calls", params={"category": "data", "tenant": REALM}, timeout=30).json()
    if count != INVOICES:
        raise RuntimeError(f"synced {count} invoices, expected {INVOICES}")
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"calls": float(calls["count"]), "wall_s": wall, "peak_mb": peak / 1024 / 1024}


def run() -> dict[str, float]:
    from quickbooks import QuickBooks
    from quickbooks.objects.invoice import Invoice

    from connector.ports import ProviderSettings, TokenSet
    from providers.quickbooks import oauth
    from providers.quickbooks.adapter import QuickBooksAdapter
    from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    port = _free_port()
    process = _start_emulator(port)
    base = f"http://127.0.0.1:{port}"
    try:
        settings = ProviderSettings(
            key="quickbooks",
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri="http://127.0.0.1/callback",
            environment=f"{base}/.well-known/openid_configuration",
            api_base=f"{base}/v3",
        )
        body = requests.post(f"{base}/__admin/companies/{REALM}/tokens", timeout=10).json()
        tokens = TokenSet.from_response(body, datetime.now(UTC))

        def ours() -> int:
            adapter = QuickBooksAdapter(REALM, _Tokens(tokens), settings)
            return sum(len(page.invoices) for page in adapter.changed_invoices(None))

        def naive() -> int:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http to the loopback emulator only
            client = oauth.auth_client(settings, access_token=tokens.access_token, refresh_token=tokens.refresh_token)
            qb = QuickBooks(auth_client=client, refresh_token=tokens.refresh_token, company_id=REALM, minorversion=75)
            qb.api_url_v3 = f"{base}/v3"
            everything: list[Any] = []
            position = 1
            while True:
                page = Invoice.all(start_position=position, qb=qb)  # default max_results=100
                everything.extend(page)
                if len(page) < 100:
                    return len(everything)
                position += 100

        mine = _measure(ours, base)
        theirs = _measure(naive, base)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {
        **mine,
        **{f"baseline_{key}": value for key, value in theirs.items()},
    }


if __name__ == "__main__":
    print(run())
