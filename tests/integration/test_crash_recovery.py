"""Crash recovery of real worker processes: SIGKILL at each point of the executor, then restart.

Issue 6: "a worker process killed with SIGKILL at each point of the executor (before the provider
call, after it, before the commit, during SMTP) and restarted leaves exactly one note / fee invoice /
credit per planned action in the emulator and at most one email per planned reminder, with the
uncertain ones listed. Run on SQLite and PostgreSQL."

`nudge run` runs as a subprocess against the in-process QuickBooks emulator (its kit) and an aiosmtpd sink.
The kill lands deterministically, with no hook in production code:
- before the provider call: a "delay" fault holds the worker inside its just-in-time invoice read;
- after the provider call: a "delay_after" fault lets the write happen, then holds the answer;
  this is re-armed after every kill, so *every* ledger write (note, fee invoice, credit memo, the
  payment applying it) is killed once;
- before the commit: the answer arrives (after a short "delay_after", or the SMTP "250") while the
  test holds the database's write lock, so the worker is stuck committing its outcome;
- during SMTP: the sink blocks in DATA (every reminder is killed there once).
Each restart waits out the 1-second leases; recovery retries running actions with the same key and
turns `sending` ones into `uncertain` (never re-sent). The scene and checks: tests/support/crash.py.
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
