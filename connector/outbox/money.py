"""The ledgers' money as planning needs it: dated payments per invoice, unapplied credit per customer,
payment plans, and Nudge's own documents (its fee invoices and credits), each loaded in one query per
connection (never one per invoice).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select

from connector.domain.actions import ActionKind
from connector.domain.model import Installment, Payment, PaymentKind, PaymentPlan, PaymentSnapshot
from connector.domain.money import Money
from connector.storage import UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Installment as InstallmentRow
from connector.storage.tables import PaymentPlan as PlanRow

# Ledger documents Nudge itself writes: a fee invoice, a credit (fee reversal or discount credit).
OWN_DOCUMENT_KINDS = (ActionKind.LATE_FEE.value, ActionKind.FEE_REVERSAL.value, ActionKind.DISCOUNT_CREDIT.value)
OWN_CREDIT_KINDS = (ActionKind.FEE_REVERSAL, ActionKind.DISCOUNT_CREDIT)
DONE_OR_PENDING = ("planned", "awaiting_approval", "running", "sending", "done", "uncertain")


@dataclass(frozen=True, slots=True)
class OwnDocument:
    """A ledger document Nudge created: its provider id, the action kind, and the invoice it belongs to."""

    external_ref: str
    kind: ActionKind
    origin_invoice_external_id: str


@dataclass(frozen=True, slots=True)
class LedgerMoney:
    """One connection's synced money, as the planner takes it."""

    payments: dict[str, tuple[Payment, ...]]  # by invoice external id, dated, customers' money only
    unapplied: dict[str, Money]  # by customer external id
    own: dict[str, OwnDocument]  # by external ref
    by_customer: dict[str, tuple[Payment, ...]] = field(default_factory=dict)  # applied payments, by customer

    def is_own_invoice(self, external_id: str) -> bool:
        """Whether the invoice `external_id` is a fee invoice Nudge wrote (ids repeat across entity types)."""
        document = self.own.get(external_id)
        return document is not None and document.kind is ActionKind.LATE_FEE


def own_documents(uow: UnitOfWork, connection_id: int) -> dict[str, OwnDocument]:
    """Nudge's fee invoices and credits in the ledger, recognised by the outbox's external refs (one query)."""
    rows = uow.session.execute(
        select(ActionRow.external_ref, ActionRow.kind, ActionRow.invoice_external_id).where(
            ActionRow.connection_id == connection_id,
            ActionRow.kind.in_(OWN_DOCUMENT_KINDS),
            ActionRow.external_ref != "",
        )
    )
    return {ref: OwnDocument(ref, ActionKind(kind), origin) for ref, kind, origin in rows}


def load_money(uow: UnitOfWork, connection_id: int) -> LedgerMoney:
    """Payments per invoice and unapplied credit per customer, without Nudge's own credits (two queries)."""
    own = own_documents(uow, connection_id)
    per_invoice: dict[str, list[Payment]] = defaultdict(list)
    per_customer: dict[str, list[Payment]] = defaultdict(list)
    unapplied: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for snapshot in uow.payments.for_connection(connection_id):
        document = own.get(snapshot.external_id)
        if snapshot.kind is PaymentKind.CREDIT and document is not None and document.kind in OWN_CREDIT_KINDS:
            continue  # Nudge's own credit note / credit memo (QuickBooks ids repeat across entity types)
        if snapshot.unapplied:
            unapplied[snapshot.customer_external_id][snapshot.amount.currency] += snapshot.amount.amount
        else:
            payment = _payment(snapshot)
            per_invoice[snapshot.invoice_external_id].append(payment)
            per_customer[snapshot.customer_external_id].append(payment)
    return LedgerMoney(
        {invoice: tuple(sorted(found, key=lambda p: p.paid_on)) for invoice, found in per_invoice.items()},
        {customer: _largest(amounts) for customer, amounts in unapplied.items()},
        own,
        {customer: tuple(sorted(found, key=lambda p: p.paid_on)) for customer, found in per_customer.items()},
    )


def _payment(snapshot: PaymentSnapshot) -> Payment:
    return Payment(snapshot.amount, snapshot.paid_on, f"{snapshot.kind.value}:{snapshot.external_id}")


def _largest(amounts: dict[str, Decimal]) -> Money:
    """A customer's unapplied money in its main currency (the hold compares it with same-currency balances)."""
    currency, amount = max(amounts.items(), key=lambda item: (item[1], item[0]))
    return Money.of(amount, currency)


def load_plans(uow: UnitOfWork, connection_id: int, time_zone: str) -> dict[str, PaymentPlan]:
    """Active payment plans by invoice external id (two queries: plans, then their installments)."""
    zone = ZoneInfo(time_zone)
    plans = list(
        uow.session.scalars(
            select(PlanRow).where(PlanRow.connection_id == connection_id, PlanRow.state.in_(("active", "broken")))
        )
    )
    if not plans:
        return {}
    items: dict[int, list[Installment]] = defaultdict(list)
    for row in uow.session.scalars(
        select(InstallmentRow)
        .where(InstallmentRow.plan_id.in_([p.id for p in plans]))
        .order_by(InstallmentRow.plan_id, InstallmentRow.due_date)
    ):
        items[row.plan_id].append(Installment(row.due_date, Money.of(row.amount, row.currency)))
    found: dict[str, PaymentPlan] = {}
    for plan in plans:
        if not items[plan.id]:
            continue
        found[plan.invoice_external_id] = PaymentPlan(
            invoice_external_id=plan.invoice_external_id,
            policy=plan.policy,
            created_on=plan.created_at.astimezone(zone).date(),
            installments=tuple(items[plan.id]),
            plan_id=str(plan.id),
        )
    return found


def closed_with_history(connection_id: int) -> Select[str]:
    """Invoices with a late fee Nudge charged (not cancelled), as a subquery: a paid one may still owe a reversal."""
    return select(ActionRow.invoice_external_id).where(
        ActionRow.connection_id == connection_id,
        ActionRow.kind == ActionKind.LATE_FEE.value,
        ActionRow.state.in_(DONE_OR_PENDING),
        ActionRow.invoice_external_id != "",
    )
