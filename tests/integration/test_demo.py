"""`make demo` in a shortened form: `nudge demo --days 28 --start 2026-11-30` end to end, and what it leaves behind.

Four weeks is the shortest run in which a payment plan (weekly installments, five days' grace) can be
both kept and broken, so every acceptance number of the demo is checked here. From Monday 30 November the run
crosses Christmas Day (a public holiday of both demo companies' countries, the US and the UK), reaches the
cadence's call step (17 days late) and its final notice that hands a debt over to a person (24 days late), so
the issue-12 numbers mean something: no fee without a warning a week before, none on the first day, no first
message that is a final notice, no reminder on a public holiday, and open tasks for calls and hand-overs.
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
START = "2026-11-30"
CHRISTMAS = "Fri 25 Dec"


def test_nudge_demo_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    result = subprocess.run(
        [NUDGE, "demo", "--days", str(DAYS), "--start", START, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    assert "connected quickbooks: Hudson Valley Design Co." in text
    assert "connected xero: Thames Joinery Ltd" in text
    day_lines = [line for line in text.splitlines() if re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d ", line)]
    assert len(day_lines) == DAYS
    # The onboarding review is read and approved before anything goes out (nothing on the first day before it).
    for company in ("Hudson Valley Design Co.", "Thames Joinery Ltd"):
        assert re.search(rf"review of {re.escape(company)} \(nothing sent or written yet\):\n +would send [1-9]", text)
    assert text.count("approved by demo@example.com") == 2
    assert "US-NY public holidays" in text  # the zone and holidays came from the ledgers themselves
    assert "Europe/London, GB public holidays" in text
    [christmas] = [line for line in day_lines if line.startswith(CHRISTMAS)]
    assert christmas.startswith(f"{CHRISTMAS}: 0 reminders")

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
    "reminders_on_public_holidays",
    "late_fees_on_day_one",
    "first_contacts_final",
    "open_tasks",
    "tasks_completed",
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
    for key in SUMMARY_KEYS - {"companies", "open_tasks"}:
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
    # Careful by default (issue 12), each computed from what was sent and charged (providers/_emulator/demo_truth).
    assert summary["fees_without_prior_warning"] == 0
    assert summary["late_fees_on_day_one"] == 0
    assert summary["first_contacts_final"] == 0
    assert summary["reminders_on_public_holidays"] == 0
    assert summary["late_fees_charged"] > 0  # fees were charged: a week after the warning
    assert set(summary["open_tasks"]) == {"call", "handoff"}
    assert summary["open_tasks"]["call"] > 0  # calls for a person to make
    assert summary["open_tasks"]["handoff"] > 0  # escalated debts handed over, never "done" by themselves
    assert summary["tasks_completed"] > 0  # the accountant's calls, recorded with what was said
    companies = {company["provider"]: company for company in summary["companies"]}
    assert set(companies) == {"quickbooks", "xero"}
    assert (companies["quickbooks"]["currency"], companies["xero"]["currency"]) == ("USD", "GBP")
    for company in companies.values():
        assert set(company) == COMPANY_KEYS
        for key in COMPANY_KEYS - {"name", "provider", "currency"}:
            assert isinstance(company[key], int | float), (company["name"], key)
        assert company["dso_with_nudge"] < company["dso_without_nudge"], company
        assert company["collected_with_nudge"] >= company["collected_without_nudge"], company
