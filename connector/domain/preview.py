"""Preview ("safe mode"): run the real planner forward day by day over a simulated calendar.

Nobody pays in the simulation: invoices stay as they are; each day's planned actions are recorded into
the history fed to the next day, exactly as the executor would after carrying them out. Instants are
UTC; `local_date` of each action is in the customer's zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType

from connector.domain.actions import Action, History
from connector.domain.cadence import ConnectionSettings, plan
from connector.domain.calendar import Calendars
from connector.domain.model import CustomerOverrides, InvoiceOverrides, InvoiceSnapshot, PaymentPlan
from connector.domain.money import Money
from connector.domain.policy import Cadence, PolicySet

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlanningState:
    """Everything `plan` needs about one connection except `now`."""

    connection: ConnectionSettings
    invoices: tuple[InvoiceSnapshot, ...]
    cadence: Cadence
    policies: PolicySet
    customers: Mapping[str, CustomerOverrides] = field(default_factory=lambda: MappingProxyType({}))
    history: History = field(default_factory=History)
    payment_plans: Mapping[str, PaymentPlan] = field(default_factory=lambda: MappingProxyType({}))
    unapplied_credit: Mapping[str, Money] = field(default_factory=lambda: MappingProxyType({}))
    invoice_overrides: Mapping[str, InvoiceOverrides] = field(default_factory=lambda: MappingProxyType({}))


def plan_state(
    state: PlanningState,
    now: datetime,
    *,
    horizon: timedelta = timedelta(0),
    calendars: Calendars | None = None,
    through_next_send_day: bool = False,
) -> list[Action]:
    """`plan` applied to a PlanningState (same rules; `now` aware, results in UTC)."""
    return plan(
        state.invoices,
        state.customers,
        state.cadence,
        state.policies,
        state.history,
        now,
        connection=state.connection,
        payment_plans=state.payment_plans,
        unapplied_credit=state.unapplied_credit,
        horizon=horizon,
        calendars=calendars,
        through_next_send_day=through_next_send_day,
        invoice_overrides=state.invoice_overrides,
    )


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One line of a preview: when (UTC and customer-local date), what, to whom, how much, which rule."""

    scheduled_at: datetime
    local_date: date
    kind: str
    customer: str
    invoices: tuple[str, ...]
    recipients: tuple[str, ...]
    amount: Money | None
    template: str | None
    rule: str
    requires_approval: bool


@dataclass(frozen=True, slots=True)
class Timeline:
    """The outcome of a preview: every action in order, per simulated day, and the final history."""

    start: datetime
    days: tuple[tuple[datetime, tuple[Action, ...]], ...]
    history: History

    @property
    def actions(self) -> tuple[Action, ...]:
        """All actions of the preview in the order they were planned."""
        return tuple(action for _, day in self.days for action in day)

    def rows(self) -> list[TimelineRow]:
        """The timeline as plain rows for display."""
        return [
            TimelineRow(
                a.scheduled_at,
                a.local_date,
                a.kind.value,
                a.customer_name or a.customer_external_id,
                a.invoice_external_ids,
                a.recipients,
                a.amount,
                a.template,
                a.rule,
                a.requires_approval,
            )
            for a in self.actions
        ]


def preview(state: PlanningState, now: datetime, days: int) -> Timeline:
    """Plan `days` consecutive days from `now` (aware), each a `plan` with a one-day horizon whose
    history holds every earlier day's actions; assumes nobody pays and nothing is cancelled."""
    if days < 0:
        raise ValueError("days must not be negative")
    calendars = Calendars()
    history = state.history
    out: list[tuple[datetime, tuple[Action, ...]]] = []
    for index in range(days):
        at = now + index * ONE_DAY
        actions = plan(
            state.invoices,
            state.customers,
            state.cadence,
            state.policies,
            history,
            at,
            connection=state.connection,
            payment_plans=state.payment_plans,
            unapplied_credit=state.unapplied_credit,
            horizon=ONE_DAY,
            calendars=calendars,
            invoice_overrides=state.invoice_overrides,
        )
        history = history.record(actions)
        out.append((at, tuple(actions)))
    return Timeline(start=now, days=tuple(out), history=history)
