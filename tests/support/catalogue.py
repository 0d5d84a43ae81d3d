"""The reliability catalogue's table: after a run that included tests/reliability, one row per RS id.

tests/conftest.py calls `write_table` from its terminal summary, so the table closes both `make test`
and `make reliability` (the xdist controller, which prints the summary, loads only that conftest).

Each test here lives in `test_rsNN_<slug>.py` and is named `test_rsNN_…`; the table gathers every
test of one id (parametrized families included) into one outcome: passed only when all passed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

CATALOGUE_IDS = tuple(f"RS-{number:02d}" for number in range(1, 40))
_ID = re.compile(r"test_rs(\d{2})")


@dataclass
class _Row:
    outcomes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        if "failed" in self.outcomes:
            return "failed"
        if "skipped" in self.outcomes:
            return "skipped"
        return "passed"


def catalogue_id(nodeid: str) -> str | None:
    """`RS-NN` for a test of tests/reliability named test_rsNN_…, else None."""
    if "tests/reliability/" not in nodeid.replace("\\", "/"):
        return None
    name = nodeid.rsplit("::", 1)[-1]
    found = _ID.match(name)
    return f"RS-{found.group(1)}" if found else None


def build_table(reports: list[pytest.TestReport]) -> dict[str, _Row]:
    """Rows by catalogue id from the test reports (setup, call and teardown phases all count)."""
    rows: dict[str, _Row] = defaultdict(_Row)
    for report in reports:
        ident = catalogue_id(report.nodeid)
        if ident is None:
            continue
        rows[ident].seconds += report.duration
        if report.when == "call" or report.outcome != "passed":
            rows[ident].outcomes.append(report.outcome)
    return rows


def write_table(terminalreporter: pytest.TerminalReporter) -> None:
    """Print id, outcome and seconds for every catalogue id, and name the ids with no test."""
    reports = [r for key in ("passed", "failed", "skipped", "error") for r in terminalreporter.stats.get(key, [])]
    rows = build_table([r for r in reports if isinstance(r, pytest.TestReport)])
    if not rows:
        return
    terminalreporter.write_sep("=", "reliability catalogue")
    terminalreporter.write_line(f"{'id':<6}  {'outcome':<8}  {'seconds':>8}")
    for ident in CATALOGUE_IDS:
        row = rows.get(ident)
        if row is None:
            terminalreporter.write_line(f"{ident:<6}  {'no test':<8}  {'':>8}")
        else:
            terminalreporter.write_line(f"{ident:<6}  {row.outcome:<8}  {row.seconds:>8.1f}")
