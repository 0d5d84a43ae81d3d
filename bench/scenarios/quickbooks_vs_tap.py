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

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import requests

from bench.taps import TapSpec, ensure_venv, peer_metrics, peer_targets, race, write_tap_config
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
    from providers.quickbooks.oauth import FixedTokens

    ensure_venv(TAP)  # run_tap uses its python
    kit = QuickBooksKit()
    kit.start(process=True)  # one emulator process for both sides, apart from the measured clients
    try:
        realm = kit.seed_company("Bench Co", customers=CUSTOMERS, invoices=INVOICES)
        settings = kit.settings("http://127.0.0.1/callback")
        tokens = FixedTokens(TokenSet.from_response(kit.grant(realm), datetime.now(UTC)))
        _overpay(kit, realm, settings.api_base, tokens.current().access_token)

        def ours() -> tuple[int, int]:
            adapter = QuickBooksAdapter(realm, tokens, settings)
            invoices = money = 0
            for page in adapter.changed_invoices(None, first_sync=True):
                invoices += len(page.invoices)
                money += len(page.payments)
            return invoices, money

        def write_config(folder: Path) -> Path:
            client = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            return write_tap_config(folder, "realm_id", realm, client, str(kit.grant(realm)["refresh_token"]))

        mine, theirs = race(TAP, kit, realm, ours, write_config, stream=STREAM, rounds=ROUNDS, latency_s=LATENCY_S)
    finally:
        kit.stop()
    return peer_metrics(mine, theirs, invoices=INVOICES, money=OVERPAYMENTS)


def targets(metrics: dict[str, float]) -> list[Target]:
    """No more calls than tap-quickbooks and at least 5 x faster (issue 13)."""
    return peer_targets(metrics)


if __name__ == "__main__":
    print(run())
