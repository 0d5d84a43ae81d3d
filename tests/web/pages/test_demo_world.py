"""The world the page tests browse (`nudge demo --days 21 --start 2026-11-09`, tests/support/pages_demo.py): its three
weeks end with something of every kind in the inbox, and the demo says so: an approval waiting, a call to make, a
hand-over and a quarantined invoice. Checked on the session's own world rather than a second run of the demo."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from tests.support.demo_checks import check_browse_block, check_inbox_in_the_store
from tests.support.pages_demo import printed_lines


def test_the_browser_tests_world_has_every_kind_of_inbox_item(demo_world: Path) -> None:
    report = json.loads((demo_world / "summary.json").read_text())
    assert report["actions_awaiting_approval"] > 0
    assert report["open_tasks"]["call"] > 0
    assert report["open_tasks"]["handoff"] > 0
    assert report["invoices_quarantined"] == 1
    assert report["reminders_about_paid_invoices"] == report["duplicate_effects"] == 0
    text = printed_lines(demo_world).read_text(encoding="utf-8")
    assert re.search(r"^Fri 27 Nov: .*\b\d+ waiting for approval", text, re.MULTILINE)
    check_browse_block(text, demo_world, report)
    # New York's last two working days: Wednesday 25 November and, after Thanksgiving, Friday 27 November.
    check_inbox_in_the_store(demo_world / "nudge.sqlite3", approval_from=date(2026, 11, 25))
