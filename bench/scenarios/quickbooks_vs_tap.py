"""Nudge's QuickBooks full sync against Singer's tap-quickbooks 2.5.0: 10,000 open invoices, 50 ms latency.

Both read one emulator process (a child process, QuickBooks' real limits on), runs interleaved: ours, tap, ours,
tap; each side's best wall time is reported (noise on the shared machine only adds time).
- Ours: `QuickBooksAdapter.changed_invoices(None, first_sync=True)`, a connection's first sync: open invoices,
  customers, and the open payments and credit memos (100 customers have paid money no invoice took yet;
  `payments` counts the money objects ours read), every page mapped to domain snapshots.
- The tap: its own venv (bench/.taps/tap-quickbooks, see bench/taps), the `invoices` stream alone selected in the
  catalog its `--discover` wrote, started as a data engineer runs it (it refreshes its token at start, posting
  client_id and client_secret in the form body); its stdout's RECORD messages are counted, and must be 10,000.
`calls` / `tap_calls` count data calls in the emulator's call log (not the tap's one token refresh, an OAuth call;
ours reuses a live access token). `wall_s` is ours in-process; `tap_wall_s` the tap process from spawn to exit.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from bench.taps import TapSpec, best, discover, ensure_venv, peer_targets, run_tap, select_only
from bench.targets import Target
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from providers.quickbooks.emulator.kit import QuickBooksKit

NAME = "quickbooks_vs_tap"
INVOICES = 10_000
CUSTOMERS = 300
OVERPAYMENTS = 100
LATENCY_S = 0.05
ROUNDS = 2
STREAM = "invoices"
TAP = TapSpec("tap-quickbooks", "2.5.0", wrapper="run_tap_quickbooks.py")


class _Tokens:
    """Minimal TokenSource: the emulator's access token lives an hour, longer than the run."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens

    def current(self) -> Any:
        return self.tokens

    def refreshed(self, rejected_access_token: str) -> Any:
        raise RuntimeError("no refresh expected during the benchmark")


def _tap_config(folder: Path, realm: str, refresh_token: str) -> Path:
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "start_date": "2000-01-01T00:00:00Z",
                "user_agent": "nudge-bench",
                "realm_id": realm,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "refresh_token": refresh_token,
            }
        )
    )
    return config


def _overpay(kit: QuickBooksKit, realm: str, api_base: str, access_token: str) -> None:
    """OVERPAYMENTS customers each pay 25.00 that no invoice takes (open Payments a full sync reads)."""
    answer = requests.get(
        f"{api_base}/company/{realm}/query",
        params={"query": f"SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS {OVERPAYMENTS}"},
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=30,
    )
    answer.raise_for_status()
    for customer in answer.json()["QueryResponse"]["Customer"]:
        kit.overpay(realm, str(customer["Id"]), Decimal("25.00"))


def run() -> dict[str, float]:
    from connector.ports import TokenSet
    from providers.quickbooks.adapter import QuickBooksAdapter

    ensure_venv(TAP)  # run_tap uses its python
    kit = QuickBooksKit()
    kit.start(process=True)  # one emulator process for both sides, apart from the measured clients
    try:
        realm = kit.seed_company("Bench Co", customers=CUSTOMERS, invoices=INVOICES)
        settings = kit.settings("http://127.0.0.1/callback")
        tokens = _Tokens(TokenSet.from_response(kit.grant(realm), datetime.now(UTC)))
        _overpay(kit, realm, settings.api_base, tokens.current().access_token)
        payments_read: list[int] = []

        def ours() -> tuple[int, float, int]:
            kit.clear_calls()
            started = time.perf_counter()
            adapter = QuickBooksAdapter(realm, tokens, settings)
            count = payments = 0
            for page in adapter.changed_invoices(None, first_sync=True):
                count += len(page.invoices)
                payments += len(page.payments)
            wall = time.perf_counter() - started
            payments_read.append(payments)
            return count, wall, kit.data_calls(realm)

        with tempfile.TemporaryDirectory(prefix="nudge-bench-tap-") as folder:
            workdir = Path(folder)
            config = _tap_config(workdir, realm, str(kit.grant(realm)["refresh_token"]))
            catalog = workdir / "catalog.json"
            catalog.write_text(json.dumps(select_only(discover(TAP, kit.url, config, workdir), STREAM)))
            kit.set_latency(LATENCY_S)

            def tap() -> tuple[int, float, int]:
                kit.clear_calls()
                arguments = ["--config", str(config), "--catalog", str(catalog)]
                done = run_tap(TAP, kit.url, arguments, stream=STREAM, workdir=workdir)
                return done.records, done.wall_s, kit.data_calls(realm)

            mine, theirs = [], []
            for _ in range(ROUNDS):
                mine.append(ours())
                theirs.append(tap())
    finally:
        kit.stop()
    if any(count != INVOICES for count, _, _ in mine + theirs):
        raise RuntimeError(f"invoices synced (ours, tap): {[m[0] for m in mine]}, {[t[0] for t in theirs]}")
    if any(payments != OVERPAYMENTS for payments in payments_read):
        raise RuntimeError(f"payments read by ours: {payments_read}, expected {OVERPAYMENTS}")
    return {
        "calls": float(max(calls for _, _, calls in mine)),
        "wall_s": round(best([wall for _, wall, _ in mine]), 3),
        "tap_calls": float(max(calls for _, _, calls in theirs)),
        "tap_wall_s": round(best([wall for _, wall, _ in theirs]), 3),
        "payments": float(min(payments_read)),
    }


def targets(metrics: dict[str, float]) -> list[Target]:
    """No more calls than tap-quickbooks and at least 5 x faster (issue 13)."""
    return peer_targets(metrics)


if __name__ == "__main__":
    print(run())
