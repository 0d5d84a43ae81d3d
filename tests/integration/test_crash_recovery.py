"""Crash recovery of real worker processes (issue 6): SIGKILL at each point of the executor, then restart, on
SQLite and PostgreSQL. The scene, the kill points (how each lands deterministically) and the outcome checks live
in tests/support/crash.py; this module runs the points before the provider call and during SMTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crash import POINTS, Scene, check_recovery, crash_scene

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """Two overdue invoices of two customers: a reminder, a note and a fee invoice each."""
    with crash_scene(request.param, tmp_path) as built:
        yield built


# after_provider_call and before_commit (RS-01) run in tests/reliability/test_rs01_kill_after_quickbooks_fee_post.py
@pytest.mark.parametrize("point", ["before_provider_call", "during_smtp"])
def test_sigkill_and_restart_leaves_exactly_one_ledger_write_and_at_most_one_email(scene: Scene, point: str) -> None:
    kills = POINTS[point](scene)
    check_recovery(scene, point, kills)
