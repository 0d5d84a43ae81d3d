"""Nudge's Xero full sync against Singer's tap-xero 2.6.0: 10,000 open invoices, 50 ms latency.

Both read one emulator process (a child process), runs interleaved: ours, tap, ours, tap; each side's best wall
time is reported (noise on the shared machine only adds time). Xero's rate limits are off, as in
`xero_full_sync_10k`: the tap's 100 invoices a page take ~101 calls, beyond Xero's 60 a minute, and its waits for
the minute to pass would measure Xero's budget rather than the tap's work.
- Ours: what a new connection reads before its first action: `XeroAdapter.changed_invoices(None, first_sync=True)`
  (contacts, open invoices 1000 a page `summaryOnly`, payments already on partly paid ones) and `open_credits()`
  (overpayments, prepayments, credit notes: 100 contacts have paid money no invoice took yet; `payments` counts
  the money objects ours read).
- The tap: its own venv (bench/.taps/tap-xero, with `six`: see TAP), the `invoices` stream alone selected in the
  catalog its `--discover` wrote, started as a data engineer runs it (it refreshes its token at start, Basic
  client credentials); its stdout's RECORD messages are counted, and must be 10,000.
`calls` / `tap_calls` count data calls in the emulator's call log (not the tap's one token refresh, an identity call;
ours reuses a live access token). `wall_s` is ours in-process; `tap_wall_s` the tap process from spawn to exit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import requests

from bench.taps import TapSpec, ensure_venv, peer_metrics, peer_targets, race, write_tap_config
from bench.targets import Target
from providers.xero.emulator.kit import XeroKit
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

NAME = "xero_vs_tap"
INVOICES = 10_000
CONTACTS = 500
OVERPAYMENTS = 100  # Xero's Contacts page holds 100
LATENCY_S = 0.05
ROUNDS = 2
STREAM = "invoices"
# tap-xero's client.py imports six but the distribution does not declare it; python-dateutil used to bring it
# along and no longer does, so the bench installs it beside the tap.
TAP = TapSpec("tap-xero", "2.6.0", extra_pins=(("six", "1.17.0"),), wrapper="run_tap_xero.py")


def _overpay(kit: XeroKit, tenant: str, api_base: str, access_token: str) -> None:
    """OVERPAYMENTS contacts each pay 25.00 that no invoice takes (overpayments a full sync reads)."""
    answer = requests.get(
        f"{api_base}/Contacts",
        params={"page": "1"},
        headers={"Authorization": f"Bearer {access_token}", "Xero-tenant-id": tenant, "Accept": "application/json"},
        timeout=30,
    )
    answer.raise_for_status()
    for contact in answer.json()["Contacts"][:OVERPAYMENTS]:
        kit.overpay(tenant, str(contact["ContactID"]), Decimal("25.00"))


def run() -> dict[str, float]:
    from providers.xero.adapter import XeroAdapter
    from providers.xero.client import RateLimiter
    from providers.xero.oauth import LocalTokenSource, tokens_from_response

    ensure_venv(TAP)  # run_tap uses its python
    kit = XeroKit(rate_limits=False)
    kit.start(process=True)  # one emulator process for both sides, apart from the measured clients
    try:
        tenant = kit.seed_company("Bench Ltd", customers=CONTACTS, invoices=INVOICES)
        settings = kit.settings("http://127.0.0.1/cb")
        tokens = LocalTokenSource(settings, tokens_from_response(kit.grant(tenant), datetime.now(UTC)))
        _overpay(kit, tenant, settings.api_base, tokens.current().access_token)

        def ours() -> tuple[int, int]:
            adapter = XeroAdapter(tenant, tokens, settings, limiter=RateLimiter(per_minute=0))
            invoices = money = 0
            for page in adapter.changed_invoices(None, first_sync=True):
                invoices += len(page.invoices)
                money += len(page.payments)
            money += len(adapter.open_credits().payments)  # read before the first action: the open credit
            return invoices, money

        def write_config(folder: Path) -> Path:
            client = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            return write_tap_config(folder, "tenant_id", tenant, client, str(kit.grant(tenant)["refresh_token"]))

        mine, theirs = race(TAP, kit, tenant, ours, write_config, stream=STREAM, rounds=ROUNDS, latency_s=LATENCY_S)
    finally:
        kit.stop()
    return peer_metrics(mine, theirs, invoices=INVOICES, money=OVERPAYMENTS)


def targets(metrics: dict[str, float]) -> list[Target]:
    """No more calls than tap-xero and at least 5 x faster (issue 13)."""
    return peer_targets(metrics)


if __name__ == "__main__":
    print(run())
