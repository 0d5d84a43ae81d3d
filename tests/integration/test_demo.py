"""`make demo` in a shortened form: `nudge demo --days 28 --start 2026-11-30` end to end, and what it leaves behind.

Four weeks is the shortest run in which a payment plan (weekly installments, five days' grace) can be
both kept and broken, so every acceptance number of the demo is checked here. From Monday 30 November the run
crosses Christmas Day (a public holiday of both demo companies' countries, the US and the UK), reaches the
cadence's call step (17 days late) and its final notice that hands a debt over to a person (24 days late), so
the issue-12 numbers mean something: no fee without a warning a week before, none on the first day, no first
message that is a final notice, no reminder on a public holiday, and open tasks for calls and hand-overs.

The demo ends by saying how to browse its world in the web app, whose inbox must hold something of every kind
(issue 15): actions waiting for approval (the first company switches approval mode on for the last two working
days),
calls to make, hand-overs (an older debt on the `long_overdue` cadence is handed over two weeks in, even in the
three weeks the browser tests run: tests/web/pages/test_demo_world.py) and an invoice the
sync quarantined (in a currency that no longer exists), each read here from the database the demo leaves.
"""

from __future__ import annotations

import csv
import email
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from providers._emulator.demo import default_start
from tests.support.demo_checks import check_browse_block, check_inbox_in_the_store
from tests.support.pdf import pdf_text, words

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
    parsed = [email.message_from_bytes(path.read_bytes()) for path in messages]
    answers = [m for m in parsed if str(m["Subject"]).startswith(PLAN_ANSWER)]
    assert len(messages) - len(answers) == reminders  # one email per reminder, none twice
    _check_customer_page(text, answers, parsed)
    first = email.message_from_bytes(messages[0].read_bytes())
    assert first["Message-ID"]
    assert first["To"]
    assert first["Subject"]
    assert f"NUDGE_CONFIG={out / 'nudge.yaml'} nudge serve" in text
    check_browse_block(text, out, json.loads((out / "summary.json").read_text()))
    # The handed-off customer's pack: where it was written, and it opens with the ledger's totals.
    assert f"Hand-off pack written: {out / 'handoff'}/" in text
    assert list((out / "handoff").glob("*-Old-Mill-Interiors/evidence.zip"))
    _check_handoff_packs(text, out)
    check_inbox_in_the_store(out / "nudge.sqlite3", approval_from=date(2026, 12, 23))  # New York: Wed and Thu
    check = subprocess.run(
        [NUDGE, "check-config", str(out / "nudge.yaml")], env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr  # what the demo leaves behind is a valid config


PLAN_ANSWER = "Your payment plan for invoice "


def _check_handoff_packs(text: str, out: Path) -> None:
    """Each pack the demo printed opens: the ZIP unzips, its summary (read back with pdftotext) states the ledger's
    outstanding balances of those invoices, the letter is a UK letter before claim (the company is in London) and
    the placement file's amounts add up to the same."""
    printed = [Path(m.group(1)) for m in re.finditer(r"Hand-off pack written: (\S+) ", text)]
    assert printed
    assert json.loads((out / "summary.json").read_text())["handoff_packs"] == len(printed)
    db = sqlite3.connect(out / "nudge.sqlite3")
    try:
        for folder in printed:
            pack_id = int(folder.name.split("-", 1)[0])
            connection_id, ids_json = db.execute(
                "SELECT connection_id, invoice_external_ids FROM handoff_packs WHERE id = ?", (pack_id,)
            ).fetchone()
            ids = re.findall(r'"([^"]+)"', ids_json)
            ledger: dict[str, Decimal] = defaultdict(Decimal)
            marks = ",".join("?" * len(ids))
            query = f"SELECT currency, balance FROM invoices WHERE connection_id = ? AND external_id IN ({marks})"
            for currency, balance in db.execute(query, (connection_id, *ids)):
                ledger[currency] += Decimal(str(balance))
            archive = zipfile.ZipFile(folder / "evidence.zip")
            assert archive.testzip() is None
            names = archive.namelist()
            assert {"summary.pdf", "letter.pdf", "placement.csv", "messages.csv"} <= set(names)
            assert any(name.startswith("invoices/") for name in names)  # the ledger's own PDFs
            assert any(name.startswith("messages/") and name.endswith(".eml") for name in names)
            summary = words(pdf_text(archive.read("summary.pdf")))
            for currency, amount in ledger.items():
                assert f"Ledger outstanding {currency}: {amount.quantize(Decimal('0.01'))}" in summary
            letter = words(pdf_text((folder / "letter.pdf").read_bytes()))
            assert "Letter before claim" in letter
            assert "Reply Form" in letter
            rows = list(csv.DictReader(io.StringIO((folder / "placement.csv").read_text())))
            assert len(rows) == len(ids)
            assert sum(Decimal(r["amount_outstanding"]) for r in rows) == sum(ledger.values())
    finally:
        db.close()


def _check_customer_page(text: str, answers: list[Any], messages: list[Any]) -> None:
    """Issue 17's scenes: every reminder links to its customer's page; a customer promises and pays (reminders wait,
    none says "you promised"), one disputes (nothing more on that invoice; the inbox has it), one asks for a plan
    that the owner approves (the plan recorded, the customer emailed)."""
    reminders = [m for m in messages if m not in answers]
    assert all(re.search(r"/c/[A-Za-z0-9_.-]{20,}", _plain(m)) for m in reminders)
    assert "Customer page (the link in every reminder):" in text
    assert re.search(
        r"promised to pay by \S+: promise kept; reminders while promised: 0; \"you promised\" reminders: 0", text
    )
    assert re.search(r"disputed \S+: reminders or fees on it since: 0; waiting in the inbox", text)
    plan = re.search(
        r"asked for a payment plan on (\S+): approved \(1 plan recorded; the customer was told by email\)", text
    )
    assert plan
    assert [str(m["Subject"]) for m in answers] == [f"{PLAN_ANSWER}{plan.group(1)} is agreed"]


def _plain(message: Any) -> str:
    """The text part of a message (the reminders are multipart: text, HTML, maybe a PDF)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode("utf-8", "replace"))
    return ""


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
    "actions_awaiting_approval",
    "invoices_quarantined",
    "handoff_packs",
    "companies",
    "customer_page",
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
    for key in SUMMARY_KEYS - {"companies", "open_tasks", "customer_page"}:
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
    assert summary["actions_awaiting_approval"] > 0  # approval mode, on for the last two working days
    assert summary["invoices_quarantined"] == 1  # the invoice in a retired currency
    assert summary["handoff_packs"] == 1  # the older debt, handed off with its pack (_check_handoff_packs)
    page = summary["customer_page"]  # issue 17's scenes, read back from the store
    assert page["promised"]["kept"] == "kept"  # the planner's own log once the promise stopped holding
    assert (page["promised"]["reminders_while_promised"], page["promised"]["you_promised_reminders"]) == (0, 0)
    assert (page["disputed"]["reminders_or_fees_after"], page["disputed"]["in_inbox"]) == (0, True)
    assert (page["plan"]["request"], page["plan"]["plans_recorded"]) == ("approved", 1)
    companies = {company["provider"]: company for company in summary["companies"]}
    assert set(companies) == {"quickbooks", "xero"}
    assert (companies["quickbooks"]["currency"], companies["xero"]["currency"]) == ("USD", "GBP")
    for company in companies.values():
        assert set(company) == COMPANY_KEYS
        for key in COMPANY_KEYS - {"name", "provider", "currency"}:
            assert isinstance(company[key], int | float), (company["name"], key)
        assert company["dso_with_nudge"] < company["dso_without_nudge"], company
        assert company["collected_with_nudge"] >= company["collected_without_nudge"], company


def test_without_a_start_the_demo_ends_yesterday() -> None:
    """The web app reads the real clock: by default the last simulated day is yesterday, never a day to come."""
    now = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    assert default_start(60, now) == datetime(2026, 10, 1, tzinfo=UTC)  # days 1 Oct ... 29 Nov
    assert default_start(1, now) == datetime(2026, 11, 29, tzinfo=UTC)
