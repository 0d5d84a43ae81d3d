"""What a library change does to one client's next days: two previews' actions (current, proposed) diffed.

Pure: the caller runs the planner forward twice (connector.outbox.impact) and hands both lists of actions here.
Reminders are compared by (customer-local day, customer, step): a reminder one side plans and the other does not is
added or removed (a step that moves a day is one of each). Late fees are compared by (day, invoice, step,
occurrence): present on one side only is added or removed, present on both with another amount is changed.
Amounts are totalled per currency, never mixed. Every other kind of action (notes, call tasks, escalations,
holds, discount offers) is compared by count per kind. Orders are deterministic (sorted), so the same inputs
always give the same answer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from connector.domain.actions import Action, ActionKind
from connector.domain.money import Money

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class ReminderChange:
    """A reminder one side plans and the other does not: `day` (the customer's date), customer, step."""

    change: str  # added | removed
    day: date
    customer: str  # the customer's external id
    customer_name: str
    step: str
    invoices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeeChange:
    """A late fee added, removed, or charged at another amount (`before`/`after`: None on the side without it)."""

    change: str  # added | removed | changed
    day: date
    invoice: str
    customer: str
    customer_name: str
    step: str
    before: Money | None
    after: Money | None


@dataclass(frozen=True)
class ActionsDiff:
    """How the proposed plan differs from the current one over the same days, for one client (or summed)."""

    reminders: tuple[ReminderChange, ...] = ()
    fees: tuple[FeeChange, ...] = ()
    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (current, proposed), changed only
    fees_before: Mapping[str, Money] = field(default_factory=dict)  # late fees of the current plan, per currency
    fees_after: Mapping[str, Money] = field(default_factory=dict)  # … and of the proposed plan

    @property
    def reminders_added(self) -> int:
        """How many reminders the proposed plan adds."""
        return sum(1 for r in self.reminders if r.change == ADDED)

    @property
    def reminders_removed(self) -> int:
        """How many reminders the proposed plan no longer sends."""
        return sum(1 for r in self.reminders if r.change == REMOVED)

    @property
    def fee_change(self) -> dict[str, Money]:
        """Proposed minus current late fees, per currency (currencies that do not change are left out)."""
        delta: dict[str, Money] = {}
        for currency in sorted(set(self.fees_before) | set(self.fees_after)):
            zero = Money.zero(currency)
            difference = self.fees_after.get(currency, zero) - self.fees_before.get(currency, zero)
            if not difference.is_zero():
                delta[currency] = difference
        return delta

    @property
    def unchanged(self) -> bool:
        """True when the change makes no difference to what goes out."""
        return not self.reminders and not self.fees and not self.counts


def diff_actions(current: Iterable[Action], proposed: Iterable[Action]) -> ActionsDiff:
    """The difference between the actions planned with the current library and with the proposed one."""
    before, after = list(current), list(proposed)
    return ActionsDiff(
        reminders=_reminder_changes(before, after),
        fees=_fee_changes(before, after),
        counts=_count_changes(before, after),
        fees_before=_fee_totals(before),
        fees_after=_fee_totals(after),
    )


def combine(diffs: Iterable[ActionsDiff]) -> ActionsDiff:
    """Several clients' differences as one (lists joined, counts and per-currency totals added up)."""
    reminders: list[ReminderChange] = []
    fees: list[FeeChange] = []
    counts: dict[str, tuple[int, int]] = {}
    before: dict[str, Money] = {}
    after: dict[str, Money] = {}
    for diff in diffs:
        reminders.extend(diff.reminders)
        fees.extend(diff.fees)
        for kind, (was, will) in diff.counts.items():
            old = counts.get(kind, (0, 0))
            counts[kind] = (old[0] + was, old[1] + will)
        _add_totals(before, diff.fees_before)
        _add_totals(after, diff.fees_after)
    return ActionsDiff(tuple(reminders), tuple(fees), dict(sorted(counts.items())), before, after)


def _reminder_key(action: Action) -> tuple[date, str, str]:
    return action.local_date, action.customer_external_id, action.step_id


def _reminder_changes(before: list[Action], after: list[Action]) -> tuple[ReminderChange, ...]:
    old = [a for a in before if a.kind is ActionKind.REMIND]
    new = [a for a in after if a.kind is ActionKind.REMIND]
    old_counts = Counter(_reminder_key(a) for a in old)
    new_counts = Counter(_reminder_key(a) for a in new)
    changes: list[ReminderChange] = []
    for change, side, extra in ((ADDED, new, new_counts - old_counts), (REMOVED, old, old_counts - new_counts)):
        for action in side:
            key = _reminder_key(action)
            if extra[key] > 0:
                extra[key] -= 1
                changes.append(
                    ReminderChange(
                        change,
                        action.local_date,
                        action.customer_external_id,
                        action.customer_name or action.customer_external_id,
                        action.step_id,
                        tuple(sorted(action.invoice_external_ids)),
                    )
                )
    return tuple(sorted(changes, key=lambda c: (c.day, c.customer, c.step, c.change, c.invoices)))


_FeeKey = tuple[date, str, str, int]


def _fees(actions: list[Action]) -> dict[_FeeKey, list[Action]]:
    by_key: dict[_FeeKey, list[Action]] = defaultdict(list)
    for action in actions:
        if action.kind is ActionKind.LATE_FEE:
            invoice = action.invoice_external_ids[0] if action.invoice_external_ids else ""
            by_key[(action.local_date, invoice, action.step_id, action.occurrence)].append(action)
    return by_key


def _fee_changes(before: list[Action], after: list[Action]) -> tuple[FeeChange, ...]:
    old, new = _fees(before), _fees(after)
    changes: list[FeeChange] = []
    for key in sorted(set(old) | set(new)):
        was, will = old.get(key, []), new.get(key, [])
        for index in range(max(len(was), len(will))):
            first = was[index] if index < len(was) else None
            second = will[index] if index < len(will) else None
            if first is not None and second is not None and first.amount == second.amount:
                continue
            change = ADDED if first is None else REMOVED if second is None else CHANGED
            shown = second or first
            assert shown is not None  # one side at least has it
            day, invoice, step, _ = key
            changes.append(
                FeeChange(
                    change,
                    day,
                    invoice,
                    shown.customer_external_id,
                    shown.customer_name or shown.customer_external_id,
                    step,
                    first.amount if first is not None else None,
                    second.amount if second is not None else None,
                )
            )
    return tuple(changes)


def _count_changes(before: list[Action], after: list[Action]) -> dict[str, tuple[int, int]]:
    """Count per kind of the kinds neither reminders nor late fees, where the two plans differ."""
    compared = [kind for kind in ActionKind if kind not in (ActionKind.REMIND, ActionKind.LATE_FEE)]
    old = Counter(a.kind for a in before)
    new = Counter(a.kind for a in after)
    return {kind.value: (old[kind], new[kind]) for kind in compared if old[kind] != new[kind]}


def _fee_totals(actions: list[Action]) -> dict[str, Money]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for action in actions:
        if action.kind is ActionKind.LATE_FEE and action.amount is not None:
            sums[action.amount.currency] += action.amount.amount
    return {currency: Money.of(amount, currency) for currency, amount in sorted(sums.items())}


def _add_totals(into: dict[str, Money], more: Mapping[str, Money]) -> None:
    for currency, amount in more.items():
        into[currency] = into[currency] + amount if currency in into else amount
