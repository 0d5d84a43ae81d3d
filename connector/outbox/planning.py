"""plan_connection: run the pure planner over one connection's synced state and fill the outbox.

History is rebuilt from the outbox itself (every action but cancelled ones), so planning again
never duplicates; a changed due date yields new keys and so a fresh cycle. Inserting a key that
already exists is a no-op. Ledger dates are taken in the connection's zone.

The synced money (connector.outbox.money) feeds the rules: dated payments per invoice, unapplied
credit per customer, payment plans; invoices closed within `CORRECTION_WINDOW` that carry a Nudge
late fee still reach the fee-reversal rule. Nudge's own fee invoices and credits are never chased, nor
is any invoice carrying Nudge's marker (`Invoice.created_by_nudge`: a fee invoice written by Nudge for
any organization, this one or another chasing the same ledger).

Who chases decides what is planned (`Connection.chasing`): "managed_elsewhere" plans nothing (another
organization chases the ledger); "review" (a new connection whose first plan nobody approved yet) inserts
every action but holds as `awaiting_approval`, so nothing goes out until a person approves
(connector.review); "active" plans as usual (approval mode and steps that require approval wait too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connector.domain.actions import Action, ActionKind, History, HoldReason, InvoiceFacts
from connector.domain.cadence import ConnectionSettings
from connector.domain.calendar import Calendars
from connector.domain.fees import ReferenceRates
from connector.domain.model import ActionState, CustomerOverrides, InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.domain.payment_plans import plan_status
from connector.domain.policy import PolicySet
from connector.domain.preview import PlanningState, TimelineRow, plan_state, preview
from connector.library.resolve import OrgLibrary, library_for
from connector.outbox.codec import action_from_json, action_to_json
from connector.outbox.money import LedgerMoney, closed_with_history, load_money, load_plans
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Customer, Invoice
from connector.storage.tables import PaymentPlan as PlanRow

CORRECTION_WINDOW = timedelta(days=120)  # a closed invoice updated this recently may still owe a reversal
# A reminder in these states reached (or may have reached) the customer: what it said counts as said.
# Every other state but cancelled (planned, awaiting approval, skipped, failed...) counts as planned but not
# delivered: its key stays taken, so a skipped action is never planned again.
_DELIVERED = frozenset({ActionState.DONE.value, ActionState.UNCERTAIN.value})


class Chasing(StrEnum):
    """Who chases a connection's ledger (`Connection.chasing`)."""

    REVIEW = "review"  # new: synced and planned, nothing goes out until a person approves the first plan
    ACTIVE = "active"
    MANAGED_ELSEWHERE = "managed_elsewhere"  # another organization chases the same ledger: plan nothing


@dataclass(frozen=True)
class PlanReport:
    """What one planning pass did: actions newly planned, already known, waiting for approval."""

    planned: int
    already_known: int
    awaiting_approval: int


def snapshot_of(row: Invoice) -> InvoiceSnapshot:
    """The domain view of a synced invoice row."""
    return InvoiceSnapshot(
        external_id=row.external_id,
        number=row.number,
        customer_external_id=row.customer_external_id,
        customer_name=row.customer_name,
        currency=row.currency,
        total=Money.of(row.total, row.currency),
        balance=Money.of(row.balance, row.currency),
        issue_date=row.issue_date,
        due_date=row.due_date,
        status=InvoiceStatus(row.status),
        updated_at=row.updated_at,
        emails=tuple(row.emails or ()),
        version=row.version,
    )


def overrides_of(row: Customer) -> CustomerOverrides:
    """The domain view of a customer's overrides (holiday calendar written as CC or CC-SUBDIV)."""
    country, _, subdiv = (row.holiday_calendar or "").partition("-")
    return CustomerOverrides(
        paused_until=row.paused_until,
        excluded=row.excluded,
        dispute=row.dispute,
        promise_to_pay=row.promise_to_pay_until,
        time_zone=row.time_zone or None,
        holiday_country=country or None,
        holiday_subdiv=subdiv or None,
        cadence=row.cadence or None,
    )


def load_history(uow: UnitOfWork, connection_id: int, time_zone: str, money: LedgerMoney | None = None) -> History:
    """Everything planned or done for the connection (not cancelled; superseded apart), first-seen dates
    and the synced payments of each invoice (`money`, loaded when not given)."""
    delivered: list[Action] = []
    pending: list[Action] = []
    superseded: list[Action] = []
    for payload, state in uow.session.execute(
        select(ActionRow.payload, ActionRow.state).where(
            ActionRow.connection_id == connection_id, ActionRow.state != ActionState.CANCELLED.value
        )
    ):
        if not payload:
            continue
        if state == ActionState.SUPERSEDED.value:
            superseded.append(action_from_json(payload))
        elif state in _DELIVERED:
            delivered.append(action_from_json(payload))
        else:
            pending.append(action_from_json(payload))
    history = History().record(delivered).record(pending, delivered=False).supersede(superseded)
    zone = ZoneInfo(time_zone)
    paid = (money or load_money(uow, connection_id)).payments
    facts = dict(history.invoices)
    rows = uow.session.execute(
        select(Invoice.external_id, Invoice.first_seen_at, Invoice.currency).where(
            Invoice.connection_id == connection_id
        )
    ).all()
    for external_id, first_seen, currency in rows:
        known = facts.get(external_id, InvoiceFacts())
        # money in another currency than its invoice cannot be compared with it: left out, never a crash
        payments = tuple(p for p in paid.get(external_id, ()) if p.amount.currency == currency)
        facts[external_id] = replace(
            known, first_seen=first_seen.astimezone(zone).date(), payments=payments or known.payments
        )
    return replace(history, invoices=facts)


def connection_settings(connection: Connection, rates: ReferenceRates | None = None) -> ConnectionSettings:
    """The planner's per-connection settings: zone, approval mode, rates, the local date chasing started
    (the review's approval; None while in review) and the ledger's own holiday calendar ("" → None)."""
    time_zone = connection.time_zone or "UTC"
    return ConnectionSettings(
        str(connection.id),
        time_zone,
        connection.approval_mode,
        rates or ReferenceRates(),
        started_on=_local_date(connection.chasing_since, time_zone) if connection.chasing != Chasing.REVIEW else None,
        holiday_country=connection.holiday_country or None,
        holiday_subdiv=connection.holiday_subdiv or None,
    )


def _local_date(moment: datetime | None, time_zone: str) -> date | None:
    return moment.astimezone(ZoneInfo(time_zone)).date() if moment is not None else None


def load_states(
    uow: UnitOfWork,
    connection_id: int,
    rules: PolicySet,
    *,
    default_cadence: str = "",
    rates: ReferenceRates | None = None,
    now: datetime | None = None,
    library: OrgLibrary | None = None,
) -> list[PlanningState]:
    """The planner's input for one connection: one state per cadence in use (customers may override it).

    `rules` are the install's starter rules, used as they are by an organization with no library rows;
    `library` (a proposed change, in memory: the impact preview) replaces the organization's stored library."""
    connection = uow.connections.by_id(connection_id)
    if connection is None:
        return []
    if library is None:
        library = library_for(uow, connection.organization_id, rules)
    rules = library.rules
    settings = connection_settings(connection, rates)
    money = load_money(uow, connection_id)
    # Nudge's own fee invoices come back through the sync; chasing them would charge fees on fees.
    corrections = closed_with_history(connection_id)
    corrected: ColumnElement[bool] = Invoice.external_id.in_(corrections)
    if now is not None:
        corrected = corrected & (Invoice.updated_at >= now - CORRECTION_WINDOW)
    open_or_corrected = or_(Invoice.status == InvoiceStatus.OPEN.value, corrected)
    invoices = [
        snapshot_of(row)
        for row in uow.session.scalars(
            select(Invoice).where(
                Invoice.connection_id == connection_id, open_or_corrected, Invoice.created_by_nudge.is_(False)
            )
        )
        if not money.is_own_invoice(row.external_id)
    ]
    customers = {
        row.external_id: overrides_of(row)
        for row in uow.session.scalars(select(Customer).where(Customer.connection_id == connection_id))
    }
    history = load_history(uow, connection_id, settings.time_zone, money)
    plans = load_plans(uow, connection_id, settings.time_zone)
    connection_cadence = connection.cadence or default_cadence or next(iter(rules.cadences), "")
    by_cadence: dict[str, list[InvoiceSnapshot]] = defaultdict(list)
    for invoice in invoices:
        override = customers.get(invoice.customer_external_id)
        name = (override.cadence if override and override.cadence else None) or connection_cadence
        by_cadence[name].append(invoice)
    return [
        PlanningState(
            connection=settings,
            invoices=tuple(members),
            cadence=rules.cadences[name],
            policies=rules,
            customers=customers,
            history=history,
            payment_plans=plans,
            unapplied_credit=money.unapplied,
        )
        for name, members in sorted(by_cadence.items())
        if name in rules.cadences  # config validation guarantees the connection's; a stale override is skipped
    ]


def plan_connection(
    store: Store,
    connection_id: int,
    rules: PolicySet,
    now: datetime,
    *,
    default_cadence: str = "",
    rates: ReferenceRates | None = None,
    calendars: Calendars | None = None,
    before_acting: Callable[[], bool] | None = None,
) -> PlanReport:
    """Plan what is due now for one connection and insert it into the outbox (idempotently).

    `before_acting` (connector.worker.turn: read the open credit when it is stale) is called when the plan would
    act (`_acts`), outside any database transaction; when it answers True the money changed and the plan is made
    again from the stored state before anything is inserted."""
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None or connection.chasing == Chasing.MANAGED_ELSEWHERE:
            return PlanReport(0, 0, 0)  # another organization chases this ledger: nothing is planned here
        in_review = connection.chasing == Chasing.REVIEW
        shared_calendars = calendars or Calendars()

        def make_plan() -> list[Action]:
            states = load_states(uow, connection_id, rules, default_cadence=default_cadence, rates=rates, now=now)
            _track_plans(uow, connection_id, rules, now, connection.time_zone or "UTC")
            _cancel_orphaned_reversals(uow, connection_id, states, now)
            # A review shows what the first send day brings, whatever the hour it is planned at.
            return [
                action
                for state in states
                for action in plan_state(state, now, calendars=shared_calendars, through_next_send_day=in_review)
            ]

        actions = make_plan()
        if before_acting is not None and _acts(uow, actions):
            uow.commit()  # no transaction stays open while the provider is asked
            if before_acting():
                actions = make_plan()
        # The review is the FIRST plan: while it waits, later turns add no new steps to it (approving it weeks later
        # must not release a backlog of steps at once; the cadence runs from the day it is approved).
        frozen = in_review and _has_waiting(uow, connection_id)
        planned = known = waiting = 0
        for action in actions:
            if frozen and action.kind != ActionKind.HOLD:
                continue
            # In review every action waits for a person, except holds: they only inform, nothing goes out.
            held = (
                action.requires_approval or connection.approval_mode or (in_review and action.kind != ActionKind.HOLD)
            )
            state = ActionState.AWAITING_APPROVAL if held else ActionState.PLANNED
            if _insert(uow, connection_id, action, state):
                planned += 1
                waiting += state is ActionState.AWAITING_APPROVAL
            else:
                known += 1
        uow.commit()
        return PlanReport(planned, known, waiting)


def _acts(uow: UnitOfWork, actions: list[Action]) -> bool:
    """Whether inserting `actions` would add something that goes out (a new action other than a hold), or holds an
    invoice for the customer's unapplied credit (money that may have been applied since)."""
    candidates = {
        action.key: action
        for action in actions
        if action.kind != ActionKind.HOLD or action.hold_reason is HoldReason.UNAPPLIED_CREDIT
    }
    if not candidates:
        return False
    known = set(uow.session.scalars(select(ActionRow.key).where(ActionRow.key.in_(list(candidates)))))
    return any(key not in known or action.kind == ActionKind.HOLD for key, action in candidates.items())


def _has_waiting(uow: UnitOfWork, connection_id: int) -> bool:
    """Whether any action of the connection waits for a person's approval."""
    return (
        uow.session.scalar(
            select(ActionRow.id)
            .where(ActionRow.connection_id == connection_id, ActionRow.state == ActionState.AWAITING_APPROVAL.value)
            .limit(1)
        )
        is not None
    )


def preview_connection(
    store: Store,
    connection_id: int,
    rules: PolicySet,
    now: datetime,
    days: int,
    *,
    default_cadence: str = "",
    rates: ReferenceRates | None = None,
    library: OrgLibrary | None = None,
) -> list[TimelineRow]:
    """What would go out over the next `days` days if nobody paid: the planner run forward, day by day.

    `library` (a proposed change, in memory) is planned with instead of the organization's stored library."""
    with store.unit_of_work() as uow:
        states = load_states(
            uow, connection_id, rules, default_cadence=default_cadence, rates=rates, now=now, library=library
        )
    rows = [row for state in states for row in preview(state, now, days).rows()]
    return sorted(rows, key=lambda row: (row.scheduled_at, row.customer, row.kind, row.invoices))


def _track_plans(uow: UnitOfWork, connection_id: int, rules: PolicySet, now: datetime, time_zone: str) -> None:
    """Mark each active payment plan kept (every installment paid) or broken, from the synced payments."""
    plans = load_plans(uow, connection_id, time_zone)
    if not plans:
        return
    today = now.astimezone(ZoneInfo(time_zone)).date()
    paid = load_money(uow, connection_id).payments
    for plan in plans.values():
        policy = rules.payment_plans.get(plan.policy)
        if policy is None or not plan.plan_id:
            continue
        status = plan_status(plan, policy, paid.get(plan.invoice_external_id, ()), today)
        outcome = "broken" if not status.kept else "kept" if not status.open else "active"
        row = uow.session.get(PlanRow, int(plan.plan_id))
        if row is not None and row.state == "active" and outcome != "active":
            row.state = outcome


ORPHANED = "the payment dated on or before the fee's assessment was deleted or voided in the ledger"


def _cancel_orphaned_reversals(uow: UnitOfWork, connection_id: int, states: list[PlanningState], now: datetime) -> None:
    """Cancel a fee reversal not yet carried out whose reason went away: no synced payment is dated on or
    before its fee's assessment any more (the payment was deleted or voided in the ledger)."""
    if not states:
        return
    history = states[0].history
    pending = uow.session.scalars(
        select(ActionRow).where(
            ActionRow.connection_id == connection_id,
            ActionRow.kind == ActionKind.FEE_REVERSAL.value,
            ActionRow.state.in_((ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value)),
        )
    )
    for row in pending:
        action = action_from_json(row.payload)
        facts = history.facts(action.invoice_external_ids[0])
        fee = next((f for f in facts.fees if f.key == action.reverses), None)
        if fee is not None and not any(p.paid_on <= fee.assessed_on for p in facts.payments):
            row.state = ActionState.CANCELLED.value
            row.error = ORPHANED
            row.updated_at = now


def _insert(uow: UnitOfWork, connection_id: int, action: Action, state: ActionState) -> bool:
    values = {
        "key": action.key,
        "connection_id": connection_id,
        "kind": action.kind.value,
        "step": action.step_id,
        "invoice_external_id": action.invoice_external_ids[0] if len(action.invoice_external_ids) == 1 else "",
        "customer_external_id": action.customer_external_id,
        "state": state.value,
        "scheduled_at": action.scheduled_at,
        "payload": action_to_json(action),
        "created_at": action.scheduled_at,
        "updated_at": action.scheduled_at,
    }
    dialect = uow.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = uow.session.execute(insert(ActionRow).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return bool(result.rowcount)  # type: ignore[attr-defined]
