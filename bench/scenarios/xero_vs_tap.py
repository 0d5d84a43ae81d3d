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

import json
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import requests

from bench.taps import TapSpec, best, discover, ensure_venv, peer_targets, run_tap, select_only
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


def _tap_config(folder: Path, tenant: str, refresh_token: str) -> Path:
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "start_date": "2000-01-01T00:00:00Z",
                "user_agent": "nudge-bench",
                "tenant_id": tenant,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "refresh_token": refresh_token,
            }
        )
    )
    return config


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
        payments_read: list[int] = []

        def ours() -> tuple[int, float, int]:
            kit.clear_calls()
            started = time.perf_counter()
            adapter = XeroAdapter(tenant, tokens, settings, limiter=RateLimiter(per_minute=0))
            count = payments = 0
            for page in adapter.changed_invoices(None, first_sync=True):
                count += len(page.invoices)
                payments += len(page.payments)
            payments += len(adapter.open_credits().payments)  # read before the first action: the open credit
            wall = time.perf_counter() - started
            payments_read.append(payments)
            return count, wall, kit.data_calls(tenant)

        with tempfile.TemporaryDirectory(prefix="nudge-bench-tap-") as folder:
            workdir = Path(folder)
            config = _tap_config(workdir, tenant, str(kit.grant(tenant)["refresh_token"]))
            catalog = workdir / "catalog.json"
            catalog.write_text(json.dumps(select_only(discover(TAP, kit.url, config, workdir), STREAM)))
            kit.set_latency(LATENCY_S)

            def tap() -> tuple[int, float, int]:
                kit.clear_calls()
                arguments = ["--config", str(config), "--catalog", str(catalog)]
                done = run_tap(TAP, kit.url, arguments, stream=STREAM, workdir=workdir)
                return done.records, done.wall_s, kit.data_calls(tenant)

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
    """No more calls than tap-xero and at least 5 x faster (issue 13)."""
    return peer_targets(metrics)


if __name__ == "__main__":
    print(run())
