"""The planner: which actions are due, given invoices, overrides, a cadence, policies, history and `now`.

Time zones: a step's moment is computed in the customer's zone (their override, else the cadence's,
else the connection's) from the invoice's due date (a local date); `now` and every `scheduled_at` are
aware UTC instants; `local_date` and fee assessment dates are dates in the customer's zone.

Rules (docs/design.md "Cadences"):
- each step fires at the cadence's send time on its nominal day, moved to the next send day (window
  weekday, not a public holiday); an overdue moment moves to the next moment inside the window;
- per invoice, two tracks - contact (remind, note, discount offer, call task, escalate) and fees -
  each fire only their LATEST due step (missed steps never burst); recurring fees are occurrences of their step;
- an invoice that came into Nudge's care late (first seen, or chasing started, after its due date and its
  first reminder step) is first contacted by the earliest reminder step after the due date whose tone fits
  a first contact; the steps before it never fire, the later ones follow at the cadence's own spacing
  (`catch_up: latest`: shifted to start that day; `skip`: on their own days) (`_catch_up`);
- no fee without warning: reminders carry a `FeeWarning` for the invoice's next fee; a fee is planned only
  once a SENT reminder announced it `warning_days` before (`History` keeps `fee_warned_on`), and interest
  accrues from that warning (unless the policy says `accrue_before_connected` / `warning_required: false`);
- reminders of one customer on one local day become one grouped reminder; a customer already
  reminded on that day waits for the next;
- stop conditions (dispute, paused, excluded, promise to pay, below minimum, covered by unapplied
  credit, unknown cadence) turn what would go out into a `hold` naming the reason;
- keys hash (connection, invoice or customer, step, due date, kind, occurrence; for a fee re-created
  after its ledger record was deleted, its generation, see `recreate_deleted`): a changed due date
  starts a fresh cycle; an escalation stops further contact steps; a kept payment plan replaces the
  cadence by installment reminders and pauses fees; a broken one resumes the cadence.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from zoneinfo import ZoneInfo

from connector.domain.actions import (
    LEDGER_KINDS,
    NO_FACTS,
    Action,
    ActionKind,
    BrokenPromise,
    DiscountOffer,
    FeeDetail,
    FeeWarning,
    History,
    HoldReason,
    InvoiceFacts,
    ReminderItem,
    action_key,
    group_key,
    key_from,
    key_prefix,
    key_tail,
)
from connector.domain.calendar import Calendars, Schedule, add_months, zone
from connector.domain.fees import (
    ReferenceRates,
    annual_rate_for,
    assess_fee,
    discount_amount,
    discount_credit,
    discount_deadline,
    fee_reversal,
    uk_compensation,
)
from connector.domain.model import (
    NO_INVOICE_OVERRIDES,
    NO_OVERRIDES,
    CustomerOverrides,
    InvoiceOverrides,
    InvoiceSnapshot,
    InvoiceStatus,
    Payment,
    PaymentPlan,
)
from connector.domain.money import Money
from connector.domain.payment_plans import plan_status
from connector.domain.policy import (
    STATEMENT_TEMPLATE,
    Approval,
    Cadence,
    CatchUp,
    DayKind,
    DiscountPolicy,
    FeeKind,
    LateFeePolicy,
    PolicySet,
    Step,
    Tone,
    WriteBack,
    tone_of,
)

_ZERO_DELTA = timedelta(0)
# How far before a promise-to-pay date a payment still counts towards keeping it (`promise_kept`).
PROMISE_LOOKBACK = timedelta(days=30)
# How `plan` orders the actions of one send moment and customer (`_in_plan_order`); `kind` is a StrEnum, so it
# orders as its value does.
_BUCKET_ORDER = attrgetter("kind", "invoice_external_ids", "key")
# How a grouped reminder lists its invoices, and which member leads it (after the latest step: most overdue).
_ITEM_ORDER = attrgetter("due_date", "number", "invoice_external_id")
_ITEM_PRECEDENCE = attrgetter("days_overdue", "invoice_external_id")


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Per-connection planning settings: id (part of every key), default IANA zone, approval mode
    (every action waits for a user), the statutory reference rates from config, the local date Nudge
    started chasing the ledger (the onboarding review's approval; None while the review is open: today
    is assumed), and the ledger's own holiday calendar (used by cadences that name none)."""

    connection_id: str
    time_zone: str = "UTC"
    approval_mode: bool = False
    rates: ReferenceRates = field(default_factory=ReferenceRates)
    started_on: date | None = None
    holiday_country: str | None = None
    holiday_subdiv: str | None = None


@dataclass(frozen=True, slots=True)
class _Event:
    fire_at: datetime
    step: Step
    occurrence: int
    due_date: date  # the date the key counts from (installment date for payment plans)
    amount: Money | None = None  # installment still due
    installment: int | None = None
    generation: int = 0  # late fees: earlier keys superseded because their ledger record was deleted
    # Derived once per cadence step and due date, shared by every invoice due that day: the key tail of
    # each part (`key_tail`; none for installment events) and the local date of `fire_at`.
    tails: Mapping[ActionKind, str] | None = field(default=None, compare=False, repr=False)
    local: date | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _CatchUp:
    """An invoice first contacted late: contact starts at step index `first` (id `step_id`), every step
    `shift` days after its nominal day."""

    first: int
    shift: int
    step_id: str


@dataclass(frozen=True, slots=True)
class _NoFirstContact:
    """The cadence has no step that may be the first contact of an overdue invoice."""

    cadence: str


@dataclass(slots=True)
class _Tracks:
    contact: list[_Event]
    contact_fires: list[datetime]
    fees: list[_Event]
    fee_fires: list[datetime]
    # The latest event due on each track (`_Planner._due`), the same for every invoice sharing these tracks
    # (same schedule, so the same limit and next send slot); None: nothing due; computed on first use.
    contact_due: tuple[_Event, datetime] | None = None
    fee_due: tuple[_Event, datetime] | None = None
    due_known: bool = False


@dataclass(slots=True)
class _CadenceInfo:
    cadence: Cadence
    contact_steps: list[Step]
    fee_steps: list[tuple[Step, LateFeePolicy]]
    discounts: list[tuple[DiscountPolicy, list[Step]]]
    escalate_steps: list[Step]
    order: dict[str, int]  # step id -> position (steps are in increasing order of offset)
    reminder_steps: list[Step]  # steps that email the customer, in order
    # (due date, contact step id) -> key tails of the escalations before that step (memo of `_escalations_before`)
    escalation_tails: dict[tuple[date, str], tuple[str, ...]] = field(default_factory=dict)
    wheres: dict[str, str] = field(default_factory=dict)  # step id -> how a step action's rule names its step


@dataclass(slots=True)
class _Customer:
    external_id: str
    overrides: CustomerOverrides
    info: _CadenceInfo | None
    schedule: Schedule | None
    schedule_key: tuple[object, ...]
    tracks: dict[object, _Tracks]
    today: date
    now_slot: datetime | None
    holds: list[tuple[HoldReason, str, str]]
    credit: Money | None
    limit: datetime  # plan events firing up to here: `now` + horizon, or the close of the next send day


@dataclass(slots=True)
class _Digest:
    """The reminders queued for one customer on one local day, member by member in parallel lists: one
    object per digest rather than one per member (a cold plan queues one per open invoice, and every
    object that outlives a garbage-collector generation makes the next full collection longer)."""

    items: list[ReminderItem] = field(default_factory=list)
    scheduled: list[datetime] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)  # which member leads: the latest step (installments last)
    emails: list[tuple[str, ...]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, scheduled: datetime, item: ReminderItem, rank: int, emails: tuple[str, ...], name: str) -> None:
        self.items.append(item)
        self.scheduled.append(scheduled)
        self.ranks.append(rank)
        self.emails.append(emails)
        self.names.append(name)


class _Planner:
    """One planning run; holds memo tables that are pure functions of the inputs."""

    def __init__(
        self,
        cadence: Cadence,
        policies: PolicySet,
        history: History,
        now: datetime,
        connection: ConnectionSettings,
        overrides: Mapping[str, CustomerOverrides],
        payment_plans: Mapping[str, PaymentPlan],
        unapplied_credit: Mapping[str, Money],
        horizon: timedelta,
        calendars: Calendars,
        through_next_send_day: bool = False,
        invoice_overrides: Mapping[str, InvoiceOverrides] | None = None,
    ) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        if horizon < _ZERO_DELTA:
            raise ValueError("horizon must not be negative")
        self.cadence = cadence
        self.policies = policies
        self.history = history
        self.keys = history.keys
        self.now = now.astimezone(UTC)
        self.limit = self.now + horizon
        self.connection = connection
        self.conn_id = connection.connection_id
        self.overrides = overrides
        self.payment_plans = payment_plans
        self.unapplied_credit = unapplied_credit
        self.calendars = calendars
        self.through_next_send_day = through_next_send_day
        self.invoice_overrides = invoice_overrides or {}
        self.actions: list[Action] = []
        self.reminders: dict[tuple[str, date], _Digest] = {}
        self._customers: dict[str, _Customer] = {}
        self._infos: dict[str, _CadenceInfo] = {}
        self._schedules: dict[tuple[object, ...], Schedule] = {}
        self._tracks: dict[tuple[object, ...], dict[object, _Tracks]] = {}
        self._slots: dict[tuple[object, ...], datetime] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._catch_ups: dict[tuple[object, ...], _CatchUp | _NoFirstContact | None] = {}
        self._warnings: dict[tuple[object, ...], FeeWarning] = {}
        self._amounts: dict[tuple[int, str], Money] = {}

    # -- per-cadence and per-customer context ------------------------------------------------------

    def _info(self, cadence: Cadence) -> _CadenceInfo:
        found = self._infos.get(cadence.name)
        if found is None or found.cadence is not cadence:
            contact = [s for s in cadence.steps if s.remind or s.note or s.discount or s.call_task or s.escalate]
            fee_steps = [
                (s, self.policies.late_fees[s.late_fee])
                for s in cadence.steps
                if s.late_fee is not None and s.late_fee in self.policies.late_fees
            ]
            by_discount: dict[str, list[Step]] = {}
            for s in cadence.steps:
                if s.discount is not None and s.discount in self.policies.discounts:
                    by_discount.setdefault(s.discount, []).append(s)
            discounts = [(self.policies.discounts[name], steps) for name, steps in by_discount.items()]
            escalate = [s for s in cadence.steps if s.escalate]
            order = {step.id: index for index, step in enumerate(cadence.steps)}
            reminders = [s for s in cadence.steps if s.remind]
            found = _CadenceInfo(cadence, contact, fee_steps, discounts, escalate, order, reminders)
            self._infos[cadence.name] = found
        return found

    def _customer(self, customer_id: str) -> _Customer:
        found = self._customers.get(customer_id)
        if found is not None:
            return found
        over = self.overrides.get(customer_id, NO_OVERRIDES)
        cadence, holds = self._customer_cadence(over)
        tz_name = over.time_zone or (cadence.time_zone if cadence else None) or self.connection.time_zone
        tz = self._zone(tz_name)
        today = self.now.astimezone(tz).date()
        info = schedule = slot = None
        key: tuple[object, ...] = ()
        limit = self.limit
        if cadence is not None:
            info = self._info(cadence)
            key, schedule = self._schedule(cadence, over, tz_name, tz)
            slot = self._slots[key]
            if self.through_next_send_day:
                limit = max(limit, schedule.next_window_close(self.now))
        holds.extend(_override_holds(over, today))
        found = _Customer(
            customer_id,
            over,
            info,
            schedule,
            key,
            self._tracks.setdefault(key, {}),
            today,
            slot,
            holds,
            self.unapplied_credit.get(customer_id),
            limit,
        )
        self._customers[customer_id] = found
        return found

    def _customer_cadence(self, over: CustomerOverrides) -> tuple[Cadence | None, list[tuple[HoldReason, str, str]]]:
        """The customer's cadence (their override, else the connection's), and a hold when it does not exist."""
        if over.cadence is None or over.cadence == self.cadence.name:
            return self.cadence, []
        cadence = self.policies.cadences.get(over.cadence)
        if cadence is not None:
            return cadence, []
        return None, [
            (HoldReason.UNKNOWN_CADENCE, over.cadence, f"the customer's cadence {over.cadence!r} does not exist")
        ]

    def _zone(self, tz_name: str) -> ZoneInfo:
        """The zone named `tz_name`, loaded once per plan."""
        tz = self._zones.get(tz_name)
        if tz is None:
            tz = zone(tz_name)
            self._zones[tz_name] = tz
        return tz

    def _schedule(
        self, cadence: Cadence, over: CustomerOverrides, tz_name: str, tz: ZoneInfo
    ) -> tuple[tuple[object, ...], Schedule]:
        """The schedule (and its cache key) of `cadence` in the customer's zone and holiday calendar.

        Customers that share cadence, zone and calendar share one schedule, one next send slot and one
        set of per-due-date tracks.
        """
        country: str | None
        if over.holiday_country:
            country, subdiv = over.holiday_country, over.holiday_subdiv
        elif cadence.holidays is not None:
            country, subdiv = cadence.holidays.country, cadence.holidays.subdiv
        else:  # the ledger's own country (from QuickBooks / Xero), else no holidays
            country, subdiv = self.connection.holiday_country, self.connection.holiday_subdiv
        key = (cadence.name, id(cadence), tz_name, country, subdiv)
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = Schedule(
                tz=tz,
                window=cadence.window,
                send_time=cadence.send_time,
                holidays=self.calendars.get(country, subdiv),
                business_weekdays=cadence.business_weekdays,
            )
            self._schedules[key] = schedule
            self._slots[key] = schedule.next_allowed(self.now)
        return key, schedule

    def _tracks_for(self, cust: _Customer, due: date, catch: _CatchUp | None = None) -> _Tracks:
        """The contact and fee events of an invoice due on `due`; a catch-up drops the contact steps before
        its first-contact step and moves every later step (and the fees) by its shift."""
        memo = due if catch is None else (due, catch.first, catch.shift)
        found = cust.tracks.get(memo)
        if found is not None:
            return found
        schedule = cust.schedule
        info = cust.info
        assert schedule is not None
        assert info is not None
        first, shift = (0, _ZERO_DELTA) if catch is None else (catch.first, timedelta(days=catch.shift))
        contact: list[tuple[datetime, int, _Event]] = []
        for index, step in enumerate(info.cadence.steps):
            if step in info.contact_steps and index >= first:
                nominal = _nominal(schedule, due, step) + shift
                fire = schedule.fire_at(nominal)
                tails = _contact_tails(step, due, 0)
                event = _Event(fire, step, 0, due, tails=tails, local=schedule.local_date(fire))
                contact.append((fire, index, event))
        fees: list[tuple[datetime, int, _Event]] = []
        for index, (step, policy) in enumerate(info.fee_steps):
            first_fee = _nominal(schedule, due, step) + shift
            for occurrence in range(policy.max_count):
                if occurrence == 0:
                    nominal = first_fee
                elif policy.recurrence is not None and policy.recurrence.monthly:
                    nominal = add_months(first_fee, occurrence)
                else:
                    assert policy.recurrence is not None
                    nominal = first_fee + timedelta(days=policy.recurrence.every_days * occurrence)
                fire = schedule.fire_at(nominal)
                tails = {ActionKind.LATE_FEE: key_tail(step.id, due, ActionKind.LATE_FEE, occurrence)}
                event = _Event(fire, step, occurrence, due, tails=tails, local=schedule.local_date(fire))
                fees.append((fire, index * 1000 + occurrence, event))
        contact.sort(key=lambda t: (t[0], t[1]))
        fees.sort(key=lambda t: (t[0], t[1]))
        found = _Tracks(
            [e for _, _, e in contact], [f for f, _, _ in contact], [e for _, _, e in fees], [f for f, _, _ in fees]
        )
        cust.tracks[memo] = found
        return found

    def _catch_up(
        self, cust: _Customer, inv: InvoiceSnapshot, facts: InvoiceFacts
    ) -> _CatchUp | _NoFirstContact | None:
        """How an invoice that came into Nudge's care already overdue is first contacted.

        It came in on the later of its first sync and the day chasing started (the review's approval).
        When that is after its due date and after the cadence's first reminder, the first contact is the
        earliest reminder step after the due date whose tone fits a first contact (never final, never an
        escalation); the steps before it never fire and the cadence continues from there at its own
        spacing (`latest`: shifted so that step falls on the day it came in; `skip`: the step on its own
        day). None: not late, the cadence runs as written.
        """
        entered = facts.first_seen
        started = self.connection.started_on
        if started is not None and (entered is None or started > entered):
            entered = started
        info = cust.info
        schedule = cust.schedule
        if entered is None or info is None or schedule is None or not info.reminder_steps:
            return None
        assert inv.due_date is not None
        due = inv.due_date
        if entered <= due:
            return None
        memo_key = (cust.schedule_key, due, entered)
        found = self._catch_ups.get(memo_key)
        if found is not None or memo_key in self._catch_ups:
            return found
        first_day = schedule.local_date(schedule.fire_at(_nominal(schedule, due, info.reminder_steps[0])))
        result: _CatchUp | _NoFirstContact | None = None
        if first_day < entered:
            skip = info.cadence.catch_up is CatchUp.SKIP
            fitting = [
                (step, nominal)
                for step in info.reminder_steps
                if step.offset >= 1 and not step.escalate and tone_of(step) is not Tone.FINAL
                for nominal in (_nominal(schedule, due, step),)
                if not skip or nominal >= entered
            ]
            if not fitting:
                result = _NoFirstContact(info.cadence.name)
            else:
                step, nominal = fitting[0]
                shift = 0 if skip else max(0, (entered - nominal).days)
                result = _CatchUp(info.order[step.id], shift, step.id)
        self._catch_ups[memo_key] = result
        return result

    def _latest(
        self, cust: _Customer, events: list[_Event], fires: list[datetime], facts: InvoiceFacts
    ) -> tuple[_Event, datetime] | None:
        """The latest event due by the customer's limit and when it goes out, unless `skip` drops it."""
        latest = self._due(cust, events, fires)
        if latest is not None and self._skipped(cust, latest[0], facts):
            return None
        return latest

    def _latest_events(
        self, cust: _Customer, tracks: _Tracks, facts: InvoiceFacts
    ) -> tuple[tuple[_Event, datetime] | None, tuple[_Event, datetime] | None]:
        """`_latest` of the contact track and of the fee track, the part shared by every invoice with these
        tracks worked out once."""
        if not tracks.due_known:
            tracks.contact_due = self._due(cust, tracks.contact, tracks.contact_fires) if tracks.contact else None
            tracks.fee_due = self._due(cust, tracks.fees, tracks.fee_fires) if tracks.fees else None
            tracks.due_known = True
        contact = tracks.contact_due
        fee = tracks.fee_due
        if facts.first_seen is not None:
            if contact is not None and self._skipped(cust, contact[0], facts):
                contact = None
            if fee is not None and self._skipped(cust, fee[0], facts):
                fee = None
        return contact, fee

    def _due(self, cust: _Customer, events: list[_Event], fires: list[datetime]) -> tuple[_Event, datetime] | None:
        """The latest of `events` (firing at `fires`) due by the customer's limit, and when it goes out."""
        index = bisect_right(fires, cust.limit) - 1
        if index < 0:
            return None
        event = events[index]
        if event.fire_at >= self.now:
            scheduled = event.fire_at
        else:
            assert cust.now_slot is not None
            scheduled = cust.now_slot
            if scheduled > cust.limit:
                return None
        return event, scheduled

    @staticmethod
    def _skipped(cust: _Customer, event: _Event, facts: InvoiceFacts) -> bool:
        """`catch_up: skip`: an event whose local day is before the invoice was first seen never fires."""
        if (
            cust.info is None
            or cust.info.cadence.catch_up is not CatchUp.SKIP
            or facts.first_seen is None
            or cust.schedule is None
        ):
            return False
        local = event.local if event.local is not None else cust.schedule.local_date(event.fire_at)
        return local < facts.first_seen

    # -- the run --------------------------------------------------------------------------------------

    def run(self, invoices: Iterable[InvoiceSnapshot]) -> list[Action]:
        facts_of = self.history.invoices
        customers = self._customers
        for inv in invoices:
            facts = facts_of.get(inv.external_id, NO_FACTS)
            if facts.fees:
                self._reversals(inv, facts)
            if inv.status is not InvoiceStatus.OPEN or inv.due_date is None or inv.balance.amount <= 0:
                continue
            cust = customers.get(inv.customer_external_id) or self._customer(inv.customer_external_id)
            self._plan_open(cust, inv, inv.due_date, facts)
        self._group_reminders()
        return _in_plan_order(self.actions)

    def _plan_open(self, cust: _Customer, inv: InvoiceSnapshot, due: date, facts: InvoiceFacts) -> None:
        """Plan what is due for one open invoice (due on `due`) with money owed."""
        if cust.info is None:
            self._hold(cust, inv, "cadence", due, self.now, cust.holds[0])
            return
        if facts.payments and cust.info.discounts and self._discount_credit(cust, inv, facts):
            return
        accrual_floor: date | None = None
        plan_obj = self.payment_plans.get(inv.external_id) if self.payment_plans else None
        if plan_obj is not None:
            handled, accrual_floor = self._payment_plan(cust, inv, facts, plan_obj)
            if handled:
                return
        catch: _CatchUp | None = None
        if facts.first_seen is not None or self.connection.started_on is not None:  # else never late: no catch-up
            late = self._catch_up(cust, inv, facts)
            if isinstance(late, _NoFirstContact):
                self._no_first_contact(cust, inv, late)
                return
            catch = late
        tracks = (cust.tracks.get(due) if catch is None else None) or self._tracks_for(cust, due, catch)
        contact, fee = self._latest_events(cust, tracks, facts)
        if contact is not None or fee is not None:
            self._emit(cust, inv, facts, tracks, contact, fee, accrual_floor, catch)

    def _approval(self, kind: ActionKind, cadence: Cadence | None) -> bool:
        if kind is ActionKind.HOLD:
            return False
        if self.connection.approval_mode:
            return True
        if cadence is None:
            return False
        return cadence.approval is Approval.ALL or (cadence.approval is Approval.LEDGER and kind in LEDGER_KINDS)

    def _action(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        kind: ActionKind,
        key: str,
        step_id: str,
        due: date | None,
        scheduled: datetime,
        rule: str,
        local: date | None = None,
        **extra: object,
    ) -> None:
        """Plan one action of an invoice (`local`: the local date of `scheduled`, when the caller knows it)."""
        if local is None:
            local = self._local(cust, scheduled)
        self.actions.append(
            Action(
                key=key,
                kind=kind,
                connection_id=self.conn_id,
                customer_external_id=inv.customer_external_id,
                invoice_external_ids=(inv.external_id,),
                scheduled_at=scheduled,
                local_date=local,
                step_id=step_id,
                rule=rule,
                due_date=due,
                customer_name=inv.customer_name,
                recipients=inv.emails,
                requires_approval=self._approval(kind, cust.info.cadence if cust.info else None),
                **extra,  # type: ignore[arg-type]
            )
        )

    def _hold(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        step_id: str,
        due: date,
        scheduled: datetime,
        hold: tuple[HoldReason, str, str],
    ) -> None:
        reason, param, text = hold
        key = action_key(self.conn_id, inv.external_id, step_id, due, ActionKind.HOLD, f"{reason}:{param}")
        if key in self.keys:
            return
        self._action(
            cust,
            inv,
            ActionKind.HOLD,
            key,
            step_id,
            due,
            scheduled,
            f"held: {text}; step {step_id!r} would be due",
            hold_reason=reason,
            text=text,
        )

    def _invoice_holds(self, cust: _Customer, inv: InvoiceSnapshot) -> tuple[HoldReason, str, str] | None:
        if cust.holds:
            return cust.holds[0]
        if self.invoice_overrides:
            own = self.invoice_overrides.get(inv.external_id)
            if own is not None and own.holds_something:
                found = _invoice_override_hold(own, inv, cust.today)
                if found is not None:
                    return found
        cadence = cust.info.cadence if cust.info else self.cadence
        minimum = cadence.minimum_for(inv.currency)
        if minimum and inv.balance.amount < minimum:
            return (
                HoldReason.BELOW_MINIMUM,
                str(minimum),
                f"the balance {inv.balance} is below the minimum {minimum} {inv.currency}",
            )
        credit = cust.credit
        if credit is not None and credit.currency == inv.currency and credit.amount >= inv.balance.amount:
            return (
                HoldReason.UNAPPLIED_CREDIT,
                str(credit.amount),
                f"the customer's unapplied credit {credit} covers the balance {inv.balance}: apply it in the ledger",
            )
        return None

    # -- contact and fee steps ------------------------------------------------------------------------

    def _emit(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        facts: InvoiceFacts,
        tracks: _Tracks,
        contact: tuple[_Event, datetime] | None,
        fee: tuple[_Event, datetime] | None,
        accrual_floor: date | None,
        catch: _CatchUp | None,
    ) -> None:
        assert cust.info is not None
        assert inv.due_date is not None
        prefix = key_prefix(self.conn_id, inv.external_id)
        contact, remind_key = self._open_contact(cust.info, inv, facts, contact, prefix)
        if fee is not None:
            fee = self._warned_fee(cust, facts, fee)
        pending = self._pending_parts(inv, contact, fee, prefix, remind_key)
        if not pending:
            return
        hold = self._invoice_holds(cust, inv)
        if hold is not None:
            _, _, event, scheduled = pending[0]
            self._hold(cust, inv, event.step.id, event.due_date, scheduled, hold)
            return
        contact_local = self._local(cust, contact[1]) if contact is not None else None
        offer: DiscountOffer | None = None
        if contact is not None and contact[0].step.discount is not None:
            assert contact_local is not None
            offer = self._offer_for(inv, contact[0], contact_local)
        charging: str | None = None
        reminder: tuple[str, _Event, datetime] | None = None
        for kind, key, event, scheduled in pending:
            if kind is ActionKind.LATE_FEE:
                local = self._local(cust, scheduled)
                floor = self._fee_floor(event, facts, accrual_floor)
                self._fee(cust, inv, facts, key, event, scheduled, local, _describe_offset(event.step), floor)
                charging = key
            elif kind is ActionKind.REMIND:
                reminder = (key, event, scheduled)
            else:
                assert contact_local is not None  # every part but the fee belongs to the contact step
                self._step_action(cust, inv, kind, key, event, scheduled, offer, contact_local)
        # Reminders are queued after the step's other parts, so a digest sees them all.
        if reminder is not None:
            key, event, scheduled = reminder
            assert contact_local is not None
            warning = self._fee_warning(cust, inv, tracks, contact_local, charging, facts.fee_warned_on, prefix)
            self._queue_reminder(cust, inv, key, event, scheduled, offer, warning, contact_local)

    def _open_contact(
        self,
        info: _CadenceInfo,
        inv: InvoiceSnapshot,
        facts: InvoiceFacts,
        contact: tuple[_Event, datetime] | None,
        prefix: str,
    ) -> tuple[tuple[_Event, datetime] | None, str | None]:
        """`contact`, unless an escalation already stopped reminders or the step's reminder is on record;
        with the key of the step's reminder when it has one (`prefix`: the invoice's `key_prefix`)."""
        assert inv.due_date is not None
        if contact is None:
            return None, None
        keys = self.keys
        if info.escalate_steps and (
            facts.escalated
            or (
                keys
                and any(
                    key_from(prefix, tail) in keys
                    for tail in self._escalations_before(info, inv.due_date, contact[0].step.id)
                )
            )
        ):
            return None, None
        event = contact[0]
        if not event.step.remind:
            return contact, None
        # The other parts of a step go out with its reminder or before it (a reminder may wait for
        # the customer's next free day), so a reminder on record means the whole step is done.
        remind_key = self._event_key(prefix, inv, event, ActionKind.REMIND)
        if remind_key in keys:
            return None, None
        return contact, remind_key

    def _escalations_before(self, info: _CadenceInfo, due: date, step_id: str) -> tuple[str, ...]:
        """Key tails of the escalations of an invoice due on `due` that come before step `step_id`."""
        found = info.escalation_tails.get((due, step_id))
        if found is None:
            position = info.order.get(step_id, -1)
            found = tuple(
                key_tail(s.id, due, ActionKind.ESCALATE, 0) for s in info.escalate_steps if info.order[s.id] < position
            )
            info.escalation_tails[(due, step_id)] = found
        return found

    def _event_key(self, prefix: str, inv: InvoiceSnapshot, event: _Event, kind: ActionKind) -> str:
        """The key of part `kind` of `event` for the invoice whose `key_prefix` is `prefix` (generation 0)."""
        tail = event.tails.get(kind) if event.tails is not None else None
        if tail is None:
            return action_key(self.conn_id, inv.external_id, event.step.id, event.due_date, kind, event.occurrence)
        return key_from(prefix, tail)

    def _pending_parts(
        self,
        inv: InvoiceSnapshot,
        contact: tuple[_Event, datetime] | None,
        fee: tuple[_Event, datetime] | None,
        prefix: str,
        remind_key: str | None,
    ) -> list[tuple[ActionKind, str, _Event, datetime]]:
        """The parts of the contact step and the fee event whose idempotency keys are not on record yet
        (`remind_key`: the contact step's reminder key when already known)."""
        keys = self.keys
        pending: list[tuple[ActionKind, str, _Event, datetime]] = []
        if contact is not None:
            event, scheduled = contact
            parts = event.tails
            if parts is None:
                parts = _contact_tails(event.step, event.due_date, event.occurrence)
            for kind, tail in parts.items():
                key = remind_key if kind is ActionKind.REMIND and remind_key is not None else key_from(prefix, tail)
                if key not in keys:
                    pending.append((kind, key, event, scheduled))
        if fee is not None:
            event, scheduled = fee
            generation = self._fee_generation(inv, event, prefix)
            if generation == 0:
                key = self._event_key(prefix, inv, event, ActionKind.LATE_FEE)
                pending.append((ActionKind.LATE_FEE, key, event, scheduled))
            elif generation is not None:
                event = replace(event, generation=generation)
                key = action_key(
                    self.conn_id,
                    inv.external_id,
                    event.step.id,
                    event.due_date,
                    ActionKind.LATE_FEE,
                    event.occurrence,
                    generation=generation,
                )
                pending.append((ActionKind.LATE_FEE, key, event, scheduled))
        return pending

    def _fee_generation(self, inv: InvoiceSnapshot, event: _Event, prefix: str) -> int | None:
        """The generation of the fee event to plan now, or None when its live generation is on record.

        Generation 0 is the fee's first key. A generation superseded because its ledger record was found
        deleted (RS-03) is followed by the next one only when the policy re-creates deleted fees; else
        the fee stays waived. Only a superseded (final) generation lets the next one be planned, so at
        most one generation of a fee is ever live.
        """
        policy = self.policies.late_fees.get(event.step.late_fee or "")
        if self._event_key(prefix, inv, event, ActionKind.LATE_FEE) not in self.keys:
            return 0  # the first key, not on record (the loop below would find the same, only slower)
        generation = 0
        while True:
            key = action_key(
                self.conn_id,
                inv.external_id,
                event.step.id,
                event.due_date,
                ActionKind.LATE_FEE,
                event.occurrence,
                generation=generation,
            )
            if key not in self.keys:
                return generation
            if key not in self.history.superseded or policy is None or not policy.recreate_deleted:
                return None
            generation += 1

    def _step_action(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        kind: ActionKind,
        key: str,
        event: _Event,
        scheduled: datetime,
        offer: DiscountOffer | None,
        local: date,
    ) -> None:
        """Plan one note, call task, escalation or discount offer of a contact step (`local`: its local date)."""
        assert cust.info is not None
        step = event.step
        where = cust.info.wheres.get(step.id)
        if where is None:
            where = f"cadence {cust.info.cadence.name!r} step {step.id!r} ({_describe_offset(step)})"
            cust.info.wheres[step.id] = where
        if kind is ActionKind.NOTE:
            self._action(
                cust, inv, kind, key, step.id, event.due_date, scheduled, f"{where}: note", local, text=step.note
            )
        elif kind is ActionKind.CALL_TASK:
            self._action(
                cust,
                inv,
                kind,
                key,
                step.id,
                event.due_date,
                scheduled,
                f"{where}: call task",
                local,
                text=step.call_task,
                amount=inv.balance,
                record_outcome_in_ledger=step.record_outcome_in_ledger,
            )
        elif kind is ActionKind.ESCALATE:
            self._action(
                cust,
                inv,
                kind,
                key,
                step.id,
                event.due_date,
                scheduled,
                f"{where}: escalate; no further reminders" + ("; hand-off pack" if step.handoff else ""),
                local,
                amount=inv.balance,
                record_outcome_in_ledger=step.record_outcome_in_ledger,
                handoff=step.handoff,
            )
        elif kind is ActionKind.DISCOUNT_OFFER and offer is not None:
            self._action(
                cust,
                inv,
                kind,
                key,
                step.id,
                event.due_date,
                scheduled,
                f"{where}: {offer.percent} % off if paid by {offer.deadline.isoformat()} (policy {offer.policy!r})",
                local,
                amount=offer.discount,
                offer=offer,
            )

    def _queue_reminder(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        key: str,
        event: _Event,
        scheduled: datetime,
        offer: DiscountOffer | None,
        warning: FeeWarning | None,
        local: date,
    ) -> None:
        """Queue the step's reminder for the customer's digest of its local send date `local`."""
        step = event.step
        assert step.remind is not None
        item = ReminderItem(
            invoice_external_id=inv.external_id,
            number=inv.number,
            due_date=event.due_date,
            balance=event.amount or inv.balance,
            total=inv.total,
            days_overdue=(local - event.due_date).days,
            step_id=step.id,
            template=step.remind,
            member_key=key,
            offer=offer,
            installment=event.installment,
            fee_warning=warning,
            statement=step.statement,
        )
        self._digest(inv.customer_external_id, local).add(
            scheduled, item, step.offset if event.installment is None else -1000, inv.emails, inv.customer_name
        )

    def _warned_fee(
        self, cust: _Customer, facts: InvoiceFacts, fee: tuple[_Event, datetime] | None
    ) -> tuple[_Event, datetime] | None:
        """`fee`, when a sent reminder announced it at least the policy's `warning_days` before its day;
        else None (the fee waits: no fee without warning)."""
        if fee is None:
            return None
        policy = self.policies.late_fees.get(fee[0].step.late_fee or "")
        if policy is not None and not policy.warning_required:
            return fee
        warned = facts.fee_warned_on
        if policy is None or warned is None:
            return None
        if (self._local(cust, fee[1]) - warned).days < policy.warning_days:
            return None
        return fee

    def _fee_floor(self, event: _Event, facts: InvoiceFacts, accrual_floor: date | None) -> date | None:
        """The first day a fee may accrue over: the day the first warning said it applies from (for interest,
        the day of the warning itself; the charge still waits `warning_days`), so never
        before Nudge was connected; for a fee agreed without warning, the day the invoice came into Nudge's
        care) unless the policy accrues from the due date, and never before a broken plan's `accrual_floor`."""
        policy = self.policies.late_fees.get(event.step.late_fee or "")
        if policy is None or policy.accrue_before_connected:
            return accrual_floor
        if not policy.warning_required or facts.fee_warned_on is None:
            connected = _latest_date(facts.first_seen, self.connection.started_on)
            if connected is None:
                return accrual_floor
            return connected if accrual_floor is None else max(connected, accrual_floor)
        told = facts.fee_warned_on
        if policy.kind is FeeKind.FLAT or policy.kind is FeeKind.PERCENT:
            told += timedelta(days=policy.warning_days)
        return told if accrual_floor is None else max(told, accrual_floor)

    def _fee_warning(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        tracks: _Tracks,
        local: date,
        charging: str | None,
        warned_on: date | None,
        prefix: str,
    ) -> FeeWarning | None:
        """What a reminder sent on local `local` says about the invoice's next late fee not charged yet.

        A customer already warned (`warned_on`, the first warning's day) is told the same date again: the
        fee's date never moves because the customer was reminded once more."""
        if not tracks.fees or inv.due_date is None:
            return None
        keys = self.keys
        for event in tracks.fees:
            # With nothing on record and no fee charged now no key can match: the key is not even needed.
            if keys or charging is not None:
                key = self._event_key(prefix, inv, event, ActionKind.LATE_FEE)
                if key in keys or key == charging:
                    continue
            policy = self.policies.late_fees.get(event.step.late_fee or "")
            if policy is None:
                continue
            first = min(local, warned_on) if warned_on is not None else local
            fee_day = event.local if event.local is not None else self._local(cust, event.fire_at)
            amount = self._told_amount(policy, inv)
            # A warning is an immutable value of these alone, and few distinct ones exist: worked out once each.
            memo = (id(policy), first, fee_day, inv.due_date, amount)
            warning = self._warnings.get(memo)
            if warning is None:
                warning = self._warning(policy, first, fee_day, inv.due_date, amount)
                self._warnings[memo] = warning
            return warning
        return None

    def _told_amount(self, policy: LateFeePolicy, inv: InvoiceSnapshot) -> Money | None:
        """The sum a fee warning states: the statutory fixed compensation, else the policy's flat amount."""
        if policy.kind is FeeKind.UK_STATUTORY and policy.compensation and inv.currency == "GBP":
            return uk_compensation(inv.balance)  # the fixed sum is part of what the customer is told
        if policy.amount is None:
            return None
        memo = (id(policy), inv.currency)
        found = self._amounts.get(memo)
        if found is None:
            found = Money.of(policy.amount, inv.currency)
            self._amounts[memo] = found
        return found

    def _warning(
        self, policy: LateFeePolicy, first: date, fee_day: date, due: date, amount: Money | None
    ) -> FeeWarning:
        """The warning of `policy`'s fee falling on local `fee_day` for an invoice due on `due`, first told on
        local `first`, stating `amount`."""
        told = first + timedelta(days=policy.warning_days)
        accrues = policy.kind in (FeeKind.INTEREST, FeeKind.UK_STATUTORY, FeeKind.EU_STATUTORY)
        rate = annual_rate_for(policy, self.connection.rates) if accrues else None
        if accrues and not policy.accrue_before_connected:
            # interest runs from the day the customer is told (charged no earlier than warning_days later):
            # a first charge covering a day or two would only be lifted to the policy's minimum fee
            applies = max(first, due + timedelta(days=policy.grace_days + 1))
        else:
            applies = max(told, fee_day)
        return FeeWarning(
            policy=policy.name,
            description=policy.description,
            kind=policy.kind.value,
            applies_from=applies,
            amount=amount,
            percent=policy.percent if policy.kind is FeeKind.PERCENT else None,
            annual_rate=rate,
        )

    def _no_first_contact(self, cust: _Customer, inv: InvoiceSnapshot, missing: _NoFirstContact) -> None:
        """Hold an overdue invoice whose cadence has no reminder step that may be a first contact."""
        assert inv.due_date is not None
        text = (
            f"cadence {missing.cadence!r} has no reminder step after the due date that may be a first contact "
            "(every one is a final notice or an escalation): add a friendly or firm step"
        )
        self._hold(
            cust,
            inv,
            "first-contact",
            inv.due_date,
            cust.now_slot or self.now,
            (HoldReason.CONFIGURATION, "first-contact", text),
        )

    def _offer_for(self, inv: InvoiceSnapshot, event: _Event, local: date) -> DiscountOffer | None:
        """The early-payment offer of the event's step on local date `local`, if still open."""
        assert event.step.discount is not None
        policy = self.policies.discounts.get(event.step.discount)
        if policy is None:
            return None
        deadline = discount_deadline(policy, inv.issue_date, inv.due_date)
        if deadline is None or local > deadline:
            return None
        discount = discount_amount(policy, inv.total)
        if inv.balance <= discount:
            return None
        return DiscountOffer(policy.name, policy.percent, discount, inv.balance - discount, deadline)

    def _local(self, cust: _Customer, instant: datetime) -> date:
        return cust.schedule.local_date(instant) if cust.schedule else cust.today

    def _fee(
        self,
        cust: _Customer,
        inv: InvoiceSnapshot,
        facts: InvoiceFacts,
        key: str,
        event: _Event,
        scheduled: datetime,
        local: date,
        when: str,
        accrual_floor: date | None,
    ) -> None:
        step = event.step
        assert step.late_fee is not None
        assert inv.due_date is not None
        policy = self.policies.late_fees[step.late_fee]
        try:
            quote = assess_fee(
                policy,
                invoice_total=inv.total,
                balance=inv.balance,
                due_date=inv.due_date,
                assessed_on=local,
                payments=facts.payments,
                prior_fees=facts.fees,
                rates=self.connection.rates,
                accrual_floor=accrual_floor,
            )
        except ValueError as exc:
            self._hold(cust, inv, step.id, inv.due_date, scheduled, (HoldReason.CONFIGURATION, policy.name, str(exc)))
            return
        if quote is None:
            return
        detail = FeeDetail(
            policy=policy.name,
            assessed_on=local,
            balance=quote.balance,
            lines=quote.lines,
            period_start=quote.period_start,
            period_end=quote.period_end,
            annual_rate=quote.annual_rate,
            compensation=quote.compensation,
            on_invoice=policy.write_back is WriteBack.FEE_LINE,
            capped=quote.capped,
        )
        nth = f", occurrence {event.occurrence + 1} of {policy.max_count}" if policy.max_count > 1 else ""
        again = (
            f"; charged again: the ledger record of its earlier key was deleted (generation {event.generation})"
            if event.generation
            else ""
        )
        self._action(
            cust,
            inv,
            ActionKind.LATE_FEE,
            key,
            step.id,
            event.due_date,
            scheduled,
            f"cadence {cust.info.cadence.name if cust.info else ''!r} step {step.id!r} ({when}): "
            f"late fee {policy.name!r} ({policy.kind.value}{nth}){again}",
            amount=quote.amount,
            fee=detail,
            occurrence=event.occurrence,
            generation=event.generation,
            text=policy.description,
        )

    # -- corrections: reversals, discount credits, payment plans -------------------------------------

    def _reversals(self, inv: InvoiceSnapshot, facts: InvoiceFacts) -> None:
        if not facts.payments or inv.status in (InvoiceStatus.VOIDED, InvoiceStatus.DELETED, InvoiceStatus.DRAFT):
            return  # a reversal needs a payment dated on or before a fee's assessment
        cust = self._customer(inv.customer_external_id)
        live = [f for f in facts.fees if not f.reversed and not f.superseded]
        earliest = min(p.paid_on for p in facts.payments)
        for fee in live:
            if earliest > fee.assessed_on:
                continue
            key = action_key(
                self.conn_id,
                inv.external_id,
                fee.step_id,
                fee.due_date,
                ActionKind.FEE_REVERSAL,
                fee.occurrence,
                generation=fee.generation,
            )
            if key in self.keys:
                continue
            policy = self.policies.late_fees.get(fee.policy)
            if policy is None:
                continue
            try:
                refund = fee_reversal(
                    policy,
                    fee,
                    invoice_total=inv.total,
                    balance_now=inv.balance,
                    payments=facts.payments,
                    prior_fees=live,
                    rates=self.connection.rates,
                )
            except ValueError:
                continue
            if refund is None:
                continue
            self._action(
                cust,
                inv,
                ActionKind.FEE_REVERSAL,
                key,
                fee.step_id,
                fee.due_date,
                self.now,
                f"a payment dated on or before {fee.assessed_on.isoformat()} reduces late fee "
                f"{fee.policy!r} assessed that day: reverse {refund}",
                amount=refund,
                reverses=fee.key,
                occurrence=fee.occurrence,
                text=f"Reversal of late fee {fee.policy!r} assessed {fee.assessed_on.isoformat()}",
            )

    def _discount_credit(self, cust: _Customer, inv: InvoiceSnapshot, facts: InvoiceFacts) -> bool:
        assert cust.info is not None
        assert inv.due_date is not None
        for policy, steps in cust.info.discounts:
            credit = discount_credit(
                policy,
                invoice_total=inv.total,
                balance=inv.balance,
                payments=facts.payments,
                issue_date=inv.issue_date,
                due_date=inv.due_date,
            )
            if credit is None:
                continue
            if policy.offer_required and not any(
                action_key(self.conn_id, inv.external_id, s.id, inv.due_date, ActionKind.DISCOUNT_OFFER, 0) in self.keys
                for s in steps
            ):
                continue
            step_id = f"discount:{policy.name}"
            key = action_key(self.conn_id, inv.external_id, step_id, inv.due_date, ActionKind.DISCOUNT_CREDIT, 0)
            if key not in self.keys:
                deadline = discount_deadline(policy, inv.issue_date, inv.due_date)
                assert deadline is not None
                self._action(
                    cust,
                    inv,
                    ActionKind.DISCOUNT_CREDIT,
                    key,
                    step_id,
                    inv.due_date,
                    self.now,
                    f"early-payment discount {policy.name!r}: total less {policy.percent} % paid by "
                    f"{deadline.isoformat()}; credit the remaining {credit}",
                    amount=credit,
                    text=f"Early-payment discount ({policy.percent} %)",
                )
            return True
        return False

    def _payment_plan(
        self, cust: _Customer, inv: InvoiceSnapshot, facts: InvoiceFacts, plan_obj: PaymentPlan
    ) -> tuple[bool, date | None]:
        """Handle an invoice under a payment plan: (True, None) when installments replaced the cadence,
        (False, broken_on) when the plan is broken and the cadence resumes."""
        policy = self.policies.payment_plans.get(plan_obj.policy)
        step_id = f"plan:{plan_obj.plan_id or plan_obj.created_on.isoformat()}"
        if policy is None:
            self._hold(
                cust,
                inv,
                step_id,
                inv.due_date or plan_obj.created_on,
                self.now,
                (HoldReason.CONFIGURATION, plan_obj.policy, f"unknown payment-plan policy {plan_obj.policy!r}"),
            )
            return True, None
        status = plan_status(plan_obj, policy, facts.payments, cust.today)
        if not status.kept:
            assert status.missed is not None
            assert status.broken_on is not None
            key = action_key(
                self.conn_id,
                inv.external_id,
                step_id,
                status.missed.due_date,
                ActionKind.PLAN_BROKEN,
                status.missed.index,
            )
            if key not in self.keys:
                self._action(
                    cust,
                    inv,
                    ActionKind.PLAN_BROKEN,
                    key,
                    step_id,
                    status.missed.due_date,
                    self.now,
                    f"payment plan {policy.name!r}: installment {status.missed.index + 1} due "
                    f"{status.missed.due_date.isoformat()} missed past {policy.grace_days} days' "
                    "grace; the cadence resumes on the remaining balance",
                    amount=status.missed.remaining,
                    occurrence=status.missed.index,
                )
            return False, status.broken_on
        if cust.schedule is None or not status.open:
            return True, None
        events: list[_Event] = []
        for item in status.open:
            for offset in policy.remind_offsets:
                fire = cust.schedule.fire_at(item.due_date + timedelta(days=offset))
                step = Step(
                    id=f"{step_id}:installment-{item.index + 1}:{offset:+d}", offset=offset, remind=policy.template
                )
                events.append(_Event(fire, step, 0, item.due_date, item.remaining, item.index + 1))
        events.sort(key=lambda e: (e.fire_at, e.due_date, e.step.offset))
        latest = self._latest(cust, events, [e.fire_at for e in events], facts)
        if latest is not None:
            self._emit_installment(cust, inv, facts, latest)
        return True, None

    def _emit_installment(
        self, cust: _Customer, inv: InvoiceSnapshot, facts: InvoiceFacts, latest: tuple[_Event, datetime]
    ) -> None:
        event, scheduled = latest
        key = action_key(self.conn_id, inv.external_id, event.step.id, event.due_date, ActionKind.REMIND, 0)
        if key in self.keys or facts.escalated:
            return
        hold = self._invoice_holds(cust, inv)
        if hold is not None:
            self._hold(cust, inv, event.step.id, event.due_date, scheduled, hold)
            return
        local = self._local(cust, scheduled)
        assert event.step.remind is not None
        item = ReminderItem(
            invoice_external_id=inv.external_id,
            number=inv.number,
            due_date=event.due_date,
            balance=event.amount or inv.balance,
            total=inv.total,
            days_overdue=(local - event.due_date).days,
            step_id=event.step.id,
            template=event.step.remind,
            member_key=key,
            installment=event.installment,
        )
        self._digest(inv.customer_external_id, local).add(scheduled, item, -1000, inv.emails, inv.customer_name)

    # -- grouping ----------------------------------------------------------------------------------------

    def _digest(self, customer_id: str, local: date) -> _Digest:
        """The digest of `customer_id`'s reminders on local day `local`."""
        found = self.reminders.get((customer_id, local))
        if found is None:
            found = self.reminders[(customer_id, local)] = _Digest()
        return found

    def _group_reminders(self) -> None:
        days = self.history.reminder_days
        for (customer_id, local), digest in self.reminders.items():
            if (customer_id, local) in days:
                continue  # already reminded that local day: the items wait for the next one
            queued = digest.items
            # members in invoice order (a stable sort, as the members' own list was sorted before); the lead is
            # the first of the latest step's members most overdue
            order = list(map(_ITEM_ORDER, queued))
            members = sorted(range(len(queued)), key=order.__getitem__)
            precedence = list(zip(digest.ranks, map(_ITEM_PRECEDENCE, queued), strict=True))
            lead = max(members, key=precedence.__getitem__)
            cust = self._customers[customer_id]
            items = tuple(queued[n] for n in members)
            member_keys = tuple(i.member_key for i in items)
            emails: list[str] = []
            for n in members:
                emails.extend(e for e in digest.emails[n] if e not in emails)
            currencies = {i.balance.currency for i in items}
            amount = None
            if len(currencies) == 1:
                amount = Money(sum((i.balance.amount for i in items), Decimal(0)), items[0].balance.currency)
            steps = sorted({i.step_id for i in items})
            cadence_name = cust.info.cadence.name if cust.info else ""
            # A statement step's item makes the day's email the customer's statement: it lists every open
            # invoice anyway, so the other steps' items ride along (their fee warnings are still stated).
            statement = any(i.statement for i in items)
            rule = (
                f"cadence {cadence_name!r} step {', '.join(repr(s) for s in steps)}: "
                f"{'statement' if statement else 'reminder'} listing "
                f"{len(items)} invoice{'s' if len(items) > 1 else ''} (one reminder per customer per day)"
            )
            self.actions.append(
                Action(
                    key=group_key(member_keys),
                    kind=ActionKind.REMIND,
                    connection_id=self.conn_id,
                    customer_external_id=customer_id,
                    invoice_external_ids=tuple(i.invoice_external_id for i in items),
                    scheduled_at=max(digest.scheduled),
                    local_date=local,
                    step_id=queued[lead].step_id,
                    rule=rule,
                    amount=amount,
                    template=STATEMENT_TEMPLATE if statement else queued[lead].template,
                    requires_approval=self._approval(ActionKind.REMIND, cust.info.cadence if cust.info else None),
                    due_date=min(i.due_date for i in items),
                    customer_name=digest.names[lead],
                    recipients=tuple(emails),
                    items=items,
                    member_keys=member_keys,
                    offer=next((i.offer for i in items if i.offer is not None), None),
                    broken_promise=self._broken_promise(cust, local),
                )
            )

    def _broken_promise(self, cust: _Customer, local: date) -> BrokenPromise | None:
        """The customer's promise to pay, when a reminder on local day `local` comes after it stopped holding
        chasing (its date and grace passed) and it was not kept, and not longer than PROMISE_LOOKBACK after its
        date (old news by then); None otherwise. Kept: `promise_kept` over the customer's dated payments."""
        over = cust.overrides
        promised, waits = over.promise_to_pay, over.promise_waits_until
        if promised is None or waits is None or local <= waits or local > promised + PROMISE_LOOKBACK:
            return None
        kept, _ = promise_kept(over, over.promise_payments)
        return None if kept else BrokenPromise(promised, over.promise_amount)


def _in_plan_order(actions: list[Action]) -> list[Action]:
    """`actions` sorted by (scheduled_at, customer, kind, invoices, key), exactly as one stable sort on that
    tuple would: grouped by (scheduled_at, customer) first, since a plan has few send moments and customers
    and many actions each, so the tuples compared are shorter and far fewer."""
    buckets: dict[tuple[datetime, str], list[Action]] = {}
    for action in actions:
        moment = (action.scheduled_at, action.customer_external_id)
        bucket = buckets.get(moment)
        if bucket is None:
            buckets[moment] = [action]
        else:
            bucket.append(action)
    ordered: list[Action] = []
    for moment in sorted(buckets):
        bucket = buckets[moment]
        bucket.sort(key=_BUCKET_ORDER)
        ordered.extend(bucket)
    return ordered


def _override_holds(over: CustomerOverrides, today: date) -> list[tuple[HoldReason, str, str]]:
    """Holds a customer's own overrides put on chasing on local `today`: excluded, dispute, pause, promise."""
    holds: list[tuple[HoldReason, str, str]] = []
    if over.excluded:
        holds.append((HoldReason.EXCLUDED, "", "the customer is excluded from chasing"))
    if over.dispute:
        text = "the customer is in dispute" + (f": {over.dispute_reason}" if over.dispute_reason else "")
        holds.append((HoldReason.DISPUTE, "", text))
    if over.paused_until is not None and today < over.paused_until:
        paused_until = over.paused_until.isoformat()
        holds.append((HoldReason.PAUSED, paused_until, f"chasing is paused until {paused_until}"))
    waits_until = over.promise_waits_until
    if over.promise_to_pay is not None and waits_until is not None and today <= waits_until:
        promised_by = over.promise_to_pay.isoformat()
        amount = f" {over.promise_amount}" if over.promise_amount is not None else ""
        text = f"the customer promised to pay{amount} by {promised_by}"
        if waits_until > over.promise_to_pay:
            grace = (waits_until - over.promise_to_pay).days
            text += f"; chasing waits until {waits_until.isoformat()} ({grace} days' grace), then resumes if not kept"
        holds.append((HoldReason.PROMISE_TO_PAY, promised_by, text))
    return holds


def promise_kept(over: CustomerOverrides, payments: Iterable[Payment]) -> tuple[bool, list[Money]]:
    """Whether a customer kept their promise to pay, from their dated payments (and the totals paid, per currency).

    Counted: payments dated on or before the promise date and no more than `PROMISE_LOOKBACK` before it (a
    payment older than that settled earlier business, not the promise). With an amount, kept when the payments
    in its currency cover it; without one, kept when any payment was made."""
    if over.promise_to_pay is None:
        return False, []
    earliest = over.promise_to_pay - PROMISE_LOOKBACK
    totals: dict[str, Money] = {}
    for payment in payments:
        if earliest <= payment.paid_on <= over.promise_to_pay:
            currency = payment.amount.currency
            totals[currency] = totals[currency] + payment.amount if currency in totals else payment.amount
    paid = [totals[currency] for currency in sorted(totals)]
    if over.promise_amount is None:
        return bool(paid), paid
    covered = totals.get(over.promise_amount.currency)
    return covered is not None and covered.amount >= over.promise_amount.amount, paid


def _invoice_override_hold(
    over: InvoiceOverrides, inv: InvoiceSnapshot, today: date
) -> tuple[HoldReason, str, str] | None:
    """The hold one invoice's own overrides put on it on local `today` (excluded, dispute, pause), if any."""
    name = f"invoice {inv.number or inv.external_id}"
    if over.excluded:
        return (HoldReason.EXCLUDED, "invoice", f"{name} is excluded from chasing")
    if over.dispute:
        reason = f": {over.dispute_reason}" if over.dispute_reason else ""
        return (HoldReason.DISPUTE, "invoice", f"{name} is in dispute{reason}")
    if over.paused_until is not None and today < over.paused_until:
        paused_until = over.paused_until.isoformat()
        return (HoldReason.PAUSED, f"invoice:{paused_until}", f"chasing of {name} is paused until {paused_until}")
    return None


def with_agreed_due_dates(
    invoices: Iterable[InvoiceSnapshot], overrides: Mapping[str, InvoiceOverrides]
) -> Iterable[InvoiceSnapshot]:
    """`invoices` with each agreed due date (flexible terms) in place of the ledger's, for planning only."""
    if not overrides:
        return invoices
    moved = []
    for inv in invoices:
        agreed = overrides.get(inv.external_id, NO_INVOICE_OVERRIDES).agreed_due_date
        moved.append(replace(inv, due_date=agreed) if agreed is not None and agreed != inv.due_date else inv)
    return moved


def _latest_date(*days: date | None) -> date | None:
    """The latest of the given dates (None when none is given)."""
    known = [day for day in days if day is not None]
    return max(known) if known else None


def _contact_tails(step: Step, due: date, occurrence: int) -> Mapping[ActionKind, str]:
    """The key tail (`key_tail`) of each contact part the step has, for invoices due on `due`, in the order
    the parts are planned: reminder, note, discount offer, call task, escalation."""
    wanted = (
        (ActionKind.REMIND, step.remind),
        (ActionKind.NOTE, step.note),
        (ActionKind.DISCOUNT_OFFER, step.discount),
        (ActionKind.CALL_TASK, step.call_task),
        (ActionKind.ESCALATE, step.escalate),
    )
    return {kind: key_tail(step.id, due, kind, occurrence) for kind, part in wanted if part}


def _nominal(schedule: Schedule, due: date, step: Step) -> date:
    if step.days is DayKind.BUSINESS:
        return schedule.add_business_days(due, step.offset)
    return due + timedelta(days=step.offset)


def _describe_offset(step: Step) -> str:
    unit = "business day" if step.days is DayKind.BUSINESS else "day"
    count = abs(step.offset)
    plural = "s" if count != 1 else ""
    if step.offset == 0:
        return "on the due date"
    return f"{count} {unit}{plural} {'after' if step.offset > 0 else 'before'} the due date"


def plan(
    invoices: Iterable[InvoiceSnapshot],
    customer_overrides: Mapping[str, CustomerOverrides],
    cadence: Cadence,
    policies: PolicySet,
    history: History,
    now: datetime,
    *,
    connection: ConnectionSettings,
    payment_plans: Mapping[str, PaymentPlan] | None = None,
    unapplied_credit: Mapping[str, Money] | None = None,
    horizon: timedelta = _ZERO_DELTA,
    calendars: Calendars | None = None,
    through_next_send_day: bool = False,
    invoice_overrides: Mapping[str, InvoiceOverrides] | None = None,
) -> list[Action]:
    """Every action due by `now` + `horizon` that `history` does not already hold, deterministically.

    `now` is an aware instant (any zone; returned instants are UTC). Customer-facing moments are
    computed in each customer's zone (override, else the cadence's, else the connection's). Overrides
    and unapplied credit are keyed by customer external id, payment plans by invoice external id.
    `horizon` looks ahead (preview plans a day at a time with horizon one day); 0 plans what is due
    now. `through_next_send_day` looks ahead, per customer, to the close of the next send day's window
    (an onboarding review shows what the first send day brings, whatever the hour it is planned at). Pass
    one `Calendars` to many calls to load holidays once. `invoice_overrides` (by invoice external id) hold single
    invoices and move their due dates (`with_agreed_due_dates`). Sorted by (scheduled_at, customer, kind,
    invoices, key).
    """
    overrides = invoice_overrides or {}
    planner = _Planner(
        cadence,
        policies,
        history,
        now,
        connection,
        customer_overrides,
        payment_plans or {},
        unapplied_credit or {},
        horizon,
        calendars or Calendars(),
        through_next_send_day,
        overrides,
    )
    return planner.run(with_agreed_due_dates(invoices, overrides))
