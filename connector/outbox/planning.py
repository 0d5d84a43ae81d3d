"""plan_connection: run the pure planner over one connection's synced state and fill the outbox.

History is rebuilt from the outbox itself (every action but cancelled ones), so planning again
never duplicates; a changed due date yields new keys and so a fresh cycle. Inserting a key that
already exists is a no-op. Ledger dates are taken in the connection's zone.

The synced money (connector.outbox.money) feeds the rules: dated payments per invoice, unapplied
credit per customer, payment plans; invoices closed within `CORRECTION_WINDOW` that carry a Nudge
late fee still reach the fee-reversal rule. Nudge's own fee invoices and credits are never chased, nor
is any invoice carrying Nudge's marker (`Invoice.created_by_nudge`: a fee invoice written by Nudge for
any organization, this one or another chasing the same ledger).

What a connection is chased with is its organization's library and the client's settings and overrides
(connector.outbox.client: cadence by library id with logged fallbacks, zone, holidays, send window, approval,
minimums; customer and invoice overrides), each loaded in one query per plan; every inserted action records
the library version of the cadence that planned it (`Action.library_version_id`).

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
from connector.domain.cadence import ConnectionSettings, promise_kept
from connector.domain.calendar import Calendars, is_time_zone
from connector.domain.fees import ReferenceRates
from connector.domain.model import (
    NO_INVOICE_OVERRIDES,
    ActionState,
    CustomerOverrides,
    InvoiceOverrides,
    InvoiceSnapshot,
    InvoiceStatus,
)
from connector.domain.money import Money
from connector.domain.payment_plans import plan_status
from connector.domain.policy import PolicySet
from connector.domain.preview import PlanningState, TimelineRow, plan_state, preview
from connector.library.resolve import OrgLibrary, library_for
from connector.outbox.client import ClientPlanning, Notice, client_planning
from connector.outbox.codec import action_from_json, action_to_json
from connector.outbox.money import LedgerMoney, closed_with_history, load_money, load_plans
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection, Customer, Invoice, InvoiceOverride
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


def overrides_of(row: Customer, cadence: str | None = None) -> CustomerOverrides:
    """The domain view of a customer's overrides (holiday calendar written as CC or CC-SUBDIV); `cadence`: the
    resolved name of the customer's cadence (default: the legacy name on the row)."""
    country, _, subdiv = (row.holiday_calendar or "").partition("-")
    promised: Money | None = None
    if row.promise_amount is not None and row.promise_currency:
        try:
            promised = Money.of(row.promise_amount, row.promise_currency)
        except ValueError:  # a currency the money type refuses: the promise still holds, without its amount
            promised = None
    return CustomerOverrides(
        paused_until=row.paused_until,
        excluded=row.excluded,
        dispute=row.dispute,
        promise_to_pay=row.promise_to_pay_until,
        # a zone stored around the services that is unknown here: the client's decides (the planner would refuse it)
        time_zone=row.time_zone if row.time_zone and is_time_zone(row.time_zone) else None,
        holiday_country=country or None,
        holiday_subdiv=subdiv or None,
        cadence=(row.cadence or None) if cadence is None else (cadence or None),
        dispute_reason=row.dispute_reason or "",
        promise_amount=promised,
        promise_grace_days=max(row.promise_grace_days or 0, 0),
    )


def load_invoice_overrides(uow: UnitOfWork, connection_id: int) -> dict[str, InvoiceOverrides]:
    """Every invoice override of the connection that changes anything, by invoice external id (one query)."""
    found: dict[str, InvoiceOverrides] = {}
    for row in uow.session.execute(
        select(
            InvoiceOverride.invoice_external_id,
            InvoiceOverride.paused_until,
            InvoiceOverride.excluded,
            InvoiceOverride.dispute,
            InvoiceOverride.dispute_reason,
            InvoiceOverride.agreed_due_date,
        ).where(InvoiceOverride.connection_id == connection_id)
    ):
        over = InvoiceOverrides(row[1], bool(row[2]), bool(row[3]), row[4] or "", row[5])
        if over != NO_INVOICE_OVERRIDES:
            found[row[0]] = over
    return found


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
    `library` (a proposed change, in memory: the impact preview) replaces the organization's stored library.
    The client's settings and cadence apply as connector.outbox.client describes."""
    return client_states(
        uow, connection_id, rules, default_cadence=default_cadence, rates=rates, now=now, library=library
    )[0]


def client_states(
    uow: UnitOfWork,
    connection_id: int,
    rules: PolicySet,
    *,
    default_cadence: str = "",
    rates: ReferenceRates | None = None,
    now: datetime | None = None,
    library: OrgLibrary | None = None,
) -> tuple[list[PlanningState], ClientPlanning | None]:
    """`load_states` and the client's planning context (library, resolved cadence, notices) it was built with."""
    connection = uow.connections.by_id(connection_id)
    if connection is None:
        return [], None
    if library is None:
        library = library_for(uow, connection.organization_id, rules)
    rules = library.rules
    client = client_planning(
        uow, connection, connection_settings(connection, rates), library, default_cadence=default_cadence
    )
    settings = client.settings
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
    customers: dict[str, CustomerOverrides] = {}
    for row in uow.session.scalars(select(Customer).where(Customer.connection_id == connection_id)):
        name = client.cadence_name
        if row.cadence_id is not None or row.cadence:
            name = client.customer_cadence(row.external_id, row.cadence_id, row.cadence or "")
        found = overrides_of(row, "" if name == client.cadence_name else name)
        if found.promise_to_pay is not None:  # whether it was kept decides a "you promised" reminder (issue 17)
            found = replace(found, promise_payments=money.by_customer.get(row.external_id, ()))
        customers[row.external_id] = found
    history = load_history(uow, connection_id, settings.time_zone, money)
    plans = load_plans(uow, connection_id, settings.time_zone)
    invoice_overrides = load_invoice_overrides(uow, connection_id)
    by_cadence: dict[str, list[InvoiceSnapshot]] = defaultdict(list)
    for invoice in invoices:
        override = customers.get(invoice.customer_external_id)
        name = (override.cadence if override and override.cadence else None) or client.cadence_name
        by_cadence[name].append(invoice)
    states = []
    for name, members in sorted(by_cadence.items()):
        cadence = client.cadence(name)
        if cadence is None:  # the library has no cadence at all: nothing can be planned
            continue
        states.append(
            PlanningState(
                connection=settings,
                invoices=tuple(members),
                cadence=cadence,
                policies=rules,
                customers=customers,
                history=history,
                payment_plans=plans,
                unapplied_credit=money.unapplied,
                invoice_overrides=invoice_overrides,
            )
        )
    return states, client


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

        def make_plan() -> list[tuple[Action, int | None]]:
            return _make_plan(
                uow, connection, rules, now, default_cadence, rates, shared_calendars, through_next_send_day=in_review
            )

        actions = make_plan()
        if before_acting is not None and _acts(uow, [action for action, _ in actions]):
            uow.commit()  # no transaction stays open while the provider is asked
            if before_acting():
                actions = make_plan()
        # The review is the FIRST plan: while it waits, later turns add no new steps to it (approving it weeks later
        # must not release a backlog of steps at once; the cadence runs from the day it is approved).
        frozen = in_review and _has_waiting(uow, connection_id)
        planned = known = waiting = 0
        for action, version in actions:
            if frozen and action.kind != ActionKind.HOLD:
                continue
            # In review every action waits for a person, except holds: they only inform, nothing goes out.
            held = (
                action.requires_approval or connection.approval_mode or (in_review and action.kind != ActionKind.HOLD)
            )
            state = ActionState.AWAITING_APPROVAL if held else ActionState.PLANNED
            if _insert(uow, connection_id, action, state, version):
                planned += 1
                waiting += state is ActionState.AWAITING_APPROVAL
            else:
                known += 1
        uow.commit()
        return PlanReport(planned, known, waiting)


def _make_plan(
    uow: UnitOfWork,
    connection: Connection,
    rules: PolicySet,
    now: datetime,
    default_cadence: str,
    rates: ReferenceRates | None,
    calendars: Calendars,
    *,
    through_next_send_day: bool,
) -> list[tuple[Action, int | None]]:
    """The connection's plan now, each action with the library version of the cadence that planned it; tracks
    payment plans, cancels orphaned reversals and logs cadence fallbacks and ended promises on the way."""
    states, client = client_states(uow, connection.id, rules, default_cadence=default_cadence, rates=rates, now=now)
    if client is None:
        return []
    _track_plans(uow, connection.id, client.library.rules, now, client.settings.time_zone)
    _cancel_orphaned_reversals(uow, connection.id, states, now)
    _record_notices(uow, connection, client.notices, now)
    _record_promises(uow, connection, states, now)
    return [
        (action, client.version_of(state.cadence.name))
        for state in states
        for action in plan_state(state, now, calendars=calendars, through_next_send_day=through_next_send_day)
    ]


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


CADENCE_FALLBACK = "planning.cadence_fallback"
PROMISE_KEPT = "customer.promise_kept"
PROMISE_BROKEN = "customer.promise_broken"


def _record_notices(uow: UnitOfWork, connection: Connection, notices: list[Notice], now: datetime) -> None:
    """Log each cadence that did not resolve (and what chases instead) once, not on every plan: a notice is
    recorded again only when its text for that subject changed."""
    if not notices:
        return
    known = {
        (subject, (detail or {}).get("notice"))
        for subject, detail in uow.session.execute(
            select(Activity.subject, Activity.detail).where(
                Activity.connection_id == connection.id, Activity.kind == CADENCE_FALLBACK
            )
        )
    }
    for notice in dict.fromkeys(notices):
        if (notice.subject, notice.text) not in known:
            uow.activities.record(
                connection.organization_id,
                CADENCE_FALLBACK,
                notice.subject,
                connection_id=connection.id,
                detail={"notice": notice.text},
                actor="planner",
                at=now,
            )


def _record_promises(uow: UnitOfWork, connection: Connection, states: list[PlanningState], now: datetime) -> None:
    """Once a customer's promise to pay stops holding (its date + grace passed), log whether it was kept: the
    customer's payments dated on or before the promise date cover the promised amount."""
    if not states:
        return
    first = states[0]
    ended = {
        customer_id: over
        for customer_id, over in first.customers.items()
        if over.promise_waits_until is not None
        and over.promise_waits_until < now.astimezone(_zone_or(over.time_zone, first.connection.time_zone)).date()
    }
    if not ended:
        return
    recorded = {
        (subject, (detail or {}).get("promised_by"))
        for subject, detail in uow.session.execute(
            select(Activity.subject, Activity.detail).where(
                Activity.connection_id == connection.id, Activity.kind.in_((PROMISE_KEPT, PROMISE_BROKEN))
            )
        )
    }
    invoices_of: dict[str, list[str]] = defaultdict(list)
    for invoice_id, customer_id in uow.session.execute(
        select(Invoice.external_id, Invoice.customer_external_id).where(
            Invoice.connection_id == connection.id, Invoice.customer_external_id.in_(list(ended))
        )
    ):
        invoices_of[customer_id].append(invoice_id)
    facts = first.history.invoices
    for customer_id, over in sorted(ended.items()):
        assert over.promise_to_pay is not None
        if (customer_id, over.promise_to_pay.isoformat()) in recorded:
            continue
        payments = [
            p for invoice_id in invoices_of[customer_id] for p in facts.get(invoice_id, InvoiceFacts()).payments
        ]
        kept, paid = promise_kept(over, payments)
        uow.activities.record(
            connection.organization_id,
            PROMISE_KEPT if kept else PROMISE_BROKEN,
            customer_id,
            connection_id=connection.id,
            detail={
                "promised_by": over.promise_to_pay.isoformat(),
                "promised": str(over.promise_amount) if over.promise_amount is not None else "",
                "paid": ", ".join(str(amount) for amount in paid),
            },
            actor="planner",
            at=now,
        )


def _zone_or(name: str | None, fallback: str) -> ZoneInfo:
    """Zone `name`, else `fallback` (a customer's zone stored around the services may be unknown)."""
    return ZoneInfo(name) if name and is_time_zone(name) else ZoneInfo(fallback)


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


def plan_action(uow: UnitOfWork, connection_id: int, action: Action) -> bool:
    """Put one action people asked for (a statement email) in the outbox as planned; False when its key is
    already there (the same request twice: exactly once). The key is looked up first (PostgreSQL's rowcount of
    an insert that did nothing is not reliable here); two requests racing past that look-up still plan one action:
    the key's unique index keeps the second out."""
    already = uow.session.scalar(select(ActionRow.id).where(ActionRow.key == action.key))
    return already is None and _insert(uow, connection_id, action, ActionState.PLANNED)


def _insert(
    uow: UnitOfWork, connection_id: int, action: Action, state: ActionState, library_version_id: int | None = None
) -> bool:
    values = {
        "library_version_id": library_version_id,
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
