"""The planner's output, pinned: a few thousand invoices of the plan_100k bench, planned cold and day after day.

The planner is tuned for speed (memo tables per cadence, zone and due date); these digests were taken from the
plain planner before any of that, over every field of every action (keys, amounts, dates, rules, fee details,
warnings). A digest that changes means the planner's behaviour changed, which a speed-up must never do: find
the difference with `_actions_of(...)`, do not re-pin.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from bench.scenarios.plan_100k import CONNECTION, NOW, POLICIES, build
from connector.domain.actions import Action, ActionKind, History, InvoiceFacts
from connector.domain.cadence import plan
from connector.domain.calendar import Calendars
from connector.domain.model import Installment, PaymentPlan
from connector.domain.money import Money
from connector.domain.policy import CatchUp, PaymentPlanPolicy, PolicySet

INVOICES = 3_000
CUSTOMERS = 60
CADENCE = POLICIES.cadences["default"]
PLAN_POLICIES = replace(POLICIES, payment_plans={"monthly": PaymentPlanPolicy("monthly")})


def _digest(actions: list[Action]) -> str:
    return hashlib.sha256("\n".join(repr(action) for action in actions).encode()).hexdigest()[:16]


def _days(
    history: History,
    *,
    policies: PolicySet = POLICIES,
    connection: object = CONNECTION,
    through_next_send_day: bool = False,
    payment_plans: dict[str, PaymentPlan] | None = None,
    unapplied_credit: dict[str, Money] | None = None,
) -> list[tuple[int, str]]:
    """(action count, digest) of the cold plan the day before NOW, then of a plan every third day for 45 days,
    each with the earlier ones on record as delivered (so warnings are sent and fees follow)."""
    invoices, overrides, _ = build(INVOICES, CUSTOMERS)
    calendars = Calendars()
    cadence = policies.cadences["default"]
    results = []
    for day in range(-1, 45, 3):
        actions = plan(
            invoices,
            overrides,
            cadence,
            policies,
            history,
            NOW + timedelta(days=day),
            connection=connection,  # type: ignore[arg-type]
            horizon=timedelta(days=1),
            calendars=calendars,
            through_next_send_day=through_next_send_day,
            payment_plans=payment_plans,
            unapplied_credit=unapplied_credit,
        )
        results.append((len(actions), _digest(actions)))
        history = history.record(actions)
    return results


def _bench_history() -> History:
    return build(INVOICES, CUSTOMERS)[2]


def test_the_bench_history_carries_dated_payments() -> None:
    invoices, _, history = build(INVOICES, CUSTOMERS)
    paid = [facts for facts in history.invoices.values() if facts.payments]
    assert len(paid) > INVOICES // 10
    by_id = {invoice.external_id: invoice for invoice in invoices}
    for external_id, facts in history.invoices.items():
        invoice = by_id[external_id]
        assert sum(p.amount.amount for p in facts.payments) == invoice.total.amount - invoice.balance.amount


def test_daily_plans_are_unchanged() -> None:
    assert _days(_bench_history()) == PINNED["daily"]


def test_daily_plans_with_kinds_are_unchanged() -> None:
    """The same run, told by kind: what the digests above cover, readable."""
    invoices, overrides, history = build(INVOICES, CUSTOMERS)
    actions = plan(
        invoices, overrides, CADENCE, POLICIES, history, NOW - timedelta(days=1), connection=CONNECTION,
        horizon=timedelta(days=1), calendars=Calendars(),
    )  # fmt: skip
    counts = {kind.value: sum(1 for a in actions if a.kind is kind) for kind in ActionKind}
    assert {kind: count for kind, count in counts.items() if count} == PINNED["cold_kinds"]


def test_invoices_first_seen_late_catch_up_unchanged() -> None:
    """Every invoice first seen on the day before NOW (a new connection): catch-up, `latest` and `skip`."""
    history = _bench_history()
    invoices, _, _ = build(INVOICES, CUSTOMERS)
    entered = (NOW - timedelta(days=1)).date()
    facts = {
        invoice.external_id: replace(history.facts(invoice.external_id), first_seen=entered) for invoice in invoices
    }
    late = replace(history, invoices=facts)
    assert _days(late) == PINNED["catch_up_latest"]
    skip = replace(POLICIES, cadences={"default": replace(CADENCE, catch_up=CatchUp.SKIP)})
    assert _days(late, policies=skip) == PINNED["catch_up_skip"]
    started = replace(CONNECTION, started_on=date(2024, 3, 1))
    assert _days(_bench_history(), connection=started) == PINNED["started_on"]


def test_review_plans_plans_and_credit_are_unchanged() -> None:
    """Through the next send day (a review), payment plans on some invoices, unapplied credit of some customers."""
    invoices, _, history = build(INVOICES, CUSTOMERS)
    plans = {
        invoice.external_id: PaymentPlan(
            invoice.external_id,
            "monthly" if number % 2 else "unknown",
            date(2024, 2, 1),
            (
                Installment(date(2024, 3, 1), Money(Decimal(10), "GBP")),
                Installment(date(2024, 4, 1), Money(Decimal(10), "GBP")),
            ),
            plan_id=str(number),
        )
        for number, invoice in enumerate(invoices[::97])
    }
    credit = {f"C{c}": Money(Decimal(5_000), "GBP") for c in range(0, CUSTOMERS, 7)}
    first_seen = {
        invoice.external_id: replace(history.facts(invoice.external_id), first_seen=invoice.issue_date)
        for invoice in invoices
    }
    seen = replace(history, invoices={**first_seen, "unknown": InvoiceFacts()})
    assert _days(seen, through_next_send_day=True) == PINNED["review"]
    assert _days(seen, policies=PLAN_POLICIES, payment_plans=plans, unapplied_credit=credit) == PINNED["plans"]


# (action count, digest) per plan, taken from the planner before it was tuned for speed.
PINNED: dict[str, object] = {
    "catch_up_latest": [
        (249, "27e85b0faf10304c"),
        (90, "be275e662ba3319f"),
        (145, "dc2adf3e06d21ef2"),
        (2455, "3b246512413d5efe"),
        (0, "e3b0c44298fc1c14"),
        (1937, "3ed9b7c06ed6af84"),
        (0, "e3b0c44298fc1c14"),
        (352, "5fc994c74b845b76"),
        (2088, "974e648390ebba3f"),
        (2418, "d26416bc13d054ce"),
        (371, "c681c4e77a153d7c"),
        (0, "e3b0c44298fc1c14"),
        (504, "0468b32be90798b1"),
        (289, "a745b01be35fb8a9"),
        (2274, "8789ecbfe401f46f"),
        (309, "aaf73857211804c0"),
    ],
    "catch_up_skip": [
        (1801, "26bc0e0ded5122cb"),
        (204, "e7b9e7250d5ca7b9"),
        (188, "ce039dcf4144b09b"),
        (270, "0b5c7bf2fd975f41"),
        (0, "e3b0c44298fc1c14"),
        (629, "5bed27fbed3daf20"),
        (0, "e3b0c44298fc1c14"),
        (681, "5df783c35cb2c090"),
        (347, "058aed1791a66f06"),
        (313, "70146163360e134f"),
        (394, "389851b39981577a"),
        (0, "e3b0c44298fc1c14"),
        (695, "5e1041ed287cbe3e"),
        (255, "9d67307775b7f5e8"),
        (504, "82d53981a5554529"),
        (404, "0f5e2cdf1b18cada"),
    ],
    "cold_kinds": {"call_task": 475, "escalate": 1091, "hold": 165, "note": 249, "remind": 95},
    "daily": [
        (2075, "27e1ec27fbe3b22d"),
        (264, "d4d98c2efdd70ce2"),
        (1988, "0550976d03b576b7"),
        (663, "23e25ff92a6f3621"),
        (0, "e3b0c44298fc1c14"),
        (920, "5d763b916af6d7ff"),
        (0, "e3b0c44298fc1c14"),
        (975, "835f1cb9f824ab6a"),
        (528, "49e1db63c7e73db2"),
        (528, "fdd1d450760e638e"),
        (597, "a109f4bb82aa2203"),
        (0, "e3b0c44298fc1c14"),
        (1043, "2a936408933350c9"),
        (359, "6f61937a03fb0bdd"),
        (753, "0ae3256cbc9a06ca"),
        (524, "04f647e46b8c8fc6"),
    ],
    "plans": [
        (2110, "d6490b03c00febd5"),
        (267, "04ec38bccaa0eda8"),
        (1930, "593583e6cf50db16"),
        (648, "cd40b3c83c0d9bf4"),
        (0, "e3b0c44298fc1c14"),
        (897, "3602c9299c5bd4d1"),
        (0, "e3b0c44298fc1c14"),
        (947, "0a238b545272aaa1"),
        (521, "03772dc076447401"),
        (516, "e240987f4d42fd30"),
        (594, "9fb9d00196ba70c7"),
        (0, "e3b0c44298fc1c14"),
        (1019, "c4102b6c07d17bb7"),
        (356, "33020e3d19e20b4e"),
        (737, "b28d047228b4cbad"),
        (509, "a30f0bfef2baee1a"),
    ],
    "review": [
        (2075, "27e1ec27fbe3b22d"),
        (264, "d4d98c2efdd70ce2"),
        (1988, "0550976d03b576b7"),
        (663, "23e25ff92a6f3621"),
        (613, "10dfb4451f54be8e"),
        (355, "1e40c4f8c1feb11f"),
        (910, "ea4ccf75210fc10e"),
        (85, "6ba8f8d5e2e09f19"),
        (528, "49e1db63c7e73db2"),
        (528, "df946d975683163b"),
        (597, "a109f4bb82aa2203"),
        (671, "5a84904a14267fc1"),
        (420, "5715e351c8b86f8b"),
        (413, "97aef9db1e886e42"),
        (701, "8ccf193eae980d9e"),
        (524, "bc91dbfe4217709a"),
    ],
    "started_on": [
        (2089, "32508abe66b27f91"),
        (151, "ca5cf1e2e6a6f9d4"),
        (1191, "7b79457fb97463cf"),
        (1021, "4724f349ab131cec"),
        (0, "e3b0c44298fc1c14"),
        (2529, "fb3e247e8cdf0ca9"),
        (0, "e3b0c44298fc1c14"),
        (2031, "305d271e774e55be"),
        (296, "8fe2ce664a24a7c7"),
        (303, "db7b17f2ca09d870"),
        (1379, "4c69ee3596e3637d"),
        (0, "e3b0c44298fc1c14"),
        (1342, "9dc8055bc3443858"),
        (222, "14fd9f3eeeaa6832"),
        (474, "6f864650eff6332f"),
        (1436, "dd05c2143f8abe6b"),
    ],
}
