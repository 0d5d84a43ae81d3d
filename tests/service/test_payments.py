"""Issue 11 (core): the ledgers' payments and credits synced into `payments` and fed to the rules:
fee reversal on a paid invoice, discount credit, payment plans kept and broken, the unapplied-credit
hold, a deleted payment that repeats nothing, and Nudge's own documents never chased."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.model import InvoiceSnapshot, InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.attribution import NO_STEP, attribute, recovery_by_step
from connector.outbox.executor import Executor
from connector.outbox.money import load_money, own_documents
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Installment, Payment, PaymentPlan
from connector.sync.credits import credits_read_since, refresh_open_credits
from connector.sync.invoices import sync_connection
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # 14 days late, inside the London send window

STEPS = [
    {"id": "offer", "offset": -25, "remind": "terms", "discount": "2-10"},
    {"id": "due", "offset": 0, "remind": "due_today"},
    {"id": "late", "offset": 14, "remind": "firm", "note": "Reminder sent", "late_fee": "flat"},
]
RULES = policy_from_dict(
    {
        "late_fees": {"flat": {"kind": "flat", "amount": 25, "warning_required": False}},
        "discounts": {"2-10": {"percent": 2, "days": 10}},
        "payment_plans": {"monthly": {"grace_days": 3, "remind_offsets": [-2, 0]}},
        "cadences": {"standard": {"time_zone": "Europe/London", "send_time": "09:30", "steps": STEPS}},
    }
)


class Outbox:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sent.append(action.key)
        return f"<{action.key}@nudge.test>"


def snapshot(n: int = 1, **changes: object) -> InvoiceSnapshot:
    base = invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20))
    return replace(base, **changes)  # type: ignore[arg-type]


def paid(n: int = 1, at: datetime = NOW + timedelta(days=1), balance: str = "0") -> InvoiceSnapshot:
    status = InvoiceStatus.PAID if Decimal(balance) == 0 else InvoiceStatus.OPEN
    return snapshot(n, balance=Money.of(balance, "GBP"), status=status, updated_at=at)


def _setup(store: Store, invoices: list[InvoiceSnapshot]) -> tuple[int, FakeLedger]:
    cid = connection_with_invoices(
        store, invoices, first_seen_at=NOW - timedelta(days=20), cadence="standard", time_zone="Europe/London"
    )
    ledger = FakeLedger(invoices)
    sync_connection(store, ledger, cid, lambda: NOW - timedelta(minutes=1))
    return cid, ledger


def _kinds(store: Store, *states: str) -> list[str]:
    with store.unit_of_work() as uow:
        query = select(ActionRow.kind)
        if states:
            query = query.where(ActionRow.state.in_(states))
        return sorted(uow.session.scalars(query))


def _payment_rows(store: Store) -> list[tuple[str, str, str, Decimal, bool]]:
    with store.unit_of_work() as uow:
        return [
            (row.kind, row.external_id, row.invoice_external_id, row.amount, row.voided)
            for row in uow.session.scalars(select(Payment).order_by(Payment.external_id, Payment.invoice_external_id))
        ]


def _turn(store: Store, ledger: FakeLedger, cid: int, at: datetime) -> None:
    sync_connection(store, ledger, cid, lambda: at)
    plan_connection(store, cid, RULES, at)
    Executor(store, ledger, Outbox(), lambda: at, "w1").run_due(cid)


def test_sync_replaces_each_money_objects_rows(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1), snapshot(2)])
    ledger.pay("P1", "1", "100.00", date(2026, 11, 10), currency="GBP")
    ledger.pay("P1", "2", "50.00", date(2026, 11, 10), currency="GBP")
    ledger.pay("P1", "", "20.00", date(2026, 11, 10), customer="c1", currency="GBP")
    ledger.pay("C7", "2", "10.00", date(2026, 11, 11), kind=PaymentKind.CREDIT, currency="GBP")
    sync_connection(store, ledger, cid, lambda: NOW)
    assert _payment_rows(store) == [
        ("credit", "C7", "2", Decimal("10.0000"), False),
        ("payment", "P1", "", Decimal("20.0000"), False),
        ("payment", "P1", "1", Decimal("100.0000"), False),
        ("payment", "P1", "2", Decimal("50.0000"), False),
    ]
    with store.unit_of_work() as uow:
        money = load_money(uow, cid)
    assert [p.amount for p in money.payments["2"]] == [Money.of("50", "GBP"), Money.of("10", "GBP")]
    assert money.unapplied == {"c1": Money.of("20", "GBP")}
    # the payment is re-applied in the ledger: its complete new set replaces the old rows
    ledger.payments[(PaymentKind.PAYMENT, "P1")] = []
    ledger.pay("P1", "1", "170.00", date(2026, 11, 10), currency="GBP")
    ledger.void("C7", PaymentKind.CREDIT)
    sync_connection(store, ledger, cid, lambda: NOW + timedelta(hours=1))
    assert _payment_rows(store) == [
        ("credit", "C7", "2", Decimal("10.0000"), True),
        ("payment", "P1", "1", Decimal("170.0000"), False),
    ]
    with store.unit_of_work() as uow:
        assert "2" not in load_money(uow, cid).payments  # a voided credit pays nothing
    ledger.remove("P1")
    sync_connection(store, ledger, cid, lambda: NOW + timedelta(hours=2))
    assert [row[1] for row in _payment_rows(store)] == ["C7"]


def test_a_payment_dated_before_the_fee_arriving_late_reverses_it_once(store: Store) -> None:
    """A payment dated on or before a fee's assessment, synced after the fee: exactly one reversal."""
    cid, ledger = _setup(store, [snapshot(1)])
    _turn(store, ledger, cid, NOW)
    assert _kinds(store, "done") == ["late_fee", "note", "remind"]
    # bank lag: paid on 14 November, booked after the fee of 16 November
    ledger.invoices["1"] = paid(1)
    ledger.changes = [paid(1)]
    ledger.pay("P1", "1", "500.00", date(2026, 11, 14), currency="GBP")
    later = NOW + timedelta(days=1, hours=1)
    _turn(store, ledger, cid, later)
    assert _kinds(store, "done") == ["fee_reversal", "late_fee", "note", "remind"]
    reversals = [w for w in ledger.writes.values() if w[0].startswith(("void", "credit"))]
    assert len(reversals) == 1
    # further turns repeat nothing, and neither does the payment's later deletion in the ledger
    ledger.changes = []
    _turn(store, ledger, cid, later + timedelta(hours=1))
    ledger.remove("P1")
    _turn(store, ledger, cid, later + timedelta(hours=2))
    assert _payment_rows(store) == []
    assert _kinds(store) == ["fee_reversal", "late_fee", "note", "remind"]
    assert len([w for w in ledger.writes.values() if w[0].startswith(("void", "credit"))]) == 1


def test_a_planned_reversal_whose_payment_is_deleted_is_cancelled(store: Store) -> None:
    """The payment that earned a reversal is deleted before the reversal ran: no reversal is written."""
    cid, ledger = _setup(store, [snapshot(1)])
    _turn(store, ledger, cid, NOW)
    ledger.invoices["1"] = paid(1)
    ledger.changes = [paid(1)]
    ledger.pay("P1", "1", "500.00", date(2026, 11, 14), currency="GBP")
    later = NOW + timedelta(days=1)
    sync_connection(store, ledger, cid, lambda: later)
    plan_connection(store, cid, RULES, later)
    assert "fee_reversal" in _kinds(store, "planned")
    ledger.remove("P1")
    ledger.invoices["1"] = snapshot(1, updated_at=later + timedelta(minutes=5))
    ledger.changes = [ledger.invoices["1"]]
    _turn(store, ledger, cid, later + timedelta(minutes=10))
    assert "fee_reversal" in _kinds(store, "cancelled")
    assert not [w for w in ledger.writes.values() if w[0].startswith(("void", "credit"))]


def test_a_reversal_planned_for_a_paid_invoice_survives_the_next_sync(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1)])
    _turn(store, ledger, cid, NOW)
    ledger.invoices["1"] = paid(1)
    ledger.changes = [paid(1)]
    ledger.pay("P1", "1", "500.00", date(2026, 11, 14), currency="GBP")
    later = NOW + timedelta(days=1)
    sync_connection(store, ledger, cid, lambda: later)
    plan_connection(store, cid, RULES, later)
    ledger.changes = [paid(1, at=later + timedelta(minutes=5))]  # the invoice is read again before the executor
    sync_connection(store, ledger, cid, lambda: later + timedelta(minutes=10))
    assert "fee_reversal" in _kinds(store, "planned")


def test_a_discount_window_payment_earns_exactly_one_credit(store: Store) -> None:
    """Total less 2 % paid by the deadline: one credit for the remaining discount, never repeated."""
    issued = date(2026, 11, 2)
    inv = snapshot(1, issue_date=issued, due_date=issued + timedelta(days=30))
    cid, ledger = _setup(store, [inv])
    offer_day = datetime(2026, 11, 9, 10, tzinfo=UTC)  # the offer step (Saturday 7 November) moved to Monday
    _turn(store, ledger, cid, offer_day)
    assert "discount_offer" in _kinds(store, "done")
    owing = replace(inv, balance=Money.of("10.00", "GBP"), updated_at=offer_day + timedelta(days=3))
    ledger.invoices["1"] = owing
    ledger.changes = [owing]
    ledger.pay("P1", "1", "490.00", date(2026, 11, 10), currency="GBP")
    for hours in (72, 73, 74):
        _turn(store, ledger, cid, offer_day + timedelta(hours=hours))
    credits = [w for w in ledger.writes.values() if w[0].startswith("credit")]
    assert credits == [(credits[0][0], "Early-payment discount on invoice INV-1")]
    assert _kinds(store, "done").count("discount_credit") == 1


def _plan(store: Store, cid: int, created: datetime, dates: list[date]) -> int:
    with store.unit_of_work() as uow:
        plan = PaymentPlan(connection_id=cid, invoice_external_id="1", policy="monthly", created_at=created)
        plan.installments = [Installment(due_date=d, amount=Decimal("250.00"), currency="GBP") for d in dates]
        uow.session.add(plan)
        uow.commit()
        return plan.id


def _plan_state(store: Store, plan_id: int) -> str:
    with store.unit_of_work() as uow:
        row = uow.session.get(PaymentPlan, plan_id)
        assert row is not None
        return row.state


def test_a_payment_plan_kept_by_payments(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1)])
    plan_id = _plan(store, cid, NOW - timedelta(days=10), [date(2026, 11, 20), date(2026, 12, 20)])
    _turn(store, ledger, cid, NOW)
    assert "late_fee" not in _kinds(store)  # the plan replaces the cadence
    ledger.pay("P1", "1", "250.00", date(2026, 11, 20), currency="GBP")
    half = paid(1, at=NOW + timedelta(days=5), balance="250.00")
    ledger.changes = [half]
    _turn(store, ledger, cid, datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert _plan_state(store, plan_id) == "active"
    ledger.pay("P2", "1", "250.00", date(2026, 12, 19), currency="GBP")
    ledger.changes = [paid(1, at=datetime(2026, 12, 19, 12, tzinfo=UTC))]
    _turn(store, ledger, cid, datetime(2026, 12, 19, 13, tzinfo=UTC))
    assert _plan_state(store, plan_id) == "kept"
    assert "plan_broken" not in _kinds(store)


def test_a_payment_plan_broken_resumes_the_cadence(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1)])
    plan_id = _plan(store, cid, NOW - timedelta(days=10), [date(2026, 11, 20), date(2026, 12, 20)])
    _turn(store, ledger, cid, NOW)
    _turn(store, ledger, cid, datetime(2026, 11, 25, 10, tzinfo=UTC))  # nothing paid by 20 + 3 days' grace
    assert _plan_state(store, plan_id) == "broken"
    assert _kinds(store).count("plan_broken") == 1
    _turn(store, ledger, cid, datetime(2026, 11, 26, 10, tzinfo=UTC))
    assert _kinds(store).count("plan_broken") == 1


def test_unapplied_credit_covering_the_balance_holds_the_reminder(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1)])
    ledger.pay("O1", "", "600.00", date(2026, 11, 10), customer="c1", kind=PaymentKind.OVERPAYMENT, currency="GBP")
    _turn(store, ledger, cid, NOW)
    assert "remind" not in _kinds(store)
    assert "hold" in _kinds(store)
    assert ledger.cursors[-1] is not None  # no extra call: the credit came with the sync


def test_nudges_own_fee_invoice_and_credit_are_recognised(store: Store) -> None:
    cid, ledger = _setup(store, [snapshot(1)])
    _turn(store, ledger, cid, NOW)
    fee_ref = next(ref for ref, _ in ledger.writes.values() if ref.startswith("fee"))
    fee_invoice = snapshot(2, external_id=fee_ref, number="FEE-1", updated_at=NOW + timedelta(hours=1))
    ledger.changes = [fee_invoice]
    later = NOW + timedelta(days=30)
    _turn(store, ledger, cid, later)
    with store.unit_of_work() as uow:
        own = own_documents(uow, cid)
        chased = list(uow.session.scalars(select(ActionRow.key).where(ActionRow.invoice_external_id == fee_ref)))
    assert own[fee_ref].origin_invoice_external_id == "1"
    assert chased == []


def test_each_payment_is_attributed_to_the_last_reminder_before_it(store: Store) -> None:
    """Per step: reminders sent, invoices paid within 7 days after, amount recovered; credits never count."""
    cid, ledger = _setup(store, [snapshot(1), snapshot(2)])
    _turn(store, ledger, cid, NOW)  # one reminder (step "late") listing both invoices
    ledger.pay("P1", "1", "500.00", date(2026, 11, 18), currency="GBP")  # 2 days after the reminder
    ledger.pay("P0", "2", "100.00", date(2026, 11, 15), currency="GBP")  # before any reminder was sent
    ledger.pay("P9", "2", "150.00", date(2026, 11, 30), currency="GBP")  # 14 days after: attributed, not "within 7"
    ledger.pay("C1", "2", "50.00", date(2026, 11, 19), kind=PaymentKind.CREDIT, currency="GBP")
    ledger.pay("O1", "", "70.00", date(2026, 11, 19), customer="c1", kind=PaymentKind.OVERPAYMENT, currency="GBP")
    sync_connection(store, ledger, cid, lambda: NOW + timedelta(days=15))
    with store.unit_of_work() as uow:
        attributed = {a.payment_external_id: a.step_id for a in attribute(uow, [cid], date(2026, 11, 1))}
        steps = {s.step_id: s for s in recovery_by_step(uow, [cid], date(2026, 11, 1))}
    assert attributed == {"P0": NO_STEP, "P1": "late", "P9": "late"}
    late = steps["late"]
    assert (late.reminders_sent, late.paid_within_7_days, late.payments) == (2, 1, 2)
    assert late.recovered_text() == "650.00 GBP"
    assert (steps[NO_STEP].payments, steps[NO_STEP].recovered_text()) == (1, "100.00 GBP")


def test_interest_on_a_partly_paid_invoice_counts_the_balance_outstanding_each_day(store: Store) -> None:
    """500.00 overdue from 2 November, 250.00 paid on 9 November: interest on 500 for 7 days, 250 for 7."""
    rules = policy_from_dict(
        {
            "late_fees": {
                "interest": {
                    "kind": "interest",
                    "annual_rate": "36.5",
                    "compensation": False,
                    "warning_required": False,
                    "accrue_before_connected": True,
                }
            },
            "cadences": {
                "standard": {
                    "time_zone": "Europe/London",
                    "send_time": "09:30",
                    "steps": [{"id": "late", "offset": 14, "late_fee": "interest"}],
                }
            },
        }
    )
    cid, ledger = _setup(store, [snapshot(1)])
    half = paid(1, at=NOW - timedelta(hours=2), balance="250.00")
    ledger.invoices["1"], ledger.changes = half, [half]
    ledger.pay("P1", "1", "250.00", date(2026, 11, 9), currency="GBP")
    sync_connection(store, ledger, cid, lambda: NOW)
    plan_connection(store, cid, rules, NOW)
    with store.unit_of_work() as uow:
        fee = uow.session.scalars(select(ActionRow).where(ActionRow.kind == "late_fee")).one()
    # 0.1 % a day: (500 x 7 + 250 x 7) x 0.001 = 5.25 (on today's balance alone it would be 3.50)
    assert fee.payload["amount"]["amount"] == "5.25"


def test_money_in_another_currency_than_its_invoice_is_left_out(store: Store) -> None:
    """Hostile ledger data: a USD payment on a GBP invoice never crashes planning and pays nothing."""
    cid, ledger = _setup(store, [snapshot(1)])
    ledger.pay("P1", "1", "500.00", date(2026, 11, 14), currency="USD")
    _turn(store, ledger, cid, NOW)
    assert _kinds(store, "done") == ["late_fee", "note", "remind"]


def test_open_credit_read_is_complete_a_remainder_it_no_longer_names_is_dropped(store: Store) -> None:
    """Issue 13: the open credit is read before acting, as a complete listing: an unapplied remainder stored for an
    object the listing no longer names (applied or voided since) stops holding reminders; one it names stays."""
    cid, ledger = _setup(store, [snapshot(1)])
    kept = PaymentSnapshot("OP-KEPT", PaymentKind.OVERPAYMENT, "", "C1", Money.of("10", "GBP"), DUE)
    gone = PaymentSnapshot("OP-GONE", PaymentKind.OVERPAYMENT, "", "C1", Money.of("20", "GBP"), DUE)
    with store.unit_of_work() as uow:
        uow.payments.replace(cid, {(PaymentKind.OVERPAYMENT, "OP-KEPT"): [kept]}, NOW)
        uow.payments.replace(cid, {(PaymentKind.OVERPAYMENT, "OP-GONE"): [gone]}, NOW)
        uow.commit()
    ledger.payments = {(PaymentKind.OVERPAYMENT, "OP-KEPT"): [kept]}

    calls = refresh_open_credits(store, ledger, cid, NOW)

    assert (calls, ledger.credit_reads) == (1, 1)
    with store.unit_of_work() as uow:
        left = sorted(uow.session.scalars(select(Payment.external_id).where(Payment.connection_id == cid)))
    assert left == ["OP-KEPT"]
    assert credits_read_since(store, cid, NOW)
    assert not credits_read_since(store, cid, NOW + timedelta(seconds=1))
