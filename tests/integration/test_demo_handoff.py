"""The demo's handed-off customer (issue 17): the older debt on the `long_overdue` cadence is handed over with
`escalate: handoff` on the fifteenth day; the demo prints where its pack was written, and the pack opens: the ZIP
unzips, its summary (read back with pdftotext) states the ledger's outstanding balances of those invoices, and
the letter is a UK letter before claim (the company is in London)."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import zipfile
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from providers._emulator.demo import run_demo
from tests.support.pdf import pdf_text, words


def test_the_demo_writes_a_hand_off_pack_whose_summary_matches_the_ledger(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "demo"
    summary = run_demo(days=17, start=datetime(2026, 11, 9, tzinfo=UTC), out=out, echo=lines.append)
    printed = [m.group(1) for line in lines if (m := re.match(r"Hand-off pack written: (\S+) ", line))]
    assert printed, "\n".join(lines[-20:])
    assert [Path(p) for p in printed] == list(summary.handoff)
    assert summary.report["handoff_packs"] == len(printed)
    db = sqlite3.connect(out / "nudge.sqlite3")
    try:
        for folder in map(Path, printed):
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
            text = words(pdf_text(archive.read("summary.pdf")))
            for currency, amount in ledger.items():
                assert f"Ledger outstanding {currency}: {amount.quantize(Decimal('0.01'))}" in text
            letter = words(pdf_text((folder / "letter.pdf").read_bytes()))
            assert "Letter before claim" in letter
            assert "Reply Form" in letter
            rows = list(csv.DictReader(io.StringIO((folder / "placement.csv").read_text())))
            assert len(rows) == len(ids)
            assert sum(Decimal(r["amount_outstanding"]) for r in rows) == sum(ledger.values())
    finally:
        db.close()
