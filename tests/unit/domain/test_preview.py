"""Preview: the real planner run forward day by day; nobody pays; rows say when, what, to whom, how much, why."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from connector.domain.actions import ActionKind, History
from connector.domain.preview import PlanningState, plan_state, preview
from tests.support.domain import CONN, invoice, money, policies, utc


def test_preview_rows_describe_the_timeline() -> None:
    steps = [
        {"id": "due", "offset": 0, "remind": "due_today"},
        {"id": "fee", "offset": 14, "remind": "overdue", "late_fee": "flat", "note": "Late fee added"},
    ]
    pol = policies(steps, late_fees={"flat": {"kind": "flat", "amount": 25}}, approval="ledger")
    state = PlanningState(
        CONN, (invoice("1", due=date(2024, 3, 1)), invoice("2", due=date(2024, 3, 1))), pol.cadences["default"], pol
    )
    timeline = preview(state, utc(2024, 2, 25), 30)
    rows = timeline.rows()
    assert [(r.local_date, r.kind, r.invoices, r.amount) for r in rows] == [
        (date(2024, 3, 1), "remind", ("1", "2"), money(200)),
        (date(2024, 3, 15), "late_fee", ("1",), money(25)),
        (date(2024, 3, 15), "late_fee", ("2",), money(25)),
        (date(2024, 3, 15), "note", ("1",), None),
        (date(2024, 3, 15), "note", ("2",), None),
        (date(2024, 3, 15), "remind", ("1", "2"), money(200)),
    ]
    assert rows[0].recipients == ("cust-a@example.com",)
    assert rows[0].customer == "Cust-A"
    assert rows[0].template == "due_today"
    assert "step 'due'" in rows[0].rule
    assert [r.requires_approval for r in rows] == [False, True, True, True, True, False]
    assert len(timeline.days) == 30
    assert timeline.start == utc(2024, 2, 25)
    # the preview's history is what the executor would have recorded: nothing is left to do
    assert plan_state(replace(state, history=timeline.history), utc(2024, 3, 15, 12)) == []


def test_preview_does_not_change_the_state_and_is_repeatable() -> None:
    pol = policies()
    state = PlanningState(CONN, (invoice(due=date(2024, 3, 1)),), pol.cadences["default"], pol)
    first = preview(state, utc(2024, 2, 20), 40)
    second = preview(state, utc(2024, 2, 20), 40)
    assert first == second
    assert state.history == History()
    assert [a.kind for a in first.actions].count(ActionKind.REMIND) == 3  # the +30 step falls after the 40 days
    assert preview(state, utc(2024, 2, 20), 0).actions == ()
    with pytest.raises(ValueError, match="days must not be negative"):
        preview(state, utc(2024, 2, 20), -1)


def test_plan_rejects_naive_now_and_negative_horizon() -> None:
    pol = policies()
    state = PlanningState(CONN, (invoice(),), pol.cadences["default"], pol)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_state(state, utc(2024, 3, 1).replace(tzinfo=None))
    with pytest.raises(ValueError, match="horizon"):
        plan_state(state, utc(2024, 3, 1), horizon=-timedelta(days=1))
