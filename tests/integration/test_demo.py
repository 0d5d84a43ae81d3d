"""`make demo` in a shortened form: `nudge demo --days 28` end to end, and what it leaves behind.

Four weeks is the shortest run in which a payment plan (weekly installments, five days' grace) can be
both kept and broken, so every acceptance number of the demo is checked here.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from pathlib import Path

NUDGE = str(Path(sys.executable).parent / "nudge")
DAYS = 28


def test_nudge_demo_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    result = subprocess.run(
        [NUDGE, "demo", "--days", str(DAYS), "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    assert "connected quickbooks: Hudson Valley Design Co." in text
    assert "connected xero: Thames Joinery Ltd" in text
    day_lines = [line for line in text.splitlines() if re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d ", line)]
    assert len(day_lines) == DAYS

    def number(label: str) -> int:
        match = re.search(rf"{label}:\s+(\d+)", text)
        assert match, label
        return int(match.group(1))

    reminders, notes = number("reminders sent"), number("notes written")
    assert reminders > 20
    assert notes > 5
    assert re.search(r"collected:\s+.+ from [1-9]\d* payments", text)
    fees = int(re.search(r"late fees charged:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    writes = [json.loads(m) for m in re.findall(r"written back to [^:]+: (\{.*\})", text)]
    assert len(writes) == 2  # every note and fee is in the ledgers, exactly once
    assert sum(w["notes"] for w in writes) == notes
    assert sum(w["fee_invoices"] for w in writes) == fees
    assert "reminders about already-paid invoices: 0; duplicate effects: 0" in text
    assert re.search(r"DSO Hudson Valley Design Co\.: [\d.]+ days with Nudge, [\d.]+ without", text)
    _check_summary_json(out / "summary.json", reminders=reminders, notes=notes, fees=fees)

    messages = sorted((out / "outbox").rglob("*.eml"))
    assert len(messages) == reminders  # one email per reminder, none twice
    first = email.message_from_bytes(messages[0].read_bytes())
    assert first["Message-ID"]
    assert first["To"]
    assert first["Subject"]
    assert f"NUDGE_CONFIG={out / 'nudge.yaml'} nudge serve" in text
    check = subprocess.run(
        [NUDGE, "check-config", str(out / "nudge.yaml")], env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr  # what the demo leaves behind is a valid config


SUMMARY_KEYS = {
    "reminders_sent",
    "notes_written",
    "late_fees_charged",
    "fees_reversed",
    "discount_credits",
    "payments_synced",
    "plans_kept",
    "plans_broken",
    "reminders_about_paid_invoices",
    "duplicate_effects",
    "fees_without_prior_warning",
    "companies",
}
COMPANY_KEYS = {
    "name",
    "provider",
    "currency",
    "dso_with_nudge",
    "dso_without_nudge",
    "collected_with_nudge",
    "collected_without_nudge",
}


def _check_summary_json(path: Path, *, reminders: int, notes: int, fees: int) -> None:
    """summary.json has every key as a number, agrees with the printed totals, and passes the acceptance checks."""
    summary = json.loads(path.read_text())
    assert set(summary) == SUMMARY_KEYS
    for key in SUMMARY_KEYS - {"companies"}:
        assert isinstance(summary[key], int), key
    assert (summary["reminders_sent"], summary["notes_written"], summary["late_fees_charged"]) == (
        reminders,
        notes,
        fees,
    )
    assert summary["reminders_about_paid_invoices"] == 0
    assert summary["duplicate_effects"] == 0
    assert summary["payments_synced"] > 0
    assert summary["discount_credits"] > 0  # customers paid total less the offered discount in time
    assert summary["fees_reversed"] > 0  # bank-lag payments dated before a fee's assessment
    assert summary["plans_kept"] > 0  # installments paid on time
    assert summary["plans_broken"] > 0  # one payer per company misses an installment past its grace
    companies = {company["provider"]: company for company in summary["companies"]}
    assert set(companies) == {"quickbooks", "xero"}
    assert (companies["quickbooks"]["currency"], companies["xero"]["currency"]) == ("USD", "GBP")
    for company in companies.values():
        assert set(company) == COMPANY_KEYS
        for key in COMPANY_KEYS - {"name", "provider", "currency"}:
            assert isinstance(company[key], int | float), (company["name"], key)
        assert company["dso_with_nudge"] < company["dso_without_nudge"], company
        assert company["collected_with_nudge"] >= company["collected_without_nudge"], company
