"""The executor: carry out planned actions exactly once (ledger writes) or at most once (email).

Protocol (docs/design.md "Exactly-once effects"):
1. claim: planned → running under a lease (attempts + 1), committed before anything else;
2. just-in-time check: re-read the invoice(s) from the provider; cancel when the action no longer
   applies (paid, voided, deleted, due date changed);
3. call the provider with the action key as idempotency key; record done + external ref + activity
   in one transaction. A running action whose lease expired goes back to planned and is retried
   with the same key, so the provider answers from its idempotency store (or the adapter finds the
   fee invoice by its deterministic reference) instead of writing twice;
4. email: state `sending` is committed before SMTP; a crash there leaves it `sending`, and recovery
   turns it into `uncertain` (shown to the user, never re-sent automatically). The reminder sender keeps the
   message's exact bytes (connector.mail.archive, state `sending`) just before the hand-over; every outcome
   below settles that copy in the action's own transaction: `sent` with done, `uncertain` with uncertain, gone
   when the email was certainly not handed over (back to planned, failed, cancelled).
Failures: AuthError → back to planned, connection needs_reauth (raised to stop the connection);
RateLimited → back to planned until the provider's window reopens, not counted as an attempt (raised, so
the worker reschedules the connection at that instant); Transient (and an email refused before DATA) →
retried with exponential back-off (`retry_base` doubling, at most `retry_cap`; the row's error names the
attempt and the next attempt's time) up to `max_attempts`, then failed; Rejected → failed with the
provider's message; ReplayedObjectGone (a replayed create names a record deleted since) →
`superseded` with the reason (no dead id stored; a late fee is planned again under a new generation key only
when its policy says `recreate_deleted`, see `connector.domain.cadence`).
A stop request (`should_stop`, SIGTERM) is checked between actions: the one in hand finishes, the rest
stay planned and unleased.

People's work: a call task or an escalation opens a task through the injected `TaskDesk` (idempotent by
the action key) and is recorded done with `external_ref="task:<id>"`; the task itself stays open until a
person completes it (connector.tasks). Without a desk such an action fails with a clear error. An escalation of an
`escalate: handoff` step also has the injected `HandoffDesk` make its hand-off pack (connector.handoff), found by its
unique key when the action is retried, so it is made exactly once; `external_ref` is then "task:<id> pack:<id>".

The window at send time: before a reminder goes out the injected `SendGate` (connector.outbox.send_window)
is asked whether its customer may get it now; when not, the action goes back to `planned` at the next
allowed moment (not counted as an attempt, activity `action.deferred` with the reason). A reminder that
goes out on another local day than planned is re-dated to that day in its payload, so what the history
says was said (fee warnings, reminder days) carries the day it was really sent.

Every ledger write leaves a note: after a late fee, discount credit or fee reversal is written, a note
(dated by the adapter) saying what Nudge did and why is added to the original invoice in the same attempt, keyed by
`note_key(action key)`; a failed note retries the whole action (the write replays idempotently).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm.attributes import flag_modified

from connector.domain.actions import CUSTOMER_FACING_KINDS, Action, ActionKind, action_key
from connector.domain.model import ActionState, InvoiceSnapshot
from connector.errors import (
    AuthError,
    MailError,
    MailTransient,
    NudgeError,
    RateLimited,
    Rejected,
    ReplayedObjectGone,
    TemplateError,
    Transient,
)
from connector.mail import archive
from connector.outbox.codec import action_from_json, action_to_json
from connector.outbox.send_window import SendGate, SendVerdict
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Customer, InvoiceOverride

log = logging.getLogger(__name__)

INTERNAL_KINDS = frozenset({ActionKind.HOLD, ActionKind.PLAN_BROKEN, ActionKind.DISCOUNT_OFFER})
TASK_KINDS = frozenset({ActionKind.CALL_TASK, ActionKind.ESCALATE})
_FEE_SENT_STATES = (ActionState.DONE.value, ActionState.UNCERTAIN.value)


def note_key(action_key: str) -> str:
    """The idempotency key of the note a ledger write leaves on its invoice: 40 hex of sha256(key + ":note")."""
    return hashlib.sha256(f"{action_key}:note".encode()).hexdigest()[:40]


class TaskDesk(Protocol):
    """Opens a person's task (phone the customer, take over the debt) for a call-task or escalation action."""

    def open_task(self, action: Action, connection_id: int) -> str:
        """Open (or find, for a retried action) the task of `action`; returns the task's id as text."""
        ...


class HandoffDesk(Protocol):
    """Makes the hand-off pack (letter, evidence ZIP, placement file) of an `escalate: handoff` escalation."""

    def make_pack(self, action: Action, connection_id: int, adapter: AccountingAdapter) -> str:
        """Make (or find, for a retried action or one of the same customer and day) the pack; its id as text."""
        ...


# A reminder in these states has not reached the customer yet (a note of its step waits for it).
_NOT_SENT_YET = (
    ActionState.PLANNED.value,
    ActionState.AWAITING_APPROVAL.value,
    ActionState.RUNNING.value,
    ActionState.SENDING.value,
)
_AFTER_ITS_REMINDER = timedelta(minutes=1)
# What becomes of an email's kept copy (connector.mail.archive) when its action ends in a state; any other
# state: it was certainly not handed over, so no copy stays.
_KEPT_AS = {ActionState.DONE: archive.SENT, ActionState.UNCERTAIN: archive.UNCERTAIN}


class ReminderSender(Protocol):
    """Sends one reminder email for an action, listing the (still open) invoices; returns the Message-ID."""

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        """Mail one reminder about `invoices`; returns the sent message's id."""


@dataclass
class ExecutionReport:
    """What one execution pass did, by outcome."""

    done: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # reminders moved to the next allowed moment
    stopped: bool = False  # a stop request ended the pass before every due action was tried


class Executor:
    """Carries out one connection's due actions through its adapter and the reminder sender."""

    def __init__(
        self,
        store: Store,
        adapter: AccountingAdapter,
        reminders: ReminderSender | None,
        now: Callable[[], datetime],
        owner: str,
        *,
        lease: timedelta = timedelta(minutes=10),
        max_attempts: int = 5,
        retry_base: timedelta = timedelta(minutes=2),
        retry_cap: timedelta = timedelta(hours=1),
        tasks: TaskDesk | None = None,
        gate: SendGate | None = None,
        handoffs: HandoffDesk | None = None,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.reminders = reminders
        self.now = now
        self.owner = owner
        self.lease = lease
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.tasks = tasks
        self.gate = gate
        self.handoffs = handoffs

    # -- recovery --------------------------------------------------------------------------------
    def recover(self, connection_id: int) -> ExecutionReport:
        """Expired leases: running → planned (retry with the same key); sending → uncertain."""
        report = ExecutionReport()
        now = self.now()
        with self.store.unit_of_work() as uow:
            stale = uow.session.scalars(
                select(ActionRow).where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.state.in_((ActionState.RUNNING.value, ActionState.SENDING.value)),
                    ActionRow.lease_until < now,
                )
            ).all()
            org_id = _org_of(uow.session.get(Connection, connection_id))
            for row in stale:
                if row.state == ActionState.SENDING.value:
                    # SET updated_at = updated_at: it keeps the moment the email was handed over (the send
                    # gate's "reminded today" counts it on that day), not the recovery's.
                    uow.session.execute(
                        update(ActionRow)
                        .where(ActionRow.id == row.id)
                        .values(
                            state=ActionState.UNCERTAIN.value,
                            error=(
                                "the worker stopped while handing this email to the mail server; "
                                "it may or may not have been sent"
                            ),
                            lease_owner="",
                            lease_until=None,
                            updated_at=ActionRow.updated_at,
                        )
                        .execution_options(synchronize_session=False)
                    )
                    archive.settle(uow.session, row.key, archive.UNCERTAIN)  # its kept copy, if any, alike
                    uow.activities.record(
                        org_id,
                        "action.uncertain",
                        row.key,
                        connection_id=connection_id,
                        detail={"kind": row.kind, "invoice": row.invoice_external_id},
                        at=now,
                    )
                    report.uncertain.append(row.key)
                else:
                    row.state = ActionState.PLANNED.value
                    row.lease_owner = ""
                    row.lease_until = None
                    _touch(row, now)
                    report.retried.append(row.key)
            uow.commit()
        return report

    # -- the main loop -----------------------------------------------------------------------------
    def run_due(
        self,
        connection_id: int,
        *,
        limit: int = 500,
        renew: Callable[[], object] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ExecutionReport:
        """Carry out every planned action of the connection due by now (oldest first), until a stop request."""
        report = self.recover(connection_id)
        report.retried.clear()
        with self.store.unit_of_work() as uow:
            due = uow.session.scalars(
                select(ActionRow.id)
                .where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.state == ActionState.PLANNED.value,
                    ActionRow.scheduled_at <= self.now(),
                )
                # a step's reminder before its other parts due at the same moment: its note says it was sent
                .order_by(
                    ActionRow.scheduled_at, case((ActionRow.kind == ActionKind.REMIND.value, 0), else_=1), ActionRow.id
                )
                .limit(limit)
            ).all()
        for action_id in due:
            if should_stop():  # shutting down: what was not started stays planned (never claimed)
                report.stopped = True
                log.info("stop requested: %d action(s) of connection %s left planned", len(due), connection_id)
                break
            if renew is not None:
                renew()
            self.run_one(action_id, report)
        return report

    def run_one(self, action_id: int, report: ExecutionReport) -> None:
        """Claim and carry out one action; raises AuthError / RateLimited to stop the connection."""
        claimed = self._claim(action_id)
        if claimed is None:
            return
        row_key, action, connection_id = claimed
        try:
            outcome = self._perform(action_id, action, connection_id)
        except (AuthError, RateLimited) as exc:
            self._back_to_planned(action_id, exc, later=isinstance(exc, RateLimited))
            raise
        except ReplayedObjectGone as exc:  # never store a dead id; a new write needs a new key (a new generation)
            self._finish(action_id, ActionState.SUPERSEDED, error=exc.user_message, activity="action.superseded")
            report.superseded.append(row_key)
            return
        except Transient as exc:
            self._transient(action_id, exc, report, row_key)
            return
        except Rejected as exc:
            self._finish(action_id, ActionState.FAILED, error=exc.user_message, activity="action.failed")
            report.failed.append(row_key)
            return
        except MailTransient as exc:
            if exc.maybe_sent:  # the server may have taken it: never send it again on our own
                self._finish(action_id, ActionState.UNCERTAIN, error=exc.user_message, activity="action.uncertain")
                report.uncertain.append(row_key)
            else:  # nothing was accepted (refused, timeout before DATA, 4xx): safe to try again later
                self._transient(action_id, Transient(exc.user_message), report, row_key, not_sent=True)
            return
        except (MailError, TemplateError) as exc:
            self._finish(action_id, ActionState.FAILED, error=exc.user_message, activity="action.failed")
            report.failed.append(row_key)
            return
        self._record(action_id, action, outcome, report, row_key)

    def _record(
        self, action_id: int, action: Action, outcome: tuple[ActionState, str, str], report: ExecutionReport, key: str
    ) -> None:
        """Record what `_perform` returned: done (with its ref), cancelled (with why), or deferred."""
        state, ref, note = outcome
        row_key = key
        if state is ActionState.PLANNED:  # deferred by the send gate (already back to planned)
            report.deferred.append(row_key)
        elif state is ActionState.CANCELLED:
            self._finish(action_id, state, error=note, activity="action.cancelled")
            report.cancelled.append(row_key)
        else:  # `note` on a done action: the write succeeded but something beside it did not (its ledger note)
            self._finish(
                action_id, ActionState.DONE, external_ref=ref, error=note, activity=f"action.{action.kind.value}"
            )
            report.done.append(row_key)

    def _claim(self, action_id: int) -> tuple[str, Action, int] | None:
        """planned (or running with an expired lease) → running under our lease: (key, action, connection id)."""
        now = self.now()
        with self.store.unit_of_work() as uow:
            result = uow.session.execute(
                update(ActionRow)
                .where(
                    ActionRow.id == action_id,
                    or_(
                        ActionRow.state == ActionState.PLANNED.value,
                        (ActionRow.state == ActionState.RUNNING.value) & (ActionRow.lease_until < now),
                    ),
                )
                .values(
                    state=ActionState.RUNNING.value,
                    lease_owner=self.owner,
                    lease_until=now + self.lease,
                    attempts=ActionRow.attempts + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            row = uow.session.get(ActionRow, action_id)
            assert row is not None
            uow.commit()
            return row.key, action_from_json(row.payload), row.connection_id

    # -- carrying out ------------------------------------------------------------------------------
    def _perform(self, action_id: int, action: Action, connection_id: int) -> tuple[ActionState, str, str]:
        """Carry the action out: (DONE, ref, remark), (CANCELLED, "", why) or (PLANNED, "", why) when deferred."""
        if action.kind in INTERNAL_KINDS:
            return ActionState.DONE, "", ""
        if action.kind in TASK_KINDS:
            if self.tasks is None:
                raise Rejected("no task desk is set up to open call tasks and hand-offs for people")
            ref = f"task:{self.tasks.open_task(action, connection_id)}"
            if action.handoff:
                ref += f" pack:{self._handoff_pack(action, connection_id)}"
            return ActionState.DONE, ref, ""
        verdict = self._verdict(action_id, action, connection_id)
        if verdict is not None and not verdict.allowed:
            self._defer(action_id, verdict)
            return ActionState.PLANNED, "", verdict.reason
        if verdict is not None and action.kind in CUSTOMER_FACING_KINDS:
            action = self._dated(action_id, action, verdict.local_today)
        current, held = self._with_overrides(
            connection_id,
            {invoice_id: self.adapter.get_invoice(invoice_id) for invoice_id in action.invoice_external_ids},
            action.local_date,
            action.customer_external_id,
        )
        if action.kind is ActionKind.REMIND:
            # an invoice people held since the plan is left out of the reminder (the others still go)
            if held and set(held) >= set(current):
                return ActionState.CANCELLED, "", "; ".join(held[k] for k in sorted(held))
            return self._send_reminder(action_id, action, {k: v for k, v in current.items() if k not in held})
        return self._on_invoice(action, current[action.invoice_external_ids[0]], held, connection_id)

    def _handoff_pack(self, action: Action, connection_id: int) -> str:
        """The hand-off pack of an `escalate: handoff` escalation, made once (the desk finds it on a retry)."""
        if self.handoffs is None:
            raise Rejected("no hand-off desk is set up to make hand-off packs")
        return self.handoffs.make_pack(action, connection_id, self.adapter)

    def _on_invoice(
        self, action: Action, invoice: InvoiceSnapshot | None, held: Mapping[str, str], connection_id: int
    ) -> tuple[ActionState, str, str]:
        """Carry out an action on one invoice (fee, reversal, note, credit...) as `_perform` does."""
        if invoice is None:
            return ActionState.CANCELLED, "", "the invoice was deleted in the ledger"
        if action.kind is ActionKind.FEE_REVERSAL:  # giving money back is never held
            ref, what = self._reverse_fee(action, invoice)
            return ActionState.DONE, ref, self._leave_note(action, invoice, what)
        if invoice.external_id in held:  # cancelled, not skipped: planned afresh once the hold ends
            return ActionState.CANCELLED, "", held[invoice.external_id]
        if not invoice.is_open or not self._same_cycle(action, invoice):
            return (
                ActionState.CANCELLED,
                "",
                f"invoice {invoice.number} is {invoice.status.value} or its due date changed",
            )
        return self._write_to_ledger(action, invoice, connection_id)

    def _verdict(self, action_id: int, action: Action, connection_id: int) -> SendVerdict | None:
        """Whether the action may be carried out now: a reminder inside its customer's window (the gate), a
        step's note only once its reminder went out. None: nothing to check."""
        if action.kind in CUSTOMER_FACING_KINDS and self.gate is not None:
            return self.gate.check(action, connection_id, action_id, self.now())
        if action.kind is ActionKind.NOTE and (waiting := self._reminder_not_sent(action, connection_id)) is not None:
            return SendVerdict(
                allowed=False,
                local_today=action.local_date,
                not_before=waiting + _AFTER_ITS_REMINDER,
                reason="the step's note waits for its reminder, which has not gone out yet",
            )
        return None

    def _reminder_not_sent(self, action: Action, connection_id: int) -> datetime | None:
        """When the reminder of the note's own step is still to go out (planned, deferred, held for approval or
        in hand): its scheduled instant, so a note like "reminder sent" is never written before the email is."""
        member = action_key(
            action.connection_id,
            action.invoice_external_ids[0],
            action.step_id,
            action.due_date,
            ActionKind.REMIND,
            action.occurrence,
        )
        with self.store.unit_of_work() as uow:
            rows = uow.session.execute(
                select(ActionRow.key, ActionRow.payload, ActionRow.scheduled_at).where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.kind == ActionKind.REMIND.value,
                    ActionRow.customer_external_id == action.customer_external_id,
                    ActionRow.state.in_(_NOT_SENT_YET),
                )
            ).all()
        for key, payload, scheduled_at in rows:
            if key == member or member in (payload or {}).get("member_keys", ()):
                due: datetime = scheduled_at
                return max(due, self.now())
        return None

    def _send_reminder(
        self, action_id: int, action: Action, current: Mapping[str, InvoiceSnapshot | None]
    ) -> tuple[ActionState, str, str]:
        """Mail the reminder for its invoices still open in the same cycle; cancelled when none is."""
        still_open = [
            invoice
            for invoice in current.values()
            if invoice is not None and invoice.is_open and self._same_cycle(action, invoice)
        ]
        if not still_open:
            return ActionState.CANCELLED, "", "every invoice in this reminder is paid, voided, deleted or changed"
        if self.reminders is None:
            raise MailError("no mailer is configured for reminders")
        self._mark_sending(action_id)
        return ActionState.DONE, self.reminders.send(action, still_open, self.adapter), ""

    def _write_to_ledger(
        self, action: Action, invoice: InvoiceSnapshot, connection_id: int
    ) -> tuple[ActionState, str, str]:
        """Write a note, a fee invoice or a discount credit for an open invoice, keyed for idempotency;
        a fee or credit also leaves its dated note on the invoice."""
        key = action.key
        if action.kind is ActionKind.NOTE:
            return ActionState.DONE, self.adapter.add_note(invoice, action.text or action.rule, key).external_ref, ""
        if action.kind is ActionKind.LATE_FEE:
            assert action.amount is not None
            description = self._fee_description(action, invoice)
            ref = self.adapter.create_fee_invoice(invoice, action.amount, description, key).external_ref
            what = self._fee_note(action, ref, connection_id)
            return ActionState.DONE, ref, self._leave_note(action, invoice, what)
        if action.kind is ActionKind.DISCOUNT_CREDIT:
            assert action.amount is not None
            if invoice.balance != action.amount:
                return ActionState.CANCELLED, "", "the balance no longer equals the earned discount"
            reason = f"Early-payment discount on invoice {invoice.number}"
            ref = self.adapter.create_credit(invoice, action.amount, reason, key).external_ref
            what = f"early-payment discount of {action.amount} credited as credit {ref}"
            return ActionState.DONE, ref, self._leave_note(action, invoice, what)
        raise Rejected(f"unknown action kind {action.kind.value!r}")

    def _with_overrides(
        self,
        connection_id: int,
        current: dict[str, InvoiceSnapshot | None],
        local_today: date,
        customer_external_id: str = "",
    ) -> tuple[dict[str, InvoiceSnapshot | None], dict[str, str]]:
        """The ledger's invoices as the planner saw them, with each agreed due date (an invoice override) in place
        of the ledger's (an action planned from an agreed date is in the same cycle, not a changed one), and the
        invoices people held since the plan (excluded, disputed, paused on `local_today`, or their customer
        excluded, disputed, paused or under a promise to pay) with the reason why."""
        customer_hold = self._customer_hold(connection_id, customer_external_id, local_today)
        with self.store.unit_of_work() as uow:
            rows = uow.session.execute(
                select(
                    InvoiceOverride.invoice_external_id,
                    InvoiceOverride.agreed_due_date,
                    InvoiceOverride.excluded,
                    InvoiceOverride.dispute,
                    InvoiceOverride.dispute_reason,
                    InvoiceOverride.paused_until,
                ).where(
                    InvoiceOverride.connection_id == connection_id,
                    InvoiceOverride.invoice_external_id.in_(list(current)),
                )
            ).all()
        held: dict[str, str] = {}
        for invoice_id, agreed, excluded, dispute, reason, paused_until in rows:
            invoice = current.get(invoice_id)
            if invoice is not None and agreed is not None:
                current[invoice_id] = replace(invoice, due_date=agreed)
            name = f"invoice {invoice.number if invoice is not None else invoice_id}"
            if excluded:
                held[invoice_id] = f"{name} is excluded from chasing"
            elif dispute:
                held[invoice_id] = f"{name} is in dispute" + (f": {reason}" if reason else "")
            elif paused_until is not None and local_today < paused_until:
                held[invoice_id] = f"chasing of {name} is paused until {paused_until.isoformat()}"
        if customer_hold:
            for invoice_id in current:
                held.setdefault(invoice_id, customer_hold)
        return current, held

    def _customer_hold(self, connection_id: int, customer_external_id: str, local_today: date) -> str:
        """Why the customer may not be chased on `local_today` (set by a person after the plan), or ""."""
        if not customer_external_id:
            return ""
        with self.store.unit_of_work() as uow:
            row = uow.session.scalars(
                select(Customer).where(
                    Customer.connection_id == connection_id, Customer.external_id == customer_external_id
                )
            ).first()
        if row is None:
            return ""
        name = f"customer {row.name or row.external_id}"
        promised = row.promise_to_pay_until
        if row.excluded:
            return f"{name} is excluded from chasing"
        if row.dispute:
            return f"{name} is in dispute" + (f": {row.dispute_reason}" if row.dispute_reason else "")
        if row.paused_until is not None and local_today < row.paused_until:
            return f"chasing of {name} is paused until {row.paused_until.isoformat()}"
        if promised is not None and local_today <= promised + timedelta(days=max(row.promise_grace_days or 0, 0)):
            return f"{name} promised to pay by {promised.isoformat()}"
        return ""

    @staticmethod
    def _same_cycle(action: Action, invoice: InvoiceSnapshot) -> bool:
        return action.due_date is None or invoice.due_date == action.due_date or bool(action.items)

    @staticmethod
    def _fee_description(action: Action, invoice: InvoiceSnapshot) -> str:
        lines = action.fee.lines if action.fee else ()
        detail = "; ".join(f"{label} {amount}" for label, amount in lines)
        base = f"Late fee on invoice {invoice.number}"
        return f"{base}: {detail}" if detail else base

    def _reverse_fee(self, action: Action, invoice: InvoiceSnapshot) -> tuple[str, str]:
        """Void the whole fee invoice, or credit part of the fee: (the ledger's ref, what was done in words)."""
        with self.store.unit_of_work() as uow:
            fee_row = uow.session.scalars(select(ActionRow).where(ActionRow.key == action.reverses)).first()
            fee_ref = fee_row.external_ref if fee_row is not None else ""
            fee_amount = action_from_json(fee_row.payload).amount if fee_row is not None else None
        assert action.amount is not None
        if fee_ref and fee_amount is not None and action.amount == fee_amount:
            ref = self.adapter.void_fee_invoice(fee_ref, action.key).external_ref
            return ref, f"late fee of {action.amount} reversed: fee invoice {fee_ref} voided"
        reason = f"Late fee reversed on invoice {invoice.number}: payment arrived on time"
        ref = self.adapter.create_credit(invoice, action.amount, reason, action.key).external_ref
        return ref, f"late fee of {action.amount} reversed as credit {ref}"

    # -- the note every ledger write leaves --------------------------------------------------------
    def _leave_note(self, action: Action, invoice: InvoiceSnapshot, what: str) -> str:
        """Write "Nudge: <what> (<why>)." on the original invoice; "" when written, else the remark to keep.

        The adapters date every note (QuickBooks prefixes the company's date to the PrivateNote line, Xero
        dates each history record), so the text carries no date of its own. Transient, auth and rate-limit
        failures propagate, so the whole action is retried (its write replays idempotently, the note too:
        `note_key`). A note the ledger refuses for good must not undo the write that already happened: the
        action is done and the row says the note is missing.
        """
        why = action.rule or action.text or action.step_id
        text = f"Nudge: {what}" + (f" ({why})" if why and why not in what else "") + "."
        try:
            self.adapter.add_note(invoice, text, note_key(action.key))
        except Rejected as exc:
            log.warning("the ledger refused the note of action %s: %s", action.key, exc.user_message)
            return f"written, but the ledger refused its note: {exc.user_message}"
        return ""

    def _fee_note(self, action: Action, ref: str, connection_id: int) -> str:
        """What a late fee note says: amount, where it went, the policy and step, and when the customer was told."""
        assert action.amount is not None
        fee = action.fee
        where = "added as a line on this invoice" if fee is not None and fee.on_invoice else f"as fee invoice {ref}"
        policy = fee.policy if fee is not None else ""
        text = f"late fee of {action.amount} charged {where} under policy {policy!r} (step {action.step_id!r})"
        warned = self._warned_on(action, connection_id)
        told = f"the customer was told on {warned.isoformat()}" if warned else "no fee warning to them is on record"
        return f"{text}; {told}"

    def _warned_on(self, action: Action, connection_id: int) -> date | None:
        """The earliest local date a sent reminder announced this fee's policy for this invoice (None: none did)."""
        invoice_id = action.invoice_external_ids[0]
        policy = action.fee.policy if action.fee is not None else None
        with self.store.unit_of_work() as uow:
            payloads = uow.session.scalars(
                select(ActionRow.payload).where(
                    ActionRow.kind == ActionKind.REMIND.value,
                    ActionRow.customer_external_id == action.customer_external_id,
                    ActionRow.state.in_(_FEE_SENT_STATES),
                    ActionRow.connection_id == connection_id,
                )
            ).all()
        told = [
            reminder.local_date
            for reminder in (action_from_json(payload) for payload in payloads if payload)
            for item in reminder.items
            if item.invoice_external_id == invoice_id
            and item.fee_warning is not None
            and (policy is None or item.fee_warning.policy == policy)
        ]
        return min(told, default=None)

    # -- state changes ---------------------------------------------------------------------------
    def _mark_sending(self, action_id: int) -> None:
        # updated_at is the moment the email is handed over: the send gate counts "reminded today" by it
        with self.store.unit_of_work() as uow:
            uow.session.execute(
                update(ActionRow)
                .where(ActionRow.id == action_id, ActionRow.lease_owner == self.owner)
                .values(state=ActionState.SENDING.value, updated_at=self.now())
                .execution_options(synchronize_session=False)
            )
            uow.commit()

    def _defer(self, action_id: int, verdict: SendVerdict) -> None:
        """Back to planned at the gate's next allowed moment, not counted as an attempt; `action.deferred`."""
        assert verdict.not_before is not None
        now = self.now()
        with self.store.unit_of_work() as uow:
            row = uow.session.get(ActionRow, action_id)
            if row is None or row.lease_owner != self.owner:
                return
            row.state = ActionState.PLANNED.value
            row.attempts = max(row.attempts - 1, 0)  # the customer's calendar, not the action's failure
            row.scheduled_at = max(row.scheduled_at, verdict.not_before)
            row.error = f"deferred to {verdict.not_before:%Y-%m-%d %H:%M} UTC: {verdict.reason}"
            row.lease_owner = ""
            row.lease_until = None
            _touch(row, now)
            uow.activities.record(
                _org_of(uow.session.get(Connection, row.connection_id)),
                "action.deferred",
                row.key,
                connection_id=row.connection_id,
                at=now,
                detail={
                    "kind": row.kind,
                    "customer": row.customer_external_id,
                    "until": verdict.not_before.astimezone(UTC).isoformat(),
                    "reason": verdict.reason,
                    "step": row.step,
                },
            )
            uow.commit()

    def _dated(self, action_id: int, action: Action, local_today: date) -> Action:
        """The reminder re-dated to the customer's local day it really goes out on (payload too), when that differs.

        History reads `local_date` as the day the customer was told (fee warnings, one reminder a day):
        a reminder planned for Friday that goes out on Monday told them on Monday.
        """
        if action.local_date == local_today:
            return action
        dated = replace(action, local_date=local_today)
        with self.store.unit_of_work() as uow:
            uow.session.execute(
                update(ActionRow)
                .where(ActionRow.id == action_id, ActionRow.lease_owner == self.owner)
                .values(payload=action_to_json(dated), updated_at=self.now())
                .execution_options(synchronize_session=False)
            )
            uow.commit()
        return dated

    def _finish(
        self, action_id: int, state: ActionState, *, external_ref: str = "", error: str = "", activity: str
    ) -> None:
        now = self.now()
        with self.store.unit_of_work() as uow:
            row = uow.session.get(ActionRow, action_id)
            if row is None or row.lease_owner != self.owner:
                return  # the lease was lost; whoever holds it now records the outcome
            row.state = state.value
            row.external_ref = external_ref
            row.error = error
            row.lease_owner = ""
            row.lease_until = None
            _touch(row, now)
            if row.kind == ActionKind.REMIND.value:  # the email's kept copy settles with the action
                archive.settle(uow.session, row.key, _KEPT_AS.get(state))
            connection = uow.session.get(Connection, row.connection_id)
            uow.activities.record(
                _org_of(connection),
                activity,
                row.key,
                connection_id=row.connection_id,
                at=now,
                detail={
                    "kind": row.kind,
                    "invoice": row.invoice_external_id,
                    "customer": row.customer_external_id,
                    "external_ref": external_ref,
                    "error": error,
                    "step": row.step,
                },
            )
            uow.commit()

    def _transient(
        self, action_id: int, exc: Transient, report: ExecutionReport, key: str, *, not_sent: bool = False
    ) -> None:
        with self.store.unit_of_work() as uow:
            row = uow.session.get(ActionRow, action_id)
            attempts = row.attempts if row is not None else self.max_attempts
        if attempts >= self.max_attempts:
            self._finish(
                action_id,
                ActionState.FAILED,
                error=f"gave up after {attempts} attempts: {exc.user_message}",
                activity="action.failed",
            )
            report.failed.append(key)
            return
        delay = self.backoff(attempts)
        retry_at = self.now() + delay
        message = (
            f"{exc.user_message} (attempt {attempts} of {self.max_attempts}; "
            f"next attempt at {retry_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        )
        self._back_to_planned(action_id, Transient(message), later=True, delay=delay, not_sent=not_sent)
        report.retried.append(key)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: `retry_base` doubling each time, at most `retry_cap`."""
        factor: int = 2 ** min(max(attempts - 1, 0), 30)
        return min(self.retry_base * factor, self.retry_cap)

    def _back_to_planned(
        self, action_id: int, exc: NudgeError, *, later: bool, delay: timedelta | None = None, not_sent: bool = False
    ) -> None:
        now = self.now()
        with self.store.unit_of_work() as uow:
            row = uow.session.get(ActionRow, action_id)
            if row is None or row.lease_owner != self.owner:
                return
            if row.state == ActionState.SENDING.value and not not_sent:
                row.state = ActionState.UNCERTAIN.value  # the mail server may have taken it
                archive.settle(uow.session, row.key, archive.UNCERTAIN)
            else:
                if row.kind == ActionKind.REMIND.value:  # certainly not handed over: no copy of it stays
                    archive.settle(uow.session, row.key, None)
                row.state = ActionState.PLANNED.value
                if isinstance(exc, AuthError | RateLimited):
                    row.attempts = max(row.attempts - 1, 0)  # not the action's fault
            if later:
                wait = delay or timedelta(seconds=exc.retry_after if isinstance(exc, RateLimited) else 60)
                row.scheduled_at = max(row.scheduled_at, now + wait)
            _touch(row, now)
            row.error = exc.user_message
            row.lease_owner = ""
            row.lease_until = None
            uow.commit()


def _touch(row: ActionRow, now: datetime) -> None:
    """Stamp the row with the executor's clock. Flagged as changed even when equal to the claim's stamp: an
    unchanged column would let the ORM's `onupdate` put the wall clock there instead, and the send gate
    reads a reminder's `updated_at` as the moment it went out."""
    row.updated_at = now
    flag_modified(row, "updated_at")


def _org_of(connection: Connection | None) -> int:
    return connection.organization_id if connection is not None else 0


def approve(store: Store, org_id: int, action_keys: Sequence[str], actor: str, now: datetime) -> int:
    """Release actions held for approval (approval mode) into the outbox; returns how many."""
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(
            select(ActionRow)
            .join(Connection, Connection.id == ActionRow.connection_id)
            .where(
                Connection.organization_id == org_id,
                ActionRow.key.in_(list(action_keys)),
                ActionRow.state == ActionState.AWAITING_APPROVAL.value,
            )
        ).all()
        for row in rows:
            row.state = ActionState.PLANNED.value
            uow.activities.record(
                org_id, "action.approved", row.key, connection_id=row.connection_id, actor=actor, at=now
            )
        uow.commit()
        return len(rows)
