"""The library screens' words: who uses an item, a planned action, a day, and an impact, as a bookkeeper reads them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from connector.domain.impact import ActionsDiff, FeeChange, ReminderChange
from connector.domain.money import Money
from connector.library.items import Usage
from connector.outbox.cadence_preview import PreviewLine
from web.pages.library_words import day_summary, describe_line, describe_usage, impact_sentence

DAY = date(2026, 12, 1)


def test_usage_names_clients_and_counts_plans_per_client_never_invoice_ids() -> None:
    usage = Usage(
        clients=((1, "Hudson Valley Design Co."), (2, "Thames Joinery Ltd")),
        default=True,
        plans=(("Thames Joinery Ltd", "b6a0014c-c97a"), ("Thames Joinery Ltd", "90a93e25"), ("Hudson", "148")),
    )
    assert describe_usage(usage) == (
        "clients Hudson Valley Design Co., Thames Joinery Ltd; the organization's default cadence; "
        "3 active payment plans (Hudson 1, Thames Joinery Ltd 2)"
    )
    many = Usage(customers=tuple((n, f"C{n}") for n in range(9)), items=(("cadence", "standard"),))
    assert describe_usage(many) == "9 customers (C0, C1, C2, C3, C4, C5 and 3 more); cadence “standard”"


def test_a_planned_action_in_words() -> None:
    fee = PreviewLine("late_fee", "Cedar", ("HV-1", "HV-2"), "late-10", Money(Decimal("9.23"), "USD"), text="Interest")
    assert describe_line(fee) == "Late fee of $9.23 on invoices HV-1 and HV-2: Interest · step “late-10”"
    held = PreviewLine("hold", "Cedar", ("HV-3",), "courtesy", hold_reason="dispute")
    assert describe_line(held) == "Held: invoice HV-3, under dispute · step “courtesy”"
    plan = PreviewLine(
        "remind", "Cedar", ("HV-4",), "plan:3:installment-3:+0", template="installment", requires_approval=True
    )
    assert describe_line(plan) == (
        "Reminder email about invoice HV-4, template “installment” · payment plan installment · waits for approval"
    )
    assert day_summary([fee, held, plan, plan]) == "2 reminders, 1 late fee, 1 hold"


def test_an_impact_in_words_with_money_per_currency() -> None:
    diff = ActionsDiff(
        reminders=(
            ReminderChange("added", DAY, "c1", "C1", "late-3", ("1",)),
            ReminderChange("added", DAY, "c2", "C2", "late-3", ("2",)),
            ReminderChange("removed", DAY, "c1", "C1", "due", ("1",)),
        ),
        fees=(FeeChange("removed", DAY, "1", "c1", "C1", "fee", Money(Decimal("25"), "GBP"), None),),
        counts={"note": (2, 3)},
        fees_before={"GBP": Money(Decimal("25"), "GBP")},
        fees_after={},
    )
    assert impact_sentence(diff).replace("\u2212", "-") == "+2 reminders, -1 reminder, -1 late fee (-£25.00), +1 note"
    assert impact_sentence(ActionsDiff()) == "no change"
