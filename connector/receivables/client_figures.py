"""The client screen's figures beyond the overview's line: DSO week by week, money collected per week, what goes
out in the next days (queued in the outbox, and the planner's forecast if nobody pays) and the recent activity in
words. Each reads one client with a fixed number of statements, whatever its number of invoices or actions.

DSO week by week is rebuilt from what is stored now, as the overview's earlier figure is: at the end of each week,
the open balance is today's balance of the invoices issued by then plus the money applied to them since (voided
payments aside), and sales are the invoices issued in the 60 days that ended then; the last point is today's
figure, as `connector.receivables.reports.dso` computes it. Collected per week adds the customer money the ledger
dated in each week (payments, overpayments and prepayments, applied or not; credits are not money received), one
series per currency. Weeks start on Monday, on the client's calendar.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select

from connector.domain.actions import ActionKind
from connector.domain.dso import DEFAULT_PERIOD_DAYS, days_sales_outstanding
from connector.domain.fees import ReferenceRates
from connector.domain.model import ActionState, InvoiceStatus
from connector.domain.money import Money
from connector.domain.policy import PolicySet
from connector.outbox.attribution import CUSTOMER_MONEY
from connector.outbox.codec import action_from_json
from connector.outbox.planning import preview_connection
from connector.receivables.common import visible_connection
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Invoice, Payment

WEEKS = 12
UPCOMING_DAYS = 7
_SALES = (InvoiceStatus.OPEN.value, InvoiceStatus.PAID.value)
_WAITING = (ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value)
# Entries of the log that say nothing a person acts on: every turn of the worker, a step moved into the window.
QUIET_KINDS = ("connection.turn_started", "connection.turn_finished", "action.deferred")
KIND_WORDS = {
    ActionKind.REMIND.value: "Reminder",
    ActionKind.NOTE.value: "Note in the ledger",
    ActionKind.LATE_FEE.value: "Late fee",
    ActionKind.FEE_REVERSAL.value: "Late fee reversed",
    ActionKind.DISCOUNT_OFFER.value: "Early-payment discount offered",
    ActionKind.DISCOUNT_CREDIT.value: "Discount credited",
    ActionKind.CALL_TASK.value: "Call task",
    ActionKind.ESCALATE.value: "Escalation",
    ActionKind.HOLD.value: "Held",
    ActionKind.PLAN_BROKEN.value: "Payment plan broken",
}
_DONE_WORDS = {
    ActionKind.REMIND.value: "Reminder sent",
    ActionKind.NOTE.value: "Note written in the ledger",
    ActionKind.LATE_FEE.value: "Late fee added",
    ActionKind.FEE_REVERSAL.value: "Late fee reversed",
    ActionKind.DISCOUNT_OFFER.value: "Early-payment discount offered",
    ActionKind.DISCOUNT_CREDIT.value: "Discount credited",
    ActionKind.CALL_TASK.value: "Call task opened",
    ActionKind.ESCALATE.value: "Escalated",
    ActionKind.HOLD.value: "Held",
    ActionKind.PLAN_BROKEN.value: "Payment plan broken",
}
_EVENT_WORDS = {
    "action.failed": "Failed",
    "action.uncertain": "May not have gone out",
    "action.approved": "Approved",
    "action.skipped": "Skipped",
    "action.retried": "Retried",
    "action.marked_sent": "Marked as sent",
    "action.superseded": "Not carried out (the ledger record is gone)",
    "connection.connected": "Connected",
    "connection.reconnected": "Reconnected",
    "connection.disconnected": "Disconnected",
    "connection.disconnected_at_provider": "Disconnected at the provider",
    "connection.needs_reauth": "Reconnect needed",
    "connection.error": "Sync failed",
    "connection.managed_elsewhere": "Chased by another organization",
    "review.approved": "First plan approved",
    "task.opened": "Task opened",
    "task.completed": "Task completed",
    "sync.quarantined": "Invoice set aside by the sync",
    "client_settings.updated": "Client settings changed",
    "planning.cadence_fallback": "Cadence not found: another one chases",
    "customer.promise_kept": "Promise to pay kept",
    "customer.promise_broken": "Promise to pay broken",
}


@dataclass(frozen=True)
class DsoPoint:
    """DSO at the end of one day (None: no sales in the 60 days before it)."""

    day: date
    days: Decimal | None
    receivables: Money
    sales: Money


@dataclass(frozen=True)
class WeekAmount:
    """Money collected in one week (Monday `week`), in one currency."""

    week: date
    amount: Money


@dataclass(frozen=True)
class Collected:
    """Money collected per week in one currency, oldest week first."""

    currency: str
    weeks: tuple[WeekAmount, ...]

    @property
    def total(self) -> Money:
        """Everything collected over the weeks."""
        return Money.of(sum((week.amount.amount for week in self.weeks), Decimal(0)), self.currency)


@dataclass(frozen=True)
class UpcomingAction:
    """Something that goes out (or is written to the ledger) soon, in words: what, to whom, about which invoices."""

    at: datetime
    local_date: date
    kind: str
    what: str  # "Reminder (firm)", "Late fee", ...
    customer: str
    invoices: tuple[str, ...]  # invoice numbers
    amount: Money | None
    waits_for_approval: bool


@dataclass(frozen=True)
class Upcoming:
    """The next days: actions queued in the outbox, and the planner's forecast of what follows if nobody pays."""

    queued: tuple[UpcomingAction, ...]
    forecast: tuple[UpcomingAction, ...]
    held: int  # forecast holds (nothing goes out for those invoices: disputes, pauses, promises...)
    forecast_note: str = ""  # why there is no forecast, when there is none

    @property
    def counts(self) -> tuple[tuple[str, int], ...]:
        """How many of each kind, queued and forecast together, most first ("Reminder", 12)."""
        found = Counter(KIND_WORDS.get(item.kind, item.kind) for item in (*self.queued, *self.forecast))
        return tuple(sorted(found.items(), key=lambda pair: (-pair[1], pair[0])))


@dataclass(frozen=True)
class ActivityLine:
    """One entry of the client's recent activity, in words."""

    id: int
    at: datetime
    kind: str
    title: str
    detail: str
    actor: str


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def dso_trend(
    store: Store,
    org_id: int,
    connection_id: int,
    currency: str,
    today: date,
    *,
    connection_ids: Collection[int] | None = None,
    weeks: int = WEEKS,
    period_days: int = DEFAULT_PERIOD_DAYS,
) -> tuple[DsoPoint, ...]:
    """DSO in `currency` at the end of every seventh day back from `today` (the client's date), oldest first."""
    if not currency:
        return ()
    ends = [today - timedelta(days=7 * back) for back in range(weeks, -1, -1)]
    first = ends[0]
    period = timedelta(days=period_days)
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        invoices = uow.session.execute(
            select(Invoice.status, Invoice.issue_date, Invoice.total, Invoice.balance).where(
                Invoice.connection_id == connection_id,
                Invoice.currency == currency,
                Invoice.status.in_(_SALES),
                or_(Invoice.status == InvoiceStatus.OPEN.value, Invoice.issue_date > first - period),
            )
        ).all()
        applied = uow.session.execute(
            select(Payment.paid_on, Payment.amount, Invoice.issue_date)
            .join(
                Invoice,
                and_(
                    Invoice.connection_id == Payment.connection_id, Invoice.external_id == Payment.invoice_external_id
                ),
            )
            .where(
                Payment.connection_id == connection_id,
                Payment.voided.is_(False),
                Payment.invoice_external_id != "",
                Payment.paid_on > first,
                Invoice.currency == currency,
                Invoice.status.in_(_SALES),
            )
        ).all()
    open_invoices = [(on, _dec(balance)) for status, on, _t, balance in invoices if status == InvoiceStatus.OPEN.value]
    issued = [(on, _dec(total)) for _s, on, total, _b in invoices if on is not None]
    paid = [(paid_on, _dec(amount), on) for paid_on, amount, on in applied]
    points = []
    for end in ends:
        sales = sum((total for on, total in issued if end - period < on <= end), Decimal(0))
        if end == today:  # today's figure: every open invoice, as the DSO report counts it
            owed = sum((balance for _on, balance in open_invoices), Decimal(0))
        else:
            owed = sum((balance for on, balance in open_invoices if on is None or on <= end), Decimal(0))
            owed += sum(
                (amount for paid_on, amount, on in paid if paid_on > end and (on is None or on <= end)), Decimal(0)
            )
        points.append(
            DsoPoint(
                day=end,
                days=days_sales_outstanding(owed, sales, period_days) if sales > 0 else None,
                receivables=Money.of(owed, currency),
                sales=Money.of(sales, currency),
            )
        )
    return tuple(points)


def collected_per_week(
    store: Store,
    org_id: int,
    connection_id: int,
    today: date,
    *,
    connection_ids: Collection[int] | None = None,
    weeks: int = WEEKS,
    currencies: Iterable[str] = (),
) -> tuple[Collected, ...]:
    """Customer money dated in each of the last `weeks` weeks (the current one included), one series per currency
    that received any (and each of `currencies`, so a client's main currency shows even in a quiet spell)."""
    starts = [week_start(today) - timedelta(days=7 * back) for back in range(weeks - 1, -1, -1)]
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        rows = uow.session.execute(
            select(Payment.paid_on, Payment.currency, Payment.amount).where(
                Payment.connection_id == connection_id,
                Payment.kind.in_(CUSTOMER_MONEY),
                Payment.voided.is_(False),
                Payment.paid_on >= starts[0],
                Payment.paid_on <= today,
            )
        ).all()
    sums: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for wanted in currencies:  # an empty series for the client's own currency too
        if wanted:
            sums.setdefault(wanted, defaultdict(Decimal))
    for paid_on, currency, amount in rows:
        sums[currency][week_start(paid_on)] += _dec(amount)
    ordered = sorted(sums, key=lambda code: (code not in tuple(currencies)[:1], code))
    return tuple(
        Collected(code, tuple(WeekAmount(start, Money.of(sums[code].get(start, Decimal(0)), code)) for start in starts))
        for code in ordered
    )


def upcoming(
    store: Store,
    org_id: int,
    connection_id: int,
    now: datetime,
    rules: PolicySet,
    *,
    connection_ids: Collection[int] | None = None,
    rates: ReferenceRates | None = None,
    days: int = UPCOMING_DAYS,
) -> Upcoming:
    """What goes out over the next `days` days: actions queued in the outbox (approvals included), then the
    planner run forward as `nudge preview` does (what follows if nobody pays; nothing is sent)."""
    horizon = now + timedelta(days=days)
    with store.unit_of_work() as uow:
        connection = visible_connection(uow, org_id, connection_id, connection_ids)
        chasing, status = connection.chasing, connection.status
        queued_rows = list(
            uow.session.scalars(
                select(ActionRow)
                .where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.state.in_(_WAITING),
                    ActionRow.kind != ActionKind.HOLD.value,
                    ActionRow.scheduled_at < horizon,
                )
                .order_by(ActionRow.scheduled_at, ActionRow.id)
            )
        )
    note = ""
    forecast_rows: list[Any] = []
    if chasing == "managed_elsewhere":
        note = "Another organization chases this ledger: nothing is planned from here."
    elif status != "active":
        note = "Nothing goes out until the client is reconnected."
    else:
        forecast_rows = preview_connection(store, connection_id, rules, now, days, rates=rates)
    queued = [_queued(row) for row in queued_rows]
    held = sum(1 for row in forecast_rows if row.kind == ActionKind.HOLD.value)
    forecast = [row for row in forecast_rows if row.kind != ActionKind.HOLD.value and row.scheduled_at < horizon]
    numbers = _numbers(
        store, connection_id, {i for item in queued for i in item[1]} | {i for r in forecast for i in r.invoices}
    )
    return Upcoming(
        queued=tuple(
            UpcomingAction(
                at=row.scheduled_at,
                local_date=action.local_date if action is not None else row.scheduled_at.date(),
                kind=row.kind,
                what=_what(row.kind, _template_of(action)),
                customer=action.customer_name if action is not None else "",
                invoices=tuple(numbers.get(i, i) for i in ids),
                amount=action.amount if action is not None else None,
                waits_for_approval=row.state == ActionState.AWAITING_APPROVAL.value,
            )
            for (row, ids, action) in queued
        ),
        forecast=tuple(
            UpcomingAction(
                at=row.scheduled_at,
                local_date=row.local_date,
                kind=row.kind,
                what=_what(row.kind, row.template),
                customer=row.customer,
                invoices=tuple(numbers.get(i, i) for i in row.invoices),
                amount=row.amount,
                waits_for_approval=row.requires_approval or chasing == "review",
            )
            for row in forecast
        ),
        held=held,
        forecast_note=note,
    )


def _queued(row: ActionRow) -> tuple[ActionRow, tuple[str, ...], Any]:
    action = action_from_json(row.payload) if row.payload else None
    if action is None:
        return row, ((row.invoice_external_id,) if row.invoice_external_id else ()), None
    ids = tuple(dict.fromkeys([*action.invoice_external_ids, *(item.invoice_external_id for item in action.items)]))
    return row, ids, action


def _template_of(action: Any) -> str | None:
    """The template a reminder is written with (a grouped reminder keeps it on its items)."""
    if action is None:
        return None
    return action.template or (action.items[0].template if action.items else None)


def _what(kind: str, template: str | None) -> str:
    """What an action is, in words: "Reminder (firm)", "Late fee", ..."""
    words = KIND_WORDS.get(kind, kind.replace("_", " ").capitalize())
    if kind == ActionKind.REMIND.value and template:
        return f"{words} ({template_name(template)})"
    return words


def template_name(template: str) -> str:
    """A template's name as people read it ("final_notice" -> "final notice")."""
    return template.replace("_", " ")


def _numbers(store: Store, connection_id: int, external_ids: Collection[str]) -> dict[str, str]:
    """Invoice numbers by the ledger's id (one statement)."""
    if not external_ids:
        return {}
    with store.unit_of_work() as uow:
        return {
            external_id: number or external_id
            for external_id, number in uow.session.execute(
                select(Invoice.external_id, Invoice.number).where(
                    Invoice.connection_id == connection_id, Invoice.external_id.in_(sorted(external_ids))
                )
            )
        }


def recent_activity(
    store: Store,
    org_id: int,
    connection_id: int,
    *,
    connection_ids: Collection[int] | None = None,
    limit: int = 12,
) -> tuple[ActivityLine, ...]:
    """The client's latest `limit` log entries people care about (not every worker turn), newest first, in words."""
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        rows = list(
            uow.session.scalars(
                select(Activity)
                .where(
                    Activity.organization_id == org_id,
                    Activity.connection_id == connection_id,
                    Activity.kind.not_in(QUIET_KINDS),
                )
                .order_by(Activity.at.desc(), Activity.id.desc())
                .limit(limit)
            )
        )
        keys = {row.subject for row in rows if row.kind.startswith("action.") and row.subject}
        actions = {
            row.key: row
            for row in (
                uow.session.scalars(
                    select(ActionRow).where(ActionRow.connection_id == connection_id, ActionRow.key.in_(sorted(keys)))
                )
                if keys
                else []
            )
        }
    decoded = {key: action_from_json(row.payload) for key, row in actions.items() if row.payload}
    wanted = {invoice for action in decoded.values() for invoice in action.invoice_external_ids if not action.items} | {
        str(row.detail.get("invoice")) for row in rows if (row.detail or {}).get("invoice")
    }
    numbers = _numbers(store, connection_id, wanted)
    return tuple(_line(row, decoded.get(row.subject), actions.get(row.subject), numbers) for row in rows)


def _line(row: Activity, action: Any, action_row: ActionRow | None, numbers: dict[str, str]) -> ActivityLine:
    detail: dict[str, Any] = dict(row.detail or {})
    if row.kind.startswith("action.") and (action is not None or detail.get("kind")):
        title, text = _action_words(row.kind, detail, action, action_row, numbers)
        return ActivityLine(row.id, row.at, row.kind, title, text, row.actor)
    title = _EVENT_WORDS.get(row.kind, row.kind.replace(".", " ").replace("_", " ").capitalize())
    text = ""
    if row.kind.startswith("task."):
        title = f"{title}: {row.subject}"
        text = str(detail.get("outcome") or "")
    elif row.kind in ("connection.error", "connection.needs_reauth"):
        text = str(detail.get("error") or detail.get("reason") or "")
    elif row.kind == "review.approved" and detail.get("approved") is not None:
        text = f"{detail['approved']} actions approved"
    elif row.subject and row.kind not in ("connection.connected", "connection.reconnected"):
        text = row.subject
    return ActivityLine(row.id, row.at, row.kind, title, text, row.actor)


def _action_words(
    kind: str, detail: dict[str, Any], action: Any, action_row: ActionRow | None, numbers: dict[str, str]
) -> tuple[str, str]:
    """(title, detail) of an action's log entry: "Reminder sent (firm) to Acme", "INV-1, INV-2"."""
    action_kind = action.kind.value if action is not None else str(detail.get("kind", ""))
    event = kind.removeprefix("action.")
    if event == action_kind:  # the executor's record of the action carried out
        title = _DONE_WORDS.get(action_kind, "Action carried out")
    else:
        happened = _EVENT_WORDS.get(kind, event.replace("_", " ").capitalize())
        title = f"{happened}: {KIND_WORDS.get(action_kind, action_kind).lower()}"
    if action is not None:
        invoices = [item.number for item in action.items] or [numbers.get(i, i) for i in action.invoice_external_ids]
        template = _template_of(action)
        if action_kind == ActionKind.REMIND.value and template:
            title = f"{title} ({template_name(template)})"
        if action.customer_name:
            joiner = "to" if action_kind == ActionKind.REMIND.value else "for"
            title = f"{title} {joiner} {action.customer_name}"
    else:
        invoice = str(detail.get("invoice") or "")
        invoices = [numbers.get(invoice, invoice)] if invoice else []
    text = ", ".join(invoices)
    error = str(detail.get("error") or (action_row.error if action_row is not None else "") or "")
    if error and kind in ("action.failed", "action.uncertain"):
        text = f"{text} — {error}" if text else error
    return title, text


def _dec(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
