"""Every ledger write leaves a note (issue 12): a late fee, a discount credit and a fee reversal each write a
dated note on the original invoice saying what Nudge did and why, in the same attempt, exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from connector.domain.actions import Action, ActionKind, FeeDetail, FeeWarning, ReminderItem
from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import Rejected, Transient
from connector.outbox.executor import Executor, note_key
from connector.ports import AccountingAdapter, WriteResult
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, insert_action, invoice_snapshot

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 23, 30, tzinfo=UTC)
GBP = "GBP"


class NoMail:
    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        raise AssertionError("no reminder is carried out in these tests")


class NoteTrouble(FakeLedger):
    """A ledger whose notes fail with `note_error` (`times` times) while every other write works."""

    def __init__(self, invoices: list[InvoiceSnapshot], note_error: Exception, times: int = 1) -> None:
        super().__init__(invoices)
        self.note_error = note_error
        self.times = times

    def add_note(self, invoice: InvoiceSnapshot, text: str, key: str) -> WriteResult:
        if self.times:
            self.times -= 1
            raise self.note_error
        return super().add_note(invoice, text, key)


def _invoice(n: int, **changes: object) -> InvoiceSnapshot:
    return replace(invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20)), **changes)  # type: ignore[arg-type]


def _setup(store: Store, invoices: list[InvoiceSnapshot]) -> int:
    return connection_with_invoices(store, invoices, first_seen_at=NOW - timedelta(days=20), time_zone="Europe/London")


def _action(kind: ActionKind, key: str, amount: str, rule: str, **extra: object) -> Action:
    return Action(
        key=key,
        kind=kind,
        connection_id="1",
        customer_external_id="c1",
        invoice_external_ids=("1",),
        scheduled_at=NOW - timedelta(minutes=1),
        local_date=NOW.date(),
        step_id="late-14",
        rule=rule,
        amount=Money.of(amount, GBP),
        due_date=DUE,
        customer_name="Cust One",
        **extra,  # type: ignore[arg-type]
    )


def _fee(key: str = "fee-a") -> Action:
    detail = FeeDetail(
        policy="monthly_interest",
        assessed_on=date(2026, 11, 16),
        balance=Money.of("500.00", GBP),
        lines=(("Interest 1 Nov - 16 Nov", Money.of("12.50", GBP)),),
    )
    return _action(ActionKind.LATE_FEE, key, "12.50", "late fee 'monthly_interest' 14 days after due", fee=detail)


def _warning_reminder(cid: int, sent_on: date, policy: str = "monthly_interest") -> Action:
    warning = FeeWarning(policy, "Interest at 8 % a year", "interest", date(2026, 11, 16))
    item = ReminderItem(
        "1",
        "INV-1",
        DUE,
        Money.of("500.00", GBP),
        Money.of("500.00", GBP),
        5,
        "firm",
        "firm",
        "m1",
        fee_warning=warning,
    )
    sent = datetime.combine(sent_on, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    return Action("warn", ActionKind.REMIND, str(cid), "c1", ("1",), sent, sent_on, "firm", "rule", items=(item,))


def _row(store: Store, key: str) -> ActionRow:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ActionRow).where(ActionRow.key == key)).one()
        uow.session.expunge(row)
        return row


def _notes(ledger: FakeLedger) -> dict[str, str]:
    return {key: detail for key, (ref, detail) in ledger.writes.items() if ref.startswith("note")}


def test_note_keys_are_the_action_key_hashed_with_a_suffix() -> None:
    assert note_key("fee-a") == hashlib.sha256(b"fee-a:note").hexdigest()[:40]
    assert len(note_key("x" * 40)) == 40


def test_a_late_fee_leaves_a_dated_note_saying_what_why_and_when_the_customer_was_told(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, _warning_reminder(cid, date(2026, 11, 9)), state="done")
    insert_action(store, cid, _fee())
    ledger = FakeLedger([_invoice(1)])
    report = Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid)
    assert report.done == ["fee-a"]
    assert ledger.writes["fee-a"][0] == "fee-1"
    assert _notes(ledger) == {
        note_key("fee-a"): "Nudge: late fee of 12.50 GBP charged as fee invoice fee-1 under policy "
        "'monthly_interest' (step 'late-14'); the customer was told on 2026-11-09 "
        "(late fee 'monthly_interest' 14 days after due)."
    }
    row = _row(store, "fee-a")
    assert (row.state, row.external_ref, row.error) == ("done", "fee-1", "")


def test_a_fee_without_a_warning_on_record_says_so(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, _warning_reminder(cid, date(2026, 11, 9), policy="another_policy"), state="done")
    insert_action(store, cid, _fee())
    ledger = FakeLedger([_invoice(1)])
    Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid)
    [text] = _notes(ledger).values()
    assert "no fee warning to them is on record" in text


def test_a_note_that_fails_for_now_retries_the_action_and_the_fee_is_written_once(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, _fee())
    ledger = NoteTrouble([_invoice(1)], Transient("Xero answered 503"))
    first = Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid)
    assert first.retried == ["fee-a"]
    row = _row(store, "fee-a")
    assert (row.state, row.external_ref) == ("planned", "")
    assert "Xero answered 503" in row.error
    assert list(ledger.writes) == ["fee-a"]  # the fee is in the ledger; its note is not yet
    second = Executor(store, ledger, NoMail(), lambda: row.scheduled_at, "w1").run_due(cid)
    assert second.done == ["fee-a"]
    assert sorted(ledger.writes) == sorted(["fee-a", note_key("fee-a")])  # the retry replayed the fee
    assert _row(store, "fee-a").external_ref == "fee-1"
    Executor(store, ledger, NoMail(), lambda: row.scheduled_at + timedelta(hours=1), "w1").run_due(cid)
    assert len(ledger.writes) == 2


def test_a_note_the_ledger_refuses_for_good_keeps_the_fee_recorded_and_says_the_note_is_missing(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, _fee())
    ledger = NoteTrouble([_invoice(1)], Rejected("The QuickBooks invoice kept changing"))
    report = Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid)
    assert report.done == ["fee-a"]
    row = _row(store, "fee-a")
    assert (row.state, row.external_ref) == ("done", "fee-1")  # never lose the ref of a fee that exists
    assert "the ledger refused its note: The QuickBooks invoice kept changing" in row.error


def test_a_discount_credit_leaves_a_note(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    rule = "early-payment discount 'early': total less 2 % paid by 2026-10-20; credit the remaining 10.00 GBP"
    insert_action(store, cid, _action(ActionKind.DISCOUNT_CREDIT, "disc-1", "10.00", rule))
    ledger = FakeLedger([_invoice(1, balance=Money.of("10.00", GBP))])
    assert Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid).done == ["disc-1"]
    assert _notes(ledger) == {
        note_key("disc-1"): f"Nudge: early-payment discount of 10.00 GBP credited as credit credit-1 ({rule})."
    }


def test_fee_reversals_leave_a_note_on_the_original_invoice_void_or_credit(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, replace(_fee("fee-a"), amount=Money.of("25.00", GBP)), state="done", ref="fee-invoice-9")
    insert_action(store, cid, replace(_fee("fee-b"), amount=Money.of("30.00", GBP)), state="done", ref="fee-invoice-10")
    why = "a payment dated on or before 2026-11-16 reduces late fee 'monthly_interest' assessed that day"
    insert_action(store, cid, _action(ActionKind.FEE_REVERSAL, "rev-a", "25.00", why, reverses="fee-a"))
    insert_action(store, cid, _action(ActionKind.FEE_REVERSAL, "rev-b", "12.00", why, reverses="fee-b"))
    paid = _invoice(1, balance=Money.of("0", GBP), status=InvoiceStatus.PAID)
    ledger = FakeLedger([paid])
    assert sorted(Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid).done) == ["rev-a", "rev-b"]
    notes = _notes(ledger)
    assert notes[note_key("rev-a")] == (
        f"Nudge: late fee of 25.00 GBP reversed: fee invoice fee-invoice-9 voided ({why})."
    )
    credit_ref = ledger.writes["rev-b"][0]
    assert notes[note_key("rev-b")] == f"Nudge: late fee of 12.00 GBP reversed as credit {credit_ref} ({why})."


def test_a_plain_note_is_one_write_and_leaves_no_second_note(store: Store) -> None:
    cid = _setup(store, [_invoice(1)])
    insert_action(store, cid, _action(ActionKind.NOTE, "note-1", "0", "step note", text="Reminder sent"))
    ledger = FakeLedger([_invoice(1)])
    Executor(store, ledger, NoMail(), lambda: NOW, "w1").run_due(cid)
    assert ledger.writes == {"note-1": ("note-1", "Reminder sent")}
