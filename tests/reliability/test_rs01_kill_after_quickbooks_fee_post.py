"""RS-01: SIGKILL between the QuickBooks late-fee POST (committed at the emulator) and the local commit.

Moved from tests/integration/test_crash_recovery.py (its `after_provider_call` and `before_commit`
points, every assertion kept in tests.support.crash.check_recovery): real `nudge run` processes on
SQLite and PostgreSQL, the QuickBooks emulator over HTTP, an aiosmtpd sink.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.quickbooks.client import request_id
from tests.support.crash import POINTS, Scene, check_recovery, crash_scene
from tests.support.workers import actions

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """Two overdue invoices of two customers: a reminder, a note and a fee invoice each."""
    with crash_scene(request.param, tmp_path) as built:
        yield built


@pytest.mark.parametrize("point", ["after_provider_call", "before_commit"])
def test_rs01_sigkill_after_fee_post_leaves_one_fee_invoice_holding_its_id(scene: Scene, point: str) -> None:
    """Expected: a restart re-sends with the same requestid; exactly one fee invoice; the local row holds its Id.

    Design note: the QuickBooks adapter reconciles first (a query for the fee's deterministic DocNumber)
    and re-POSTs with the same `requestid` only when nothing is found, so after a kill the restart may
    find the fee without a second POST; either way every fee POST of one action carries that action's
    requestid and no second invoice exists.
    """
    kills = POINTS[point](scene)
    check_recovery(scene, point, kills)

    fees = [row for row in actions(scene.services) if row.kind == "late_fee"]
    invoices = scene.emulator.emulator.store.company(scene.realm).entities["Invoice"]
    fee_ids = sorted(ident for ident, raw in invoices.items() if str(raw.get("DocNumber", "")).startswith("LF-"))
    assert len(fee_ids) == len(fees) == 2
    assert sorted(str(row.external_ref) for row in fees) == fee_ids  # the local rows hold the emulator's Ids
    posted = {call.request_id for call in scene.emulator.core.calls("data") if call.method == "POST"}
    assert {request_id(row.key) for row in fees} <= posted  # each fee was POSTed with its action's requestid
