"""Planning into the outbox and carrying actions out exactly once, against an in-memory ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import AuthError, MailTransient, Rejected, Transient
from connector.outbox.executor import ExecutionReport, Executor, approve
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, insert_action, invoice_snapshot

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # 14 days late, inside the London send window

RULES = policy_from_dict(
    {
        "late_fees": {"flat": {"kind": "flat", "amount": 25, "warning_required": False}},
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late", "offset": 14, "remind": "firm", "note": "Reminder sent", "late_fee": "flat"},
                ],
            }
        },
    }
)


def snapshot(n: int, **changes: object) -> InvoiceSnapshot:
    base = invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20))
    return replace(base, **changes)  # type: ignore[arg-type]


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.fail_with: Exception | None = None

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((action.key, [i.number for i in invoices]))
        return f"<{action.key}@nudge.test>"


def _setup(store: Store, invoices: list[InvoiceSnapshot], *, approval: bool = False) -> int:
    return connection_with_invoices(
        store,
        invoices,
        first_seen_at=NOW - timedelta(days=20),
        cadence="standard",
        time_zone="Europe/London",
        approval_mode=approval,
    )


def _states(store: Store) -> dict[str, str]:
    with store.unit_of_work() as uow:
        return {row.kind: row.state for row in uow.session.scalars(select(ActionRow))}


def test_planning_twice_inserts_nothing_new(store: Store) -> None:
    cid = _setup(store, [snapshot(1), snapshot(2)])
    first = plan_connection(store, cid, RULES, NOW)
    # The latest due step of each invoice: one reminder listing both, and a note and a fee for each.
    assert first.planned == 5
    again = plan_connection(store, cid, RULES, NOW + timedelta(minutes=5))
    assert (again.planned, again.already_known) == (0, 0)  # history already holds them: nothing is re-planned
    with store.unit_of_work() as uow:
        kinds = sorted(row.kind for row in uow.session.scalars(select(ActionRow)))
    assert kinds == ["late_fee", "late_fee", "note", "note", "remind"]


def test_every_action_is_carried_out_once_and_replays_write_nothing(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger, outbox = FakeLedger([snapshot(1)]), Outbox()
    executor = Executor(store, ledger, outbox, lambda: NOW, "w1")
    report = executor.run_due(cid)
    assert sorted(report.done)
    assert not report.failed
    assert _states(store) == {"remind": "done", "note": "done", "late_fee": "done"}
    assert len(outbox.sent) == 1
    assert outbox.sent[0][1] == ["INV-1"]
    # the step's note, the fee invoice, and the note the fee leaves on its invoice (issue 12)
    assert sorted(ref.split("-")[0] for ref, _ in ledger.writes.values()) == ["fee", "note", "note"]
    assert any(detail.startswith("25.00 GBP Late fee on invoice INV-1") for _, detail in ledger.writes.values())
    assert executor.run_due(cid).done == []  # nothing left
    plan_connection(store, cid, RULES, NOW + timedelta(hours=1))
    assert executor.run_due(cid).done == []
    assert len(ledger.writes) == 3
    assert len(outbox.sent) == 1


def test_paid_in_the_meantime_cancels_just_in_time(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger = FakeLedger([snapshot(1, balance=Money.of("0", "GBP"), status=InvoiceStatus.PAID)])
    outbox = Outbox()
    report = Executor(store, ledger, outbox, lambda: NOW, "w1").run_due(cid)
    assert len(report.cancelled) == 3
    assert ledger.writes == {}
    assert outbox.sent == []
    assert set(_states(store).values()) == {"cancelled"}


def test_a_crash_after_the_provider_call_is_retried_with_the_same_key(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger = FakeLedger([snapshot(1)])
    executor = Executor(store, ledger, Outbox(), lambda: NOW, "w1")
    with store.unit_of_work() as uow:
        fee_id = uow.session.scalars(select(ActionRow.id).where(ActionRow.kind == "late_fee")).one()
    claimed = executor._claim(fee_id)
    assert claimed is not None
    ledger.create_fee_invoice(snapshot(1), Money.of("25", "GBP"), "fee", claimed[0])  # the call went through...
    # ...and the worker died before recording it. After the lease expires another worker retries.
    later = Executor(store, ledger, Outbox(), lambda: NOW + timedelta(minutes=11), "w2")
    assert later.recover(cid).retried == [claimed[0]]
    later.run_due(cid)
    fees = [detail for key, (ref, detail) in ledger.writes.items() if ref.startswith("fee")]
    assert len(fees) == 1
    assert _states(store)["late_fee"] == "done"


def test_a_crash_during_smtp_leaves_the_email_uncertain_never_resent(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    outbox = Outbox()
    outbox.fail_with = KeyboardInterrupt()  # stands in for the process dying inside send()
    executor = Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW, "w1")
    with store.unit_of_work() as uow:
        remind_id, remind_key = uow.session.execute(
            select(ActionRow.id, ActionRow.key).where(ActionRow.kind == "remind")
        ).one()
    with pytest.raises(KeyboardInterrupt):
        executor.run_one(remind_id, ExecutionReport())
    assert _states(store)["remind"] == "sending"
    outbox.fail_with = None
    later = Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW + timedelta(minutes=11), "w2")
    report = later.run_due(cid)
    assert report.uncertain == [remind_key]
    assert outbox.sent == []
    assert _states(store)["remind"] == "uncertain"


def test_failures_are_classified(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger, outbox = FakeLedger([snapshot(1)]), Outbox()
    ledger.fail_with = Rejected("Business Validation Error: account is inactive")
    outbox.fail_with = MailTransient("mail server refused the connection")
    report = Executor(store, ledger, outbox, lambda: NOW, "w1", max_attempts=2).run_due(cid)
    assert len(report.failed) == 1
    assert len(report.retried) == 1
    assert len(report.deferred) == 1  # the step's note waits for its reminder, which has not gone out
    states = _states(store)
    assert states["note"] == "planned"
    assert states["late_fee"] == "failed"
    assert states["remind"] == "planned"
    with store.unit_of_work() as uow:
        remind = uow.session.scalars(select(ActionRow).where(ActionRow.kind == "remind")).one()
        assert remind.scheduled_at > NOW  # retried later, not now
    report = Executor(store, ledger, outbox, lambda: NOW + timedelta(hours=1), "w1", max_attempts=2).run_due(cid)
    assert len(report.failed) == 2
    assert _states(store)["remind"] == "failed"
    with store.unit_of_work() as uow:
        note = uow.session.scalars(select(ActionRow).where(ActionRow.kind == "note")).one()
        assert "account is inactive" in note.error


def test_transient_then_auth_failure(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger = FakeLedger([snapshot(1)])
    ledger.fail_with = Transient("QuickBooks answered 503")
    report = Executor(store, ledger, Outbox(), lambda: NOW, "w1").run_due(cid)
    assert len(report.retried) == 2
    assert len(report.done) == 1  # the email went out; ledger writes wait
    ledger.fail_with = AuthError("grant revoked")
    with pytest.raises(AuthError):
        Executor(store, ledger, Outbox(), lambda: NOW + timedelta(hours=1), "w1").run_due(cid)
    assert sorted(_states(store).values()) == ["done", "planned", "planned"]


def test_approval_mode_holds_everything_until_approved(store: Store) -> None:
    cid = _setup(store, [snapshot(1)], approval=True)
    report = plan_connection(store, cid, RULES, NOW)
    assert report.awaiting_approval == 3
    ledger, outbox = FakeLedger([snapshot(1)]), Outbox()
    executor = Executor(store, ledger, outbox, lambda: NOW, "w1")
    assert executor.run_due(cid).done == []
    assert outbox.sent == []
    with store.unit_of_work() as uow:
        org_id = uow.connections.by_id(cid).organization_id  # type: ignore[union-attr]
        keys = list(uow.session.scalars(select(ActionRow.key).where(ActionRow.kind == "remind")))
    assert approve(store, org_id + 1, keys, "mallory", NOW) == 0  # another organization cannot approve
    assert approve(store, org_id, keys, "owner@a", NOW) == 1
    assert len(executor.run_due(cid).done) == 1
    assert len(outbox.sent) == 1


def test_an_email_the_server_may_have_taken_is_uncertain_at_once(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    outbox = Outbox()
    outbox.fail_with = MailTransient("connection reset after DATA", maybe_sent=True)
    report = Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW, "w1").run_due(cid)
    assert len(report.uncertain) == 1
    assert _states(store)["remind"] == "uncertain"
    outbox.fail_with = None
    Executor(store, FakeLedger([snapshot(1)]), outbox, lambda: NOW + timedelta(days=1), "w1").run_due(cid)
    assert outbox.sent == []  # never re-sent automatically


def _action(kind: str, key: str, amount: str, **extra: object) -> Action:
    from connector.domain.actions import ActionKind

    return Action(
        key=key,
        kind=ActionKind(kind),
        connection_id="1",
        customer_external_id="c1",
        invoice_external_ids=("1",),
        scheduled_at=NOW - timedelta(minutes=1),
        local_date=NOW.date(),
        step_id="late",
        rule="test",
        amount=Money.of(amount, "GBP"),
        due_date=DUE,
        **extra,  # type: ignore[arg-type]
    )


def test_fee_reversal_voids_a_whole_fee_and_credits_a_partial_one(store: Store) -> None:
    cid = _setup(store, [snapshot(1)])
    insert_action(store, cid, _action("late_fee", "fee-a", "25.00"), state="done", ref="fee-invoice-9")
    insert_action(store, cid, _action("late_fee", "fee-b", "30.00"), state="done", ref="fee-invoice-10")
    insert_action(store, cid, _action("fee_reversal", "rev-a", "25.00", reverses="fee-a"))
    insert_action(store, cid, _action("fee_reversal", "rev-b", "12.00", reverses="fee-b"))
    paid = snapshot(1, balance=Money.of("0", "GBP"), status=InvoiceStatus.PAID)  # reversals apply to paid ones too
    ledger = FakeLedger([paid])
    report = Executor(store, ledger, Outbox(), lambda: NOW, "w1").run_due(cid)
    assert sorted(report.done) == ["rev-a", "rev-b"]
    assert ledger.writes["rev-a"] == ("void-1", "fee-invoice-9")  # the whole fee: its invoice is voided
    assert ledger.writes["rev-b"][0].startswith("credit-")  # part of it: a credit, with the reason
    assert "Late fee reversed on invoice INV-1" in ledger.writes["rev-b"][1]


def test_discount_credit_only_when_the_balance_is_the_earned_discount(store: Store) -> None:
    cid = _setup(store, [snapshot(1), snapshot(2)])
    insert_action(store, cid, _action("discount_credit", "disc-1", "10.00"))
    second = _action("discount_credit", "disc-2", "10.00")
    insert_action(store, cid, replace(second, invoice_external_ids=("2",)))
    ledger = FakeLedger([snapshot(1, balance=Money.of("10.00", "GBP")), snapshot(2, balance=Money.of("60.00", "GBP"))])
    report = Executor(store, ledger, Outbox(), lambda: NOW, "w1").run_due(cid)
    assert report.done == ["disc-1"]
    assert report.cancelled == ["disc-2"]
    assert ledger.writes["disc-1"][1] == "Early-payment discount on invoice INV-1"
    assert "disc-2" not in ledger.writes  # the customer paid less than total - discount: no credit


def _row(store: Store, kind: str) -> ActionRow:
    with store.unit_of_work() as uow:
        return uow.session.scalars(select(ActionRow).where(ActionRow.kind == kind)).one()


def test_a_mail_failure_before_data_backs_off_exponentially_up_to_a_cap_shown_in_the_row(store: Store) -> None:
    """Issue 10 item 13 (RS-05): nothing accepted before DATA -> retried with real, capped back-off."""
    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    outbox = Outbox()
    outbox.fail_with = MailTransient("the mail server timed out before DATA")
    moment = NOW
    waits: list[timedelta] = []
    for _ in range(5):
        executor = Executor(
            store,
            FakeLedger([snapshot(1)]),
            outbox,
            lambda moment=moment: moment,
            "w1",
            max_attempts=10,
            retry_base=timedelta(minutes=1),
            retry_cap=timedelta(minutes=5),
        )
        executor.run_due(cid)
        remind = _row(store, "remind")
        assert remind.state == "planned"
        waits.append(remind.scheduled_at - moment)
        assert f"next attempt at {remind.scheduled_at:%Y-%m-%d %H:%M} UTC" in remind.error
        assert f"attempt {remind.attempts} of 10" in remind.error
        moment = remind.scheduled_at
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 5, 5)]
    assert outbox.sent == []


def test_a_stop_request_ends_the_batch_after_the_action_in_hand(store: Store) -> None:
    """Issue 10 item 16 (RS-39): the executor checks the stop flag between actions; the rest stays planned."""
    cid = _setup(store, [snapshot(1), snapshot(2, customer_external_id="c2", customer_name="Cust Two")])
    plan_connection(store, cid, RULES, NOW)
    ledger, outbox = FakeLedger([snapshot(1), snapshot(2, customer_external_id="c2")]), Outbox()
    report = Executor(store, ledger, outbox, lambda: NOW, "w1").run_due(
        cid, should_stop=lambda: bool(outbox.sent or ledger.writes)
    )
    assert report.stopped
    assert len(report.done) == 1
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(ActionRow)))
    assert sorted(row.state for row in rows).count("planned") == len(rows) - 1
    assert all(row.lease_owner == "" and row.lease_until is None for row in rows)


def test_a_rate_limit_leaves_the_action_planned_for_the_resume_instant_without_an_attempt(store: Store) -> None:
    """Issue 10 item 17 (RS-21): a provider limit is not the action's failure; it waits for the window."""
    from connector.errors import RateLimited

    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger = FakeLedger([snapshot(1)])
    ledger.fail_with = RateLimited("Xero daily API limit reached", retry_after=66975, limit="day")
    with pytest.raises(RateLimited):
        Executor(store, ledger, Outbox(), lambda: NOW, "w1").run_due(cid)
    rows = [_row(store, "note"), _row(store, "late_fee")]
    assert {row.state for row in rows} == {"planned"}
    assert all(row.attempts == 0 for row in rows)
    limited = [row for row in rows if row.error]
    assert len(limited) == 1
    assert limited[0].scheduled_at == NOW + timedelta(seconds=66975)


def test_a_replayed_write_whose_object_is_gone_is_superseded_not_stored(store: Store) -> None:
    """Issue 10 item 7 (RS-03): a replayed fee invoice deleted since is `superseded` with the reason; no dead Id."""
    from connector.errors import ReplayedObjectGone
    from connector.storage.tables import Activity

    cid = _setup(store, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    ledger = FakeLedger([snapshot(1)])
    ledger.fail_with = ReplayedObjectGone(
        "QuickBooks answered the retried fee invoice with invoice 77, which was deleted since", external_id="77"
    )
    Executor(store, ledger, Outbox(), lambda: NOW, "w1").run_due(cid)
    fee = _row(store, "late_fee")
    assert fee.state == "superseded"
    assert fee.external_ref == ""
    assert "deleted since" in fee.error
    with store.unit_of_work() as uow:
        kinds = list(uow.session.scalars(select(Activity.kind).where(Activity.subject == fee.key)))
    assert "action.superseded" in kinds
    assert Executor(store, ledger, Outbox(), lambda: NOW + timedelta(days=1), "w1").run_due(cid).done == []
