"""Careful by default (issue 12) in the pure planner: a late invoice is first contacted in a tone that fits a
first contact and the cadence keeps its spacing from there; no fee without a warning the customer received
`warning_days` before; interest never accrues before the warning said it would; the ledger's own holiday
calendar applies when the cadence names none."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.domain.actions import ActionKind, History, HoldReason, InvoiceFacts
from connector.domain.cadence import plan
from connector.domain.calendar import HolidayCalendar, Schedule, SendWindow
from connector.domain.fees import ReferenceRates
from connector.domain.policy import PolicyError, Step, Tone, tone_of
from connector.domain.policy_parsing import policy_from_dict
from connector.domain.preview import PlanningState, preview
from tests.support.domain import CONN, invoice, kinds, money, only, policies, run, utc

FEE_STEPS = [
    {"id": "before", "offset": -3, "remind": "friendly"},
    {"id": "late7", "offset": 7, "remind": "overdue"},
    {"id": "late14", "offset": 14, "remind": "overdue", "late_fee": "flat"},
    {"id": "late30", "offset": 30, "remind": "final_notice", "escalate": True},
]
FLAT = {"flat": {"kind": "flat", "amount": 25, "description": "Late payment fee"}}


def timeline(pol: Any, invoices: list[Any], start: Any, days: int, **state: Any) -> list[Any]:
    connection = state.pop("connection", CONN)
    st = PlanningState(connection, tuple(invoices), pol.cadences["default"], pol, **state)
    return list(preview(st, start, days).actions)


def seen(on: date, invoice_id: str = "1") -> History:
    return History(invoices={invoice_id: InvoiceFacts(first_seen=on)})


# -- tone ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "tone"),
    [
        (Step("a", -3, remind="gentle_nudge"), Tone.FRIENDLY),
        (Step("b", 0, remind="due_today"), Tone.FRIENDLY),
        (Step("c", 3, remind="firm"), Tone.FIRM),
        (Step("d", 45, remind="final_notice"), Tone.FINAL),
        (Step("e", 45, remind="firm", escalate=True), Tone.FINAL),
        (Step("f", 60, remind="final_notice", tone=Tone.FIRM), Tone.FIRM),
    ],
)
def test_a_steps_tone_is_explicit_or_derived(step: Step, tone: Tone) -> None:
    assert tone_of(step) is tone


def test_tone_and_outcome_recording_parse_with_clear_errors() -> None:
    steps = [
        {"id": "call", "offset": 20, "call_task": "Phone them", "record_outcome_in_ledger": True},
        {"id": "final", "offset": 40, "remind": "last_words", "tone": "final"},
    ]
    pol = policies(steps)
    assert pol.cadences["default"].step("call").record_outcome_in_ledger is True
    assert tone_of(pol.cadences["default"].step("final")) is Tone.FINAL
    with pytest.raises(PolicyError, match=r"tone.*friendly, firm or final"):
        policies([{"id": "x", "offset": 3, "remind": "firm", "tone": "shouty"}])
    with pytest.raises(PolicyError, match=r"record_outcome_in_ledger.*call_task or escalate"):
        policies([{"id": "x", "offset": 3, "remind": "firm", "record_outcome_in_ledger": True}])
    with pytest.raises(PolicyError, match=r"warning_days.*between 0 and 366"):
        policies(FEE_STEPS, late_fees={"flat": {"kind": "flat", "amount": 5, "warning_days": -1}})


# -- catch-up that starts friendly ----------------------------------------------------------------------------


def test_the_day_chasing_started_anchors_a_late_invoices_first_contact() -> None:
    pol = policies()
    inv = invoice(due=date(2024, 2, 1))
    # synced 12 March, but the review was approved only on Monday 18 March
    started = replace(CONN, started_on=date(2024, 3, 18))
    actions = timeline(pol, [inv], utc(2024, 3, 18, 10), 40, history=seen(date(2024, 3, 12)), connection=started)
    remind = [(a.step_id, a.local_date) for a in actions if a.kind is ActionKind.REMIND]
    assert remind[0] == ("late7", date(2024, 3, 18))
    # 23 days later, as written (+7 -> +30): Wednesday 10 April
    assert remind[1] == ("late30", date(2024, 4, 10))
    assert [a.local_date for a in only(actions, ActionKind.ESCALATE)] == [date(2024, 4, 10)]


def test_an_invoice_seen_just_after_its_due_date_waits_for_the_first_step_after_it() -> None:
    pol = policies()
    inv = invoice(due=date(2024, 3, 1))
    # seen Saturday 2 March: 'due' ("due today") does not fit; 'late7' fires on its own day, Friday 8 March
    actions = timeline(pol, [inv], utc(2024, 3, 2, 10), 10, history=seen(date(2024, 3, 2)))
    assert [(a.step_id, a.local_date) for a in actions if a.kind is ActionKind.REMIND] == [("late7", date(2024, 3, 8))]


def test_an_invoice_seen_in_time_runs_the_cadence_as_written() -> None:
    pol = policies()
    inv = invoice(due=date(2024, 3, 1))
    actions = timeline(pol, [inv], utc(2024, 2, 20, 10), 18, history=seen(date(2024, 2, 20)))
    assert [a.step_id for a in actions if a.kind is ActionKind.REMIND] == ["before", "due", "late7"]


def test_a_cadence_without_a_step_fit_for_a_first_contact_holds_the_late_invoice() -> None:
    steps = [
        {"id": "before", "offset": -3, "remind": "friendly"},
        {"id": "final", "offset": 30, "remind": "final_notice", "escalate": True},
    ]
    actions = run(
        [invoice(due=date(2024, 2, 1))], policies(steps), utc(2024, 3, 12, 10), history=seen(date(2024, 3, 12))
    )
    assert kinds(actions) == ["hold"]
    assert actions[0].hold_reason is HoldReason.CONFIGURATION
    assert "first contact" in (actions[0].text or "")


def test_a_late_invoice_first_contacted_never_gets_a_final_notice_or_escalation_first() -> None:
    pol = policies(FEE_STEPS, late_fees=FLAT)
    inv = invoice(due=date(2024, 1, 2), total="500.00")  # 75 days late on 17 March
    actions = timeline(pol, [inv], utc(2024, 3, 18, 10), 60, history=seen(date(2024, 3, 18)))
    first = min((a for a in actions if a.kind is ActionKind.REMIND), key=lambda a: a.scheduled_at)
    assert first.step_id == "late7"
    assert first.local_date == date(2024, 3, 18)
    escalations = only(actions, ActionKind.ESCALATE)
    assert escalations
    assert escalations[0].local_date > first.local_date + timedelta(days=20)


# -- no fee without warning ---------------------------------------------------------------------------------


def test_reminders_announce_the_next_fee_and_the_fee_waits_for_the_warning() -> None:
    pol = policies(FEE_STEPS, late_fees=FLAT)
    inv = invoice(due=date(2024, 3, 1), total="500.00")
    actions = timeline(pol, [inv], utc(2024, 2, 26, 10), 20, history=seen(date(2024, 2, 20)))
    before = next(a for a in actions if a.step_id == "before" and a.kind is ActionKind.REMIND)
    warning = before.items[0].fee_warning
    assert warning is not None
    assert (warning.policy, warning.kind, warning.amount, warning.description) == (
        "flat",
        "flat",
        money(25),
        "Late payment fee",
    )
    assert warning.applies_from == date(2024, 3, 15)  # the fee's own day (+14), more than 7 days after
    [fee] = only(actions, ActionKind.LATE_FEE)
    assert fee.local_date == date(2024, 3, 15)
    # the reminder that goes with the fee does not announce the fee it comes with
    with_fee = next(a for a in actions if a.step_id == "late14" and a.kind is ActionKind.REMIND)
    assert with_fee.items[0].fee_warning is None


def test_a_late_invoice_is_not_charged_on_day_one_and_only_after_warning_days() -> None:
    pol = policies(FEE_STEPS, late_fees=FLAT)
    inv = invoice(due=date(2024, 1, 2), total="500.00")
    day_one = run([inv], pol, utc(2024, 3, 18, 10), history=seen(date(2024, 3, 18)))
    assert ActionKind.LATE_FEE not in {a.kind for a in day_one}
    [reminder] = only(day_one, ActionKind.REMIND)
    warning = reminder.items[0].fee_warning
    assert warning is not None
    assert warning.applies_from == date(2024, 3, 25)
    actions = timeline(pol, [inv], utc(2024, 3, 18, 10), 40, history=seen(date(2024, 3, 18)))
    [fee] = only(actions, ActionKind.LATE_FEE)
    assert fee.local_date >= date(2024, 3, 25)


def test_a_warning_planned_but_never_sent_does_not_allow_a_fee() -> None:
    pol = policies(FEE_STEPS, late_fees=FLAT)
    inv = invoice(due=date(2024, 3, 1), total="500.00")
    planned = run([inv], pol, utc(2024, 2, 27, 10), history=seen(date(2024, 2, 20)))
    assert only(planned, ActionKind.REMIND)[0].items[0].fee_warning is not None
    unsent = seen(date(2024, 2, 20)).record(planned, delivered=False)
    assert unsent.facts("1").fee_warned_on is None
    later = run([inv], pol, utc(2024, 3, 15, 10), history=unsent)
    assert ActionKind.LATE_FEE not in {a.kind for a in later}
    sent = seen(date(2024, 2, 20)).record(planned)
    assert sent.facts("1").fee_warned_on == date(2024, 2, 27)
    assert ActionKind.LATE_FEE in {a.kind for a in run([inv], pol, utc(2024, 3, 15, 10), history=sent)}


def test_interest_accrues_only_from_the_day_the_warning_named() -> None:
    steps = [
        {"id": "late7", "offset": 7, "remind": "overdue"},
        {"id": "interest", "offset": 20, "late_fee": "interest"},
    ]
    pol = policies(steps, late_fees={"interest": {"kind": "interest", "annual_rate": 10}})
    inv = invoice(due=date(2024, 1, 2), total="3650.00")
    actions = timeline(pol, [inv], utc(2024, 3, 18, 10), 30, history=seen(date(2024, 3, 18)))
    warning = only(actions, ActionKind.REMIND)[0].items[0].fee_warning
    assert warning is not None
    # interest runs from the day the customer is told, and is charged no earlier than warning_days later
    assert (warning.kind, warning.annual_rate, warning.applies_from) == ("interest", Decimal(10), date(2024, 3, 18))
    [fee] = only(actions, ActionKind.LATE_FEE)
    assert fee.fee is not None
    assert fee.fee.period_start == date(2024, 3, 18)
    assert fee.fee.assessed_on >= date(2024, 3, 25)
    days = (fee.fee.assessed_on - date(2024, 3, 18)).days
    assert fee.amount == money(days)  # 3650 x 10 % / 365 = 1.00 a day, only since the warning


def test_a_policy_may_accrue_from_the_due_date_when_it_says_so() -> None:
    steps = [
        {"id": "late7", "offset": 7, "remind": "overdue"},
        {"id": "interest", "offset": 20, "late_fee": "interest"},
    ]
    fee = {"interest": {"kind": "interest", "annual_rate": 10, "accrue_before_connected": True}}
    inv = invoice(due=date(2024, 1, 2), total="3650.00")
    actions = timeline(policies(steps, late_fees=fee), [inv], utc(2024, 3, 18, 10), 30, history=seen(date(2024, 3, 18)))
    [charged] = only(actions, ActionKind.LATE_FEE)
    assert charged.fee is not None
    assert charged.fee.period_start == date(2024, 1, 2)  # the due date, as without a floor


# -- holidays of the ledger's country ----------------------------------------------------------------------


def test_the_ledgers_country_supplies_the_holidays_when_the_cadence_names_none() -> None:
    body = {"time_zone": "Europe/London", "steps": [{"id": "due", "offset": 0, "remind": "due_today"}]}
    pol = policy_from_dict({"cadences": {"default": body}})
    christmas = invoice(due=date(2026, 12, 25))
    plain = timeline(pol, [christmas], utc(2026, 12, 20), 10)
    assert [a.local_date for a in plain] == [date(2026, 12, 25)]
    english = replace(CONN, holiday_country="GB", holiday_subdiv="ENG")
    careful = timeline(pol, [christmas], utc(2026, 12, 20), 10, connection=english)
    assert [a.local_date for a in careful] == [date(2026, 12, 29)]  # not Christmas, Boxing Day or the weekend


def test_call_tasks_carry_whether_their_outcome_goes_to_the_ledger() -> None:
    steps = [{"id": "call", "offset": 3, "call_task": "Phone accounts payable", "record_outcome_in_ledger": True}]
    [task] = run([invoice(due=date(2024, 3, 1))], policies(steps), utc(2024, 3, 4, 10))
    assert task.kind is ActionKind.CALL_TASK
    assert task.record_outcome_in_ledger is True


def test_a_uk_statutory_warning_states_the_rate_and_the_fixed_compensation() -> None:
    steps = [
        {"id": "late7", "offset": 7, "remind": "overdue"},
        {"id": "statutory", "offset": 30, "late_fee": "uk"},
    ]
    pol = policies(steps, late_fees={"uk": {"kind": "uk_statutory"}})
    conn = replace(CONN, rates=ReferenceRates(uk_base_rate=Decimal(5)))
    [reminder] = run([invoice(due=date(2024, 3, 1), total="2500.00")], pol, utc(2024, 3, 8, 10), connection=conn)
    warning = reminder.items[0].fee_warning
    assert warning is not None
    assert (warning.annual_rate, warning.amount) == (Decimal(13), money(70))


def test_a_fee_agreed_in_the_contract_needs_no_warning_and_accrues_from_when_nudge_took_over() -> None:
    steps = [{"id": "interest", "offset": 20, "late_fee": "interest"}]
    fee = {"interest": {"kind": "interest", "annual_rate": 10, "warning_required": False}}
    inv = invoice(due=date(2024, 1, 2), total="3650.00")
    [charged] = run([inv], policies(steps, late_fees=fee), utc(2024, 3, 18, 10), history=seen(date(2024, 3, 4)))
    assert charged.kind is ActionKind.LATE_FEE
    assert charged.fee is not None
    assert charged.fee.period_start == date(2024, 3, 4)
    assert charged.amount == money(14)


def test_a_review_planned_at_any_hour_shows_what_the_next_send_day_brings() -> None:
    body = {"time_zone": "America/New_York", "steps": [{"id": "late7", "offset": 7, "remind": "overdue"}]}
    pol = policy_from_dict({"cadences": {"default": body}})
    inv = invoice(due=date(2026, 11, 20), currency="USD")
    # 00:00 UTC on Friday 4 December is 19:00 on Thursday in New York: the window has closed for the day
    late_evening = utc(2026, 12, 4, 0)
    assert run([inv], pol, late_evening, history=seen(date(2026, 12, 3))) == []
    [reminder] = plan(
        [inv],
        {},
        pol.cadences["default"],
        pol,
        seen(date(2026, 12, 3)),
        late_evening,
        connection=CONN,
        through_next_send_day=True,
    )
    assert reminder.local_date == date(2026, 12, 4)
    assert reminder.scheduled_at == utc(2026, 12, 4, 13)  # the window opens at 08:00 in New York


def test_the_next_window_close_skips_the_weekend_and_holidays() -> None:
    schedule = Schedule(
        tz=ZoneInfo("Europe/London"),
        window=SendWindow(),
        send_time=time(9, 0),
        holidays=HolidayCalendar("GB", "ENG"),
    )
    assert schedule.next_window_close(utc(2026, 12, 24, 10)) == utc(2026, 12, 24, 18)
    # Thursday 24 December after hours: Christmas, Boxing Day (Saturday) and the weekend, then the 28th is
    # the Boxing Day substitute holiday: Tuesday 29 December
    assert schedule.next_window_close(utc(2026, 12, 24, 19)) == utc(2026, 12, 29, 18)


def test_later_reminders_repeat_the_date_the_first_warning_named() -> None:
    steps = [
        {"id": "late7", "offset": 7, "remind": "overdue"},
        {"id": "late14", "offset": 14, "remind": "overdue"},
        {"id": "interest", "offset": 30, "late_fee": "interest"},
    ]
    pol = policies(steps, late_fees={"interest": {"kind": "interest", "annual_rate": 10}})
    inv = invoice(due=date(2024, 3, 1), total="3650.00")
    actions = timeline(pol, [inv], utc(2024, 3, 7, 10), 20, history=seen(date(2024, 2, 20)))
    warnings = [a.items[0].fee_warning for a in only(actions, ActionKind.REMIND)]
    assert [w.applies_from for w in warnings if w is not None] == [date(2024, 3, 8), date(2024, 3, 8)]
