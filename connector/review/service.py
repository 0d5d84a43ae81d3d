"""The review listing and the approve / skip services (see the package docstring).

Everything reads and writes the outbox (`actions`): what waits is `awaiting_approval`; approving moves
it to `planned` (the executor carries it out when due), skipping to `skipped` (its key stays taken, so
planning never proposes it again). A connection in review becomes active (`chasing_since` = the
approval) when everything was approved at once, or when approvals and skips of single actions leave
nothing waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select

from connector.domain.actions import Action, ActionKind
from connector.domain.model import ActionState, InvoiceStatus
from connector.domain.money import Money
from connector.errors import NudgeError
from connector.library import audit
from connector.outbox.codec import action_from_json
from connector.outbox.planning import Chasing
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Invoice, Organization, SyncRun

# How each kind of action reads in the listing, in the order a customer's groups are shown.
KIND_LABELS: dict[ActionKind, str] = {
    ActionKind.REMIND: "reminder",
    ActionKind.NOTE: "ledger note",
    ActionKind.DISCOUNT_OFFER: "discount offer",
    ActionKind.DISCOUNT_CREDIT: "discount credit",
    ActionKind.LATE_FEE: "late fee",
    ActionKind.FEE_REVERSAL: "fee reversal",
    ActionKind.CALL_TASK: "call task",
    ActionKind.ESCALATE: "escalation",
    ActionKind.PLAN_BROKEN: "payment plan broken",
    ActionKind.HOLD: "hold",
}
_KIND_ORDER = {kind: index for index, kind in enumerate(KIND_LABELS)}
# Holds that still say something: not cancelled, not superseded by a person's decision.
_SHOWN_HOLD_STATES = (ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value, ActionState.DONE.value)
_SKIPPABLE = (ActionState.AWAITING_APPROVAL.value, ActionState.PLANNED.value)


class ReviewError(NudgeError):
    """A review, approval or skip cannot be done (unknown connection, managed elsewhere, unknown keys)."""


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice an action is about: its number, what is asked, how late it is (reminders)."""

    external_id: str
    number: str
    balance: Money | None = None
    days_overdue: int | None = None
    coming_up: bool = False  # listed in a grouped reminder before its due date


@dataclass(frozen=True)
class ReviewItem:
    """One action waiting for a person (or a hold, which only informs)."""

    key: str
    kind: ActionKind
    step_id: str
    local_date: date
    scheduled_at: datetime
    invoices: tuple[InvoiceLine, ...]
    amount: Money | None  # late fee, credit or reversal amount; a reminder's total asked (overdue only)
    rule: str
    recipients: tuple[str, ...] = ()
    detail: str = ""  # a discount offer's terms, a fee warning, a note's text


@dataclass(frozen=True)
class StepGroup:
    """A customer's waiting actions of one kind and one cadence step."""

    kind: ActionKind
    step_id: str
    items: tuple[ReviewItem, ...]

    @property
    def label(self) -> str:
        """The kind in words ("reminder", "late fee"...)."""
        return KIND_LABELS.get(self.kind, self.kind.value)


@dataclass(frozen=True)
class HeldItem:
    """An invoice Nudge holds back, and why."""

    key: str
    invoices: tuple[InvoiceLine, ...]
    reason: str
    rule: str


@dataclass(frozen=True)
class CurrencyTotals:
    """Per currency: the balance of the distinct overdue invoices reminders ask for, and the fees to charge."""

    currency: str
    reminded: Money
    fees: Money
    credits: Money


@dataclass(frozen=True)
class CustomerReview:
    """What would go out to (or be written for) one customer, and what is held."""

    customer_external_id: str
    name: str
    groups: tuple[StepGroup, ...]
    holds: tuple[HeldItem, ...]
    totals: tuple[CurrencyTotals, ...]

    @property
    def waiting(self) -> int:
        """How many actions wait for a decision."""
        return sum(len(group.items) for group in self.groups)


@dataclass(frozen=True)
class Review:
    """A connection's review: per customer, what waits for approval and what is held, with totals."""

    connection_id: int
    name: str
    provider: str
    chasing: str
    managed_by: str
    approval_mode: bool
    synced: bool  # at least one sync finished (or invoices are stored): "nothing waits" means something
    customers: tuple[CustomerReview, ...]
    totals: tuple[CurrencyTotals, ...]

    @property
    def waiting(self) -> int:
        """How many actions wait for a decision in all."""
        return sum(customer.waiting for customer in self.customers)

    @property
    def in_review(self) -> bool:
        """The onboarding review is open (nothing goes out until it is approved)."""
        return self.chasing == Chasing.REVIEW


@dataclass(frozen=True)
class ApprovalReport:
    """What an approve or skip did."""

    changed: tuple[str, ...]  # keys approved (or skipped)
    unknown: tuple[str, ...] = ()  # keys named that were not waiting (unknown, already decided, another connection's)
    review_ended: bool = False  # the connection left review and is now active
    still_waiting: int = 0


def review_of(store: Store, connection_id: int, *, org_id: int | None = None) -> Review:
    """The connection's review: waiting actions per customer grouped by step, holds, totals per currency.

    `org_id` scopes the look-up to one organization (the web); the CLI passes None.
    """
    with store.unit_of_work() as uow:
        connection = _connection(uow, connection_id, org_id)
        numbers = dict(
            uow.session.execute(
                select(Invoice.external_id, Invoice.number).where(Invoice.connection_id == connection_id)
            ).all()
        )
        open_ids = set(
            uow.session.scalars(
                select(Invoice.external_id).where(
                    Invoice.connection_id == connection_id, Invoice.status == InvoiceStatus.OPEN.value
                )
            )
        )
        synced = bool(numbers) or _has_synced(uow, connection_id)
        waiting = _actions(uow, connection_id, (ActionState.AWAITING_APPROVAL.value,), exclude=ActionKind.HOLD)
        holds = _actions(uow, connection_id, _SHOWN_HOLD_STATES, only=ActionKind.HOLD)
        managed_by = _organization_name(uow, connection.managed_by_organization_id)
        review = Review(
            connection_id=connection.id,
            name=connection.name,
            provider=connection.provider,
            chasing=connection.chasing,
            managed_by=managed_by,
            approval_mode=connection.approval_mode,
            synced=synced,
            customers=(),
            totals=(),
        )
    customers = _by_customer(waiting, _current_holds(holds, open_ids), numbers)
    return _with_customers(review, customers)


def approve(
    store: Store,
    connection_id: int,
    actor: str,
    now: datetime,
    keys: Collection[str] | None = None,
    *,
    org_id: int | None = None,
) -> ApprovalReport:
    """Release waiting actions into the outbox (planned): all of them (`keys` None) or the ones named.

    All at once also ends an open review: the connection becomes active with `chasing_since = now`
    ("review.approved"). Single keys record "action.approved" each; a review they leave with nothing
    waiting ends too. Keys that are not waiting for this connection are reported in `unknown`.
    """
    with store.unit_of_work() as uow:
        connection = _decidable(uow, connection_id, org_id)
        rows = _waiting_rows(uow, connection_id, keys)
        for row in rows:
            row.state = ActionState.PLANNED.value
            row.updated_at = now
        if keys is None and connection.chasing == Chasing.REVIEW:
            audit.record(
                uow,
                organization_id=connection.organization_id,
                actor=actor,
                at=now,
                entity="connection",
                entity_id=connection.id,
                change="update",
                before={"chasing": Chasing.REVIEW.value},
                after={"chasing": Chasing.ACTIVE.value, "approved": len(rows)},
                connection_id=connection.id,
            )
            uow.activities.record(
                connection.organization_id,
                "review.approved",
                connection.name,
                connection_id=connection.id,
                actor=actor,
                detail={"approved": len(rows)},
                at=now,
            )
            _start_chasing(connection, now)
            ended = True
        else:
            for row in rows:
                record_action_change(
                    uow,
                    connection,
                    row,
                    "action.approved",
                    actor,
                    now,
                    {"state": ActionState.AWAITING_APPROVAL.value},
                    {"state": row.state},
                )
            ended = bool(rows) and _end_review_if_done(uow, connection, actor, now)
        report = _report(uow, connection_id, rows, keys, ended)
        uow.commit()
        return report


def skip(
    store: Store,
    connection_id: int,
    keys: Collection[str],
    actor: str,
    now: datetime,
    *,
    org_id: int | None = None,
) -> ApprovalReport:
    """Drop the named actions for good (state skipped: never carried out, never planned again).

    Actions waiting for approval or planned and not started may be skipped. A review left with nothing
    waiting ends (the connection becomes active).
    """
    if not keys:
        raise ReviewError("name at least one action to skip (--action KEY)")
    with store.unit_of_work() as uow:
        connection = _decidable(uow, connection_id, org_id)
        rows = list(
            uow.session.scalars(
                select(ActionRow).where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.key.in_(list(keys)),
                    ActionRow.state.in_(_SKIPPABLE),
                )
            )
        )
        for row in rows:
            before = ActionState(row.state)
            row.state = ActionState.SKIPPED.value
            row.error = f"skipped by {actor}" if actor else "skipped"
            row.updated_at = now
            record_action_change(
                uow, connection, row, "action.skipped", actor, now, {"state": before.value}, {"state": row.state}
            )
        ended = bool(rows) and _end_review_if_done(uow, connection, actor, now)  # unknown keys end nothing
        report = _report(uow, connection_id, rows, keys, ended)
        uow.commit()
        return report


def record_action_change(
    uow: UnitOfWork,
    connection: Connection,
    row: ActionRow,
    kind: str,
    actor: str,
    now: datetime,
    before: Mapping[str, object],
    after: Mapping[str, object],
) -> None:
    """The activity and the audit entry of one person's operation on one action (approved, skipped, retried, …);
    the audit's `after` names the operation (`kind` without its "action." prefix)."""
    audit.record(
        uow,
        organization_id=connection.organization_id,
        actor=actor,
        at=now,
        entity="action",
        entity_id=row.id,
        change="update",
        before=before,
        after={**after, "operation": kind.removeprefix("action.")},
        connection_id=connection.id,
    )
    uow.activities.record(
        connection.organization_id,
        kind,
        row.key,
        connection_id=connection.id,
        actor=actor,
        detail={"kind": row.kind, "invoice": row.invoice_external_id, "customer": row.customer_external_id},
        at=now,
    )


# -- loading --------------------------------------------------------------------------------------------


def _connection(uow: UnitOfWork, connection_id: int, org_id: int | None) -> Connection:
    connection = uow.connections.by_id(connection_id) if org_id is None else uow.connections.get(org_id, connection_id)
    if connection is None:
        raise ReviewError(f"no connection with id {connection_id}")
    return connection


def _decidable(uow: UnitOfWork, connection_id: int, org_id: int | None) -> Connection:
    """The connection, if its actions are this organization's to decide (not managed elsewhere)."""
    connection = _connection(uow, connection_id, org_id)
    if connection.chasing == Chasing.MANAGED_ELSEWHERE:
        manager = _organization_name(uow, connection.managed_by_organization_id) or "another organization"
        raise ReviewError(f"{connection.name} is managed by {manager}: nothing here to approve or skip")
    return connection


def _has_synced(uow: UnitOfWork, connection_id: int) -> bool:
    count = uow.session.scalar(
        select(func.count(SyncRun.id)).where(SyncRun.connection_id == connection_id, SyncRun.outcome == "ok")
    )
    return bool(count)


def _organization_name(uow: UnitOfWork, org_id: int | None) -> str:
    organization = uow.session.get(Organization, org_id) if org_id is not None else None
    return organization.name if organization is not None else ""


def _actions(
    uow: UnitOfWork,
    connection_id: int,
    states: Iterable[str],
    *,
    only: ActionKind | None = None,
    exclude: ActionKind | None = None,
) -> list[Action]:
    query = select(ActionRow.payload).where(ActionRow.connection_id == connection_id, ActionRow.state.in_(list(states)))
    if only is not None:
        query = query.where(ActionRow.kind == only.value)
    if exclude is not None:
        query = query.where(ActionRow.kind != exclude.value)
    return [
        action_from_json(payload) for payload in uow.session.scalars(query.order_by(ActionRow.scheduled_at)) if payload
    ]


def _current_holds(holds: list[Action], open_ids: set[str]) -> list[Action]:
    """The latest hold per invoice (and reason), for invoices still open."""
    latest: dict[tuple[tuple[str, ...], str], Action] = {}
    for hold in holds:
        if not any(invoice in open_ids for invoice in hold.invoice_external_ids):
            continue
        reason = hold.hold_reason.value if hold.hold_reason else ""
        latest[(hold.invoice_external_ids, reason)] = hold  # ordered by scheduled_at: the last one wins
    return list(latest.values())


def _waiting_rows(uow: UnitOfWork, connection_id: int, keys: Collection[str] | None) -> list[ActionRow]:
    query = select(ActionRow).where(
        ActionRow.connection_id == connection_id, ActionRow.state == ActionState.AWAITING_APPROVAL.value
    )
    if keys is not None:
        if not keys:
            raise ReviewError("name at least one action to approve (--action KEY), or approve them all (--all)")
        query = query.where(ActionRow.key.in_(list(keys)))
    return list(uow.session.scalars(query))


def _still_waiting(uow: UnitOfWork, connection_id: int) -> int:
    count = uow.session.scalar(
        select(func.count(ActionRow.id)).where(
            ActionRow.connection_id == connection_id, ActionRow.state == ActionState.AWAITING_APPROVAL.value
        )
    )
    return int(count or 0)


def _start_chasing(connection: Connection, now: datetime) -> None:
    connection.chasing = Chasing.ACTIVE.value
    connection.chasing_since = now
    connection.next_run_at = now  # carry out what was approved at the next tick


def _end_review_if_done(uow: UnitOfWork, connection: Connection, actor: str, now: datetime) -> bool:
    """A review whose every action was approved or skipped one by one ends: the connection becomes active."""
    if connection.chasing != Chasing.REVIEW:
        return False
    uow.flush()
    if _still_waiting(uow, connection.id):
        return False
    uow.activities.record(
        connection.organization_id,
        "review.approved",
        connection.name,
        connection_id=connection.id,
        actor=actor,
        detail={"approved": "one by one"},
        at=now,
    )
    _start_chasing(connection, now)
    return True


def _report(
    uow: UnitOfWork, connection_id: int, rows: list[ActionRow], keys: Collection[str] | None, ended: bool
) -> ApprovalReport:
    changed = tuple(row.key for row in rows)
    unknown = tuple(sorted(set(keys or ()) - set(changed)))
    uow.flush()
    return ApprovalReport(changed, unknown, ended, _still_waiting(uow, connection_id))


# -- shaping -----------------------------------------------------------------------------------------------


def _by_customer(waiting: list[Action], holds: list[Action], numbers: dict[str, str]) -> list[CustomerReview]:
    names: dict[str, str] = {}
    grouped: dict[str, dict[tuple[ActionKind, str], list[ReviewItem]]] = defaultdict(lambda: defaultdict(list))
    held: dict[str, list[HeldItem]] = defaultdict(list)
    for action in waiting:
        names.setdefault(action.customer_external_id, action.customer_name)
        grouped[action.customer_external_id][(action.kind, action.step_id)].append(_item(action, numbers))
    for hold in holds:
        names.setdefault(hold.customer_external_id, hold.customer_name)
        held[hold.customer_external_id].append(
            HeldItem(
                key=hold.key,
                invoices=_lines(hold, numbers),
                reason=hold.hold_reason.value.replace("_", " ") if hold.hold_reason else "held",
                rule=hold.rule,
            )
        )
    customers = []
    for customer_id in sorted(names, key=lambda cid: (names[cid].lower(), cid)):
        groups = tuple(
            StepGroup(kind, step_id, tuple(items))
            for (kind, step_id), items in sorted(
                grouped[customer_id].items(),
                key=lambda entry: (entry[1][0].scheduled_at, _KIND_ORDER.get(entry[0][0], 99), entry[0][1]),
            )
        )
        items = [item for group in groups for item in group.items]
        customers.append(
            CustomerReview(
                customer_external_id=customer_id,
                name=names[customer_id] or customer_id,
                groups=groups,
                holds=tuple(held[customer_id]),
                totals=_totals(items),
            )
        )
    return customers


def _with_customers(review: Review, customers: list[CustomerReview]) -> Review:
    items = [item for customer in customers for group in customer.groups for item in group.items]
    return Review(
        connection_id=review.connection_id,
        name=review.name,
        provider=review.provider,
        chasing=review.chasing,
        managed_by=review.managed_by,
        approval_mode=review.approval_mode,
        synced=review.synced,
        customers=tuple(customers),
        totals=_totals(items),
    )


def _lines(action: Action, numbers: dict[str, str]) -> tuple[InvoiceLine, ...]:
    if action.items:
        return tuple(
            InvoiceLine(
                item.invoice_external_id,
                item.number or numbers.get(item.invoice_external_id, item.invoice_external_id),
                item.balance,
                item.days_overdue,
                coming_up=item.days_overdue < 0,
            )
            for item in action.items
        )
    return tuple(
        InvoiceLine(external_id, numbers.get(external_id, external_id)) for external_id in action.invoice_external_ids
    )


def _item(action: Action, numbers: dict[str, str]) -> ReviewItem:
    lines = _lines(action, numbers)
    amount = action.amount
    detail = action.text or ""
    if action.kind == ActionKind.REMIND:
        asked = [line.balance for line in lines if line.balance is not None and not line.coming_up]
        amount = _sum(asked) if asked else amount
        warnings = [
            f"announces a late fee: {item.fee_warning.description} from {item.fee_warning.applies_from.isoformat()}"
            for item in action.items
            if item.fee_warning is not None
        ]
        detail = "; ".join(dict.fromkeys(warnings)) or detail
    elif action.kind == ActionKind.NOTE and detail:
        detail = f'note: "{detail}"'
    if action.offer is not None and not detail:
        offer = action.offer
        detail = f"pay {_money(offer.pay_amount)} by {offer.deadline.isoformat()} ({offer.percent}% off)"
    return ReviewItem(
        key=action.key,
        kind=action.kind,
        step_id=action.step_id,
        local_date=action.local_date,
        scheduled_at=action.scheduled_at,
        invoices=lines,
        amount=amount,
        rule=action.rule,
        recipients=action.recipients if action.kind == ActionKind.REMIND else (),
        detail=detail,
    )


def _sum(amounts: list[Money]) -> Money | None:
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for amount in amounts:
        by_currency[amount.currency] += amount.amount
    if len(by_currency) != 1:
        return None  # one reminder in two currencies cannot be totalled in one figure
    ((currency, total),) = by_currency.items()
    return Money.of(total, currency)


@dataclass
class _Tally:
    reminded: dict[str, Decimal] = field(default_factory=dict)  # invoice id -> balance (distinct invoices)
    fees: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)


def _totals(items: list[ReviewItem]) -> tuple[CurrencyTotals, ...]:
    """Per currency: distinct overdue invoices' balance reminded, late fees to charge, credits to write."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for item in items:
        if item.kind == ActionKind.REMIND:
            for line in item.invoices:
                if line.balance is not None and not line.coming_up:
                    tallies[line.balance.currency].reminded[line.external_id] = line.balance.amount
        elif item.kind == ActionKind.LATE_FEE and item.amount is not None:
            tallies[item.amount.currency].fees += item.amount.amount
        elif item.kind in (ActionKind.DISCOUNT_CREDIT, ActionKind.FEE_REVERSAL) and item.amount is not None:
            tallies[item.amount.currency].credits += item.amount.amount
    return tuple(
        CurrencyTotals(
            currency,
            Money.of(sum(tally.reminded.values(), Decimal(0)), currency),
            Money.of(tally.fees, currency),
            Money.of(tally.credits, currency),
        )
        for currency, tally in sorted(tallies.items())
    )


def _money(amount: Money) -> str:
    return f"{amount.amount:,} {amount.currency}"
