"""The pure diff behind the impact preview (connector.domain.impact): two plans' actions compared."""

from __future__ import annotations

from datetime import UTC, date, datetime

from connector.domain.actions import Action, ActionKind
from connector.domain.impact import ActionsDiff, combine, diff_actions
from connector.domain.money import Money

DAY = date(2026, 11, 9)


def action(
    kind: ActionKind,
    step: str,
    *,
    customer: str = "c1",
    invoices: tuple[str, ...] = ("1",),
    day: date = DAY,
    amount: Money | None = None,
    occurrence: int = 0,
) -> Action:
    return Action(
        key=f"{kind}-{step}-{customer}-{invoices}-{day}-{occurrence}",
        kind=kind,
        connection_id="7",
        customer_external_id=customer,
        invoice_external_ids=invoices,
        scheduled_at=datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC),
        local_date=day,
        step_id=step,
        rule=f"step {step}",
        amount=amount,
        customer_name=customer.upper(),
        occurrence=occurrence,
    )


def fee(amount: str, currency: str = "GBP", *, invoice: str = "1", step: str = "fee") -> Action:
    return action(ActionKind.LATE_FEE, step, invoices=(invoice,), amount=Money.of(amount, currency))


def test_the_same_plan_is_no_change() -> None:
    plan = [action(ActionKind.REMIND, "due"), fee("25.00"), action(ActionKind.NOTE, "late")]
    diff = diff_actions(plan, list(reversed(plan)))
    assert diff.unchanged
    assert diff.fee_change == {}
    assert diff.fees_before == diff.fees_after == {"GBP": Money.of("25.00", "GBP")}


def test_reminders_are_compared_by_day_customer_and_step() -> None:
    before = [action(ActionKind.REMIND, "due"), action(ActionKind.REMIND, "late", day=date(2026, 11, 14))]
    after = [
        action(ActionKind.REMIND, "due"),
        action(ActionKind.REMIND, "late", day=date(2026, 11, 16)),  # moved two days: one removed, one added
        action(ActionKind.REMIND, "nudge", customer="c2", invoices=("3", "2")),
    ]
    diff = diff_actions(before, after)
    assert (diff.reminders_added, diff.reminders_removed) == (2, 1)
    assert [(r.change, r.day, r.customer, r.customer_name, r.step, r.invoices) for r in diff.reminders] == [
        ("added", DAY, "c2", "C2", "nudge", ("2", "3")),
        ("removed", date(2026, 11, 14), "c1", "C1", "late", ("1",)),
        ("added", date(2026, 11, 16), "c1", "C1", "late", ("1",)),
    ]
    assert diff.counts == {}


def test_fees_added_removed_and_changed_are_totalled_per_currency_never_mixed() -> None:
    before = [fee("25.00", invoice="1"), fee("25.00", "EUR", invoice="2"), fee("10.00", invoice="3")]
    after = [fee("40.00", invoice="1"), fee("25.00", "EUR", invoice="2"), fee("5.00", "EUR", invoice="4")]
    diff = diff_actions(before, after)
    assert [(f.change, f.invoice, f.before, f.after) for f in diff.fees] == [
        ("changed", "1", Money.of("25.00", "GBP"), Money.of("40.00", "GBP")),
        ("removed", "3", Money.of("10.00", "GBP"), None),
        ("added", "4", None, Money.of("5.00", "EUR")),
    ]
    assert diff.fees_before == {"EUR": Money.of("25.00", "EUR"), "GBP": Money.of("35.00", "GBP")}
    assert diff.fees_after == {"EUR": Money.of("30.00", "EUR"), "GBP": Money.of("40.00", "GBP")}
    assert diff.fee_change == {"EUR": Money.of("5.00", "EUR"), "GBP": Money.of("5.00", "GBP")}
    assert diff.reminders == ()


def test_other_kinds_are_counted_and_clients_combine() -> None:
    first = diff_actions([action(ActionKind.CALL_TASK, "call")], [action(ActionKind.NOTE, "late")])
    assert first.counts == {"note": (0, 1), "call_task": (1, 0)}
    proposed = [fee("30.00"), action(ActionKind.REMIND, "due"), action(ActionKind.NOTE, "x")]
    second = diff_actions([fee("25.00")], proposed)
    total = combine([first, second, ActionsDiff()])
    assert total.counts == {"call_task": (1, 0), "note": (0, 2)}
    assert total.reminders_added == 1
    assert total.fee_change == {"GBP": Money.of("5.00", "GBP")}
    assert len(total.fees) == 1
    assert combine([]).unchanged
