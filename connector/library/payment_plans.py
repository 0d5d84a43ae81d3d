"""Payment plans people agree with a customer: create one for an invoice, cancel it, list them, propose one.

A plan's installments must add up to the invoice's CURRENT (synced) balance exactly, in its currency, each
positive and written in its minor units, on strictly ascending dates from today (the client's local date).
It follows a payment-plan policy of the organization's library (by name, as PaymentPlan.policy stores it:
grace days and reminders). An invoice has at most one active plan: a second is refused until the first is
cancelled; a broken plan is replaced (cancelled) by a new one. The planner (connector.outbox.planning) chases
the installments instead of the due date. Every change is audited (entity "payment_plan", the plan's id) and
recorded as an activity naming the invoice, so its timeline shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.domain.calendar import add_months
from connector.domain.money import Money
from connector.domain.payment_plans import PlanError, equal_amounts
from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library import inputs
from connector.library.overrides import about_invoice, invoice_of, record_change
from connector.library.resolve import library_for
from connector.library.settings import InstallDefaults, client_today
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, Installment, Invoice, PaymentPlan

ACTIVE = "active"
BROKEN = "broken"
CANCELLED = "cancelled"
MAX_INSTALLMENTS = 120
EVERY = ("week", "fortnight", "month")


@dataclass(frozen=True, slots=True)
class InstallmentView:
    """One installment: the local date, the amount (text, in the invoice's minor units) and when it was paid."""

    due_date: date
    amount: str
    currency: str
    paid_at: datetime | None = None


@dataclass(frozen=True)
class PlanView:
    """One payment plan of an invoice."""

    id: int
    connection_id: int
    invoice_id: int
    invoice_external_id: str
    state: str  # active | kept | broken | cancelled
    policy: str
    grace_days: int
    created_at: datetime
    total: str
    currency: str
    installments: tuple[InstallmentView, ...]


@dataclass(frozen=True)
class Proposal:
    """Installments a person may start from: equal amounts, the remainder on the last."""

    invoice_id: int
    balance: str
    currency: str
    installments: tuple[InstallmentView, ...]


def _view(plan: PaymentPlan, invoice: Invoice) -> PlanView:
    items = tuple(
        InstallmentView(i.due_date, str(Money.of(i.amount, i.currency).amount), i.currency, i.paid_at)
        for i in sorted(plan.installments, key=lambda i: i.due_date)
    )
    currency = items[0].currency if items else invoice.currency
    total = sum((Decimal(i.amount) for i in items), Decimal(0))
    return PlanView(
        plan.id,
        plan.connection_id,
        invoice.id,
        invoice.external_id,
        plan.state,
        plan.policy,
        plan.grace_days,
        plan.created_at,
        str(Money.of(total, currency).amount),
        currency,
        items,
    )


def _plans(uow: UnitOfWork, invoice: Invoice) -> list[PaymentPlan]:
    return list(
        uow.session.scalars(
            select(PaymentPlan)
            .where(
                PaymentPlan.connection_id == invoice.connection_id,
                PaymentPlan.invoice_external_id == invoice.external_id,
            )
            .order_by(PaymentPlan.id.desc())
        )
    )


def list_plans(uow: UnitOfWork, org_id: int, connection_id: int, invoice_id: int) -> list[PlanView]:
    """Every plan of invoice `invoice_id`, newest first (UnknownRecord outside the client)."""
    _, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
    return [_view(plan, invoice) for plan in _plans(uow, invoice)]


def open_balance(invoice: Invoice) -> Money:
    """The invoice's balance when a plan may cover it (open, something left to pay), else InvalidInput."""
    if invoice.status != "open":
        message = f"the invoice is {invoice.status}: only an open invoice can have a payment plan"
        raise InvalidInput(message, "invoice_id")
    balance = Money.of(invoice.balance, invoice.currency)
    if not balance.is_positive():
        raise InvalidInput("the invoice has nothing left to pay", "invoice_id")
    return balance


def propose_plan(
    uow: UnitOfWork,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    *,
    count: int,
    first: date | str,
    every: str = "month",
    now: datetime,
) -> Proposal:
    """`count` installments of the invoice's current balance (equal, the remainder on the last), the first on
    `first` (from today) and then every week, fortnight or month. Nothing is saved."""
    connection, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
    count = inputs.whole_number(count, "count", 1, MAX_INSTALLMENTS)
    start = inputs.coming_day(first, "first", client_today(uow, connection, now))
    if every not in EVERY:
        raise InvalidInput(f"every must be one of: {', '.join(EVERY)}", "every")
    balance = open_balance(invoice)
    try:
        amounts = equal_amounts(balance, count)
    except PlanError as exc:
        raise InvalidInput(str(exc), "count") from None
    dates = [_step(start, every, n) for n in range(count)]
    return Proposal(
        invoice.id,
        str(balance.amount),
        balance.currency,
        tuple(InstallmentView(d, str(a.amount), a.currency) for d, a in zip(dates, amounts, strict=True)),
    )


def _step(start: date, every: str, n: int) -> date:
    if every == "month":
        return add_months(start, n)
    return start + timedelta(days=(7 if every == "week" else 14) * n)


def check_installments(raw: Any, balance: Money, today: date) -> list[tuple[date, Decimal]]:
    """`raw` [{due_date, amount}] checked: from `today`, dates strictly up, amounts adding up to `balance` exactly."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
        raise InvalidInput("installments must list at least one {due_date, amount}", "installments")
    if len(raw) > MAX_INSTALLMENTS:
        raise InvalidInput(f"at most {MAX_INSTALLMENTS} installments", "installments")
    found: list[tuple[date, Decimal]] = []
    for index, item in enumerate(raw):
        where = f"installments[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} must be {{due_date, amount}}", where)
        unknown = sorted(str(k) for k in item if k not in ("due_date", "amount", "currency"))
        if unknown:
            raise InvalidInput(f"{where}: unknown field {unknown[0]!r}", f"{where}.{unknown[0]}")
        currency = item.get("currency")
        if currency not in (None, "") and inputs.currency(currency, f"{where}.currency") != balance.currency:
            raise InvalidInput(f"{where}: the invoice is in {balance.currency}, not {currency}", f"{where}.currency")
        when = inputs.coming_day(item.get("due_date"), f"{where}.due_date", today)
        if found and when <= found[-1][0]:
            raise InvalidInput(
                f"{where}.due_date: {when.isoformat()} must be after the installment before it "
                f"({found[-1][0].isoformat()}); dates go strictly up",
                f"{where}.due_date",
            )
        found.append((when, inputs.amount(item.get("amount"), balance.currency, f"{where}.amount", positive=True)))
    summed = sum((amount for _, amount in found), Decimal(0))
    if summed != balance.amount:
        off = summed - balance.amount
        direction = "more than" if off > 0 else "short of"
        raise InvalidInput(
            f"the installments add up to {summed} {balance.currency}, {abs(off)} {balance.currency} {direction} "
            f"the invoice's balance of {balance.amount} {balance.currency}",
            "installments",
        )
    return found


def _policy(uow: UnitOfWork, org_id: int, name: Any, defaults: InstallDefaults) -> tuple[str, int]:
    known = library_for(uow, org_id, defaults.rules).rules.payment_plans
    if not isinstance(name, str) or name not in known:
        listed = ", ".join(sorted(known)) or "none: add one to your library first"
        raise InvalidInput(f"policy must name a payment-plan policy of your library (known: {listed})", "policy")
    return name, known[name].grace_days


def create_plan(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    *,
    installments: Sequence[Mapping[str, Any]],
    policy: str,
    actor: str,
    now: datetime,
    defaults: InstallDefaults | None = None,
) -> PlanView:
    """A new active plan for invoice `invoice_id` (see the module's rules); InUse when one is active already."""
    defaults = defaults or InstallDefaults()
    with store.unit_of_work() as uow:
        connection, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
        # Lock the invoice row (PostgreSQL) so two people agreeing plans at once cannot both succeed.
        uow.session.execute(select(Invoice.id).where(Invoice.id == invoice.id).with_for_update())
        policy_name, grace = _policy(uow, org_id, policy, defaults)
        balance = open_balance(invoice)
        items = check_installments(installments, balance, client_today(uow, connection, now))
        existing = _plans(uow, invoice)
        active = next((plan for plan in existing if plan.state == ACTIVE), None)
        if active is not None:
            raise InUse(
                f"invoice {invoice.number or invoice.external_id} already has an active payment plan ({active.id}): "
                "cancel it first",
                "invoice_id",
            )
        for plan in existing:
            if plan.state == BROKEN:  # the new agreement replaces it; the planner reads one plan per invoice
                _cancel(uow, connection, invoice, plan, actor, now, reason="replaced by a new plan")
        plan = PaymentPlan(
            connection_id=connection_id,
            invoice_external_id=invoice.external_id,
            state=ACTIVE,
            policy=policy_name,
            grace_days=grace,
            created_at=now,
        )
        plan.installments = [Installment(due_date=d, amount=a, currency=balance.currency) for d, a in items]
        uow.session.add(plan)
        uow.flush()
        view = _view(plan, invoice)
        record_change(
            uow,
            connection,
            actor=actor,
            now=now,
            entity="payment_plan",
            entity_id=plan.id,
            kind="payment_plan.created",
            subject=invoice.number or invoice.external_id,
            before=None,
            after=_snapshot(view),
            about={**about_invoice(invoice), "plan_id": plan.id},
            change="create",
        )
        uow.commit()
        return view


def _snapshot(view: PlanView) -> dict[str, Any]:
    return {
        "state": view.state,
        "policy": view.policy,
        "grace_days": view.grace_days,
        "total": view.total,
        "currency": view.currency,
        "installments": [{"due_date": i.due_date, "amount": i.amount} for i in view.installments],
    }


def _cancel(
    uow: UnitOfWork,
    connection: Connection,
    invoice: Invoice,
    plan: PaymentPlan,
    actor: str,
    now: datetime,
    reason: str = "",
) -> None:
    before = _snapshot(_view(plan, invoice))
    plan.state = CANCELLED
    after = {**before, "state": CANCELLED, **({"reason": reason} if reason else {})}
    record_change(
        uow,
        connection,
        actor=actor,
        now=now,
        entity="payment_plan",
        entity_id=plan.id,
        kind="payment_plan.cancelled",
        subject=invoice.number or invoice.external_id,
        before=before,
        after=after,
        about={**about_invoice(invoice), "plan_id": plan.id},
    )


def cancel_plan(
    store: Store, org_id: int, connection_id: int, invoice_id: int, plan_id: int, actor: str, now: datetime
) -> PlanView:
    """Cancel plan `plan_id` of invoice `invoice_id` (active or broken); the cadence chases the due date again."""
    with store.unit_of_work() as uow:
        connection, invoice = invoice_of(uow, org_id, connection_id, invoice_id)
        plan = next((p for p in _plans(uow, invoice) if p.id == plan_id), None) if inputs.is_row_id(plan_id) else None
        if plan is None:
            raise UnknownRecord(f"no payment plan {plan_id} of this invoice", "plan_id")
        if plan.state not in (ACTIVE, BROKEN):
            raise InvalidInput(f"only an active or broken plan can be cancelled; this one is {plan.state}", "plan_id")
        _cancel(uow, connection, invoice, plan, actor, now)
        uow.commit()
        return _view(plan, invoice)
