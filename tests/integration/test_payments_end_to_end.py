"""Issue 11 acceptance, end to end on both emulators (real HTTP, the real SDKs, a real store): the
ledger's payments drive the rules - a payment dated before a fee's assessment that arrives after the
fee is exactly one reversal; a discount-window payment is exactly one credit; a plan kept and a plan broken.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.storage.tables import Installment, Invoice, PaymentPlan
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import customer_email

PROVIDERS = ["quickbooks", "xero"]
FEES = {"flat": {"kind": "flat", "amount": 25, "warning_required": False}}


def _kinds(world: Pipeline, connection: int, state: str = "done") -> list[str]:
    return sorted(row.kind for row in world.actions(connection) if row.state == state)


def _setup(world: Pipeline, name: str, issued: date, due: date, amount: str = "500.00") -> tuple[str, str, int]:
    kit = world.kit
    tenant = kit.add_company(name)
    customer = kit.add_customer(tenant, f"{name} Customer", customer_email(f"{name} Customer"))
    invoice = kit.add_invoice(tenant, customer, "PM-1", Decimal(amount), "", issued, due)
    return tenant, invoice, world.connect(tenant)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_payment_dated_before_the_fee_arriving_after_it_is_one_reversal(provider: str, tmp_path: Path) -> None:
    """A payment dated before a fee's assessment arrives after the fee: exactly one reversal in the ledger."""
    now = datetime.now(UTC)
    today = now.date()
    steps = [{"id": "late", "offset": 3, "late_fee": "flat"}]
    with pipeline(provider, tmp_path, rules(steps, late_fees=FEES), start=now) as world:
        tenant, invoice, connection = _setup(
            world, "Bank Lag Ltd", today - timedelta(days=40), today - timedelta(days=10)
        )
        world.turn(connection)
        assert _kinds(world, connection) == ["late_fee"]
        before = world.kit.ledger_writes(tenant)
        world.kit.pay(tenant, invoice, Decimal("500.00"), today - timedelta(days=2))  # booked after the fee
        for _ in range(3):
            world.clock.advance(timedelta(hours=1))
            world.turn(connection)
        assert _kinds(world, connection) == ["fee_reversal", "late_fee"]
        after = world.kit.ledger_writes(tenant)
        [fee] = [row.external_ref for row in world.actions(connection) if row.kind == "late_fee"]
        voided = world.kit.balance(tenant, fee) == 0
        credited = after["credits"] - before["credits"]
        assert (voided, credited) in ((True, 0), (False, 1))  # the fee invoice voided, or one credit against it
        world.clock.advance(timedelta(hours=1))
        world.turn(connection)
        assert world.kit.ledger_writes(tenant) == after


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_discount_window_payment_is_one_credit(provider: str, tmp_path: Path) -> None:
    """Total less the discount paid by the deadline: exactly one credit, allocated to the invoice."""
    now = datetime.now(UTC)
    today = now.date()
    steps = [{"id": "offer", "offset": -28, "remind": "firm", "discount": "2-10"}]
    rule_set = rules(steps, discounts={"2-10": {"percent": 2, "days": 10}})
    with pipeline(provider, tmp_path, rule_set, start=now) as world:
        tenant, invoice, connection = _setup(
            world, "Early Bird Ltd", today - timedelta(days=2), today + timedelta(days=28)
        )
        world.turn(connection)
        assert "discount_offer" in _kinds(world, connection)
        world.kit.pay(tenant, invoice, Decimal("490.00"), today)
        for _ in range(3):
            world.clock.advance(timedelta(hours=1))
            world.turn(connection)
        assert _kinds(world, connection).count("discount_credit") == 1
        assert world.kit.ledger_writes(tenant)["credits"] == 1
        assert world.kit.balance(tenant, invoice) == Decimal("0")


def _plan(world: Pipeline, connection: int, invoice: str, created: datetime, dates: list[date]) -> int:
    with world.services.store.unit_of_work() as uow:
        plan = PaymentPlan(connection_id=connection, invoice_external_id=invoice, policy="monthly", created_at=created)
        plan.installments = [Installment(due_date=d, amount=Decimal("250.00"), currency="USD") for d in dates]
        uow.session.add(plan)
        uow.commit()
        return plan.id


def _plan_state(world: Pipeline, plan_id: int) -> str:
    with world.services.store.unit_of_work() as uow:
        row = uow.session.get(PaymentPlan, plan_id)
        assert row is not None
        return row.state


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_plan_kept_and_a_plan_broken(provider: str, tmp_path: Path) -> None:
    """Installments paid on time keep a plan; a missed one past its grace breaks it and the cadence resumes."""
    now = datetime.now(UTC)
    today = now.date()
    steps = [{"id": "late", "offset": 3, "remind": "firm"}]
    rule_set = rules(steps, payment_plans={"monthly": {"grace_days": 3, "remind_offsets": [0], "template": "firm"}})
    with pipeline(provider, tmp_path, rule_set, start=now) as world:
        issued, due = today - timedelta(days=40), today - timedelta(days=10)
        kept_tenant, kept_invoice, kept = _setup(world, "Keeper Ltd", issued, due)
        _, _, broken = _setup(world, "Breaker Ltd", issued, due)
        dates = [today + timedelta(days=1), today + timedelta(days=2)]
        world.turn(kept)
        world.turn(broken)
        kept_plan = _plan(world, kept, kept_invoice, now - timedelta(days=1), dates)
        broken_plan = _plan(world, broken, _only_invoice(world, broken), now - timedelta(days=1), dates)
        world.kit.pay(kept_tenant, kept_invoice, Decimal("250.00"), dates[0])
        world.kit.pay(kept_tenant, kept_invoice, Decimal("250.00"), dates[1])
        world.clock.advance(timedelta(hours=1))  # the incremental sync brings the payments
        world.turn(kept)
        world.clock.advance(timedelta(days=6))
        world.turn(kept)
        world.turn(broken)
        assert _plan_state(world, kept_plan) == "kept"
        assert _plan_state(world, broken_plan) == "broken"
        assert _kinds(world, broken).count("plan_broken") == 1
        assert "plan_broken" not in _kinds(world, kept)


def _only_invoice(world: Pipeline, connection: int) -> str:
    with world.services.store.unit_of_work() as uow:
        return uow.session.scalars(select(Invoice.external_id).where(Invoice.connection_id == connection)).one()
