"""`make demo` in a shortened form: `nudge demo --days 6` end to end, and what it leaves behind."""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from pathlib import Path

NUDGE = str(Path(sys.executable).parent / "nudge")


def test_nudge_demo_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    result = subprocess.run(
        [NUDGE, "demo", "--days", "6", "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    assert "connected quickbooks: Hudson Valley Design Co." in text
    assert "connected xero: Thames Joinery Ltd" in text
    day_lines = [line for line in text.splitlines() if re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d ", line)]
    assert len(day_lines) == 6

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
    assert re.search(r"DSO Hudson Valley Design Co\.: [\d.]+ days before, [\d.]+ after", text)

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
