"""Glossary objects shared by every part of Nudge (docs/design.md "Glossary"), as immutable dataclasses.

Dates from the ledger (`issue_date`, `due_date`) are calendar dates in the organisation's zone;
instants (`updated_at`, `occurred_at`) are aware datetimes, normally UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from itertools import pairwise

from connector.domain.money import Money


class InvoiceStatus(StrEnum):
    """Provider-neutral invoice status."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOIDED = "voided"
    DELETED = "deleted"

    @property
    def is_closed(self) -> bool:
        """Paid, voided and deleted invoices are never chased."""
        return self in (InvoiceStatus.PAID, InvoiceStatus.VOIDED, InvoiceStatus.DELETED)


class ConnectionStatus(StrEnum):
    """Health of one connected accounting file."""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    DISCONNECTED = "disconnected"


class Role(StrEnum):
    """A user's role in an organization; owners manage members and connections, viewers only read."""

    OWNER = "owner"
    ACCOUNTANT = "accountant"
    VIEWER = "viewer"


class ActionState(StrEnum):
    """Life cycle of one outbox action (docs/design.md "Exactly-once effects")."""

    PLANNED = "planned"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SENDING = "sending"
    DONE = "done"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SUPERSEDED = "superseded"  # a replayed write named a record deleted since: not done, not retried under this key


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment.isoformat()}")


@dataclass(frozen=True, slots=True)
class InvoiceSnapshot:
    """One receivable as the provider last reported it, in provider-neutral terms."""

    external_id: str
    number: str
    customer_external_id: str
    customer_name: str
    currency: str
    total: Money
    balance: Money
    issue_date: date | None
    due_date: date | None
    status: InvoiceStatus
    updated_at: datetime
    emails: tuple[str, ...] = ()
    version: str = ""  # QuickBooks SyncToken; empty for providers without one
    # Carries Nudge's marker (a fee invoice Nudge wrote, from any Nudge organization): never chased.
    created_by_nudge: bool = False

    def __post_init__(self) -> None:
        _aware(self.updated_at, "updated_at")
        if not isinstance(self.status, InvoiceStatus):
            object.__setattr__(self, "status", InvoiceStatus(self.status))
        for name in ("total", "balance"):
            money = getattr(self, name)
            if money.currency != self.currency:
                raise ValueError(f"{name} is in {money.currency}, invoice is in {self.currency}")

    @property
    def is_open(self) -> bool:
        """Open with money still owed."""
        return self.status is InvoiceStatus.OPEN and self.balance.is_positive()


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """Who owes money (QuickBooks Customer / Xero Contact), with the addresses reminders go to."""

    external_id: str
    name: str
    emails: tuple[str, ...] = ()
    cc_emails: tuple[str, ...] = ()
    active: bool = True
    address: tuple[str, ...] = ()  # the billing address, line by line (the hand-off pack's letter and agency file)
    phone: str = ""


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """One entity change announced by a provider webhook; ids only, the entity is fetched afterwards."""

    tenant_id: str
    entity: str  # lower case: invoice, customer, contact, payment, creditnote, account, ...
    entity_id: str
    operation: str  # lower case: create, update, delete, void, emailed, merge
    occurred_at: datetime | None = None
    event_id: str = ""  # provider delivery/event id where it has one (deduplication)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What an OAuth callback yields per connected accounting file (QuickBooks realm, Xero tenant)."""

    provider: str
    tenant_id: str
    name: str
    tenant_type: str = "ORGANISATION"
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CustomerOverrides:
    """Per-customer settings that change how (or whether) a customer is chased.

    Dates are calendar dates in the customer's zone (`time_zone`, else the connection's).
    `paused_until`: nothing goes out before that date. `promise_to_pay`: the customer promised to
    pay (`promise_amount`, when given) by that date; chasing waits `promise_grace_days` more days and
    resumes the day after. `dispute_reason` is shown in the hold. `cadence`: name of a cadence replacing
    the connection's. `holiday_country`/`holiday_subdiv`: the holiday calendar for this customer.
    """

    paused_until: date | None = None
    excluded: bool = False
    dispute: bool = False
    promise_to_pay: date | None = None
    time_zone: str | None = None
    holiday_country: str | None = None
    holiday_subdiv: str | None = None
    cadence: str | None = None
    dispute_reason: str = ""
    promise_amount: Money | None = None
    promise_grace_days: int = 0
    # The customer's dated payments (all their invoices) when they promised: whether the promise was kept decides a
    # reminder's "you promised" paragraph once the promise stops holding (cadence.promise_kept).
    promise_payments: tuple[Payment, ...] = ()

    @property
    def promise_waits_until(self) -> date | None:
        """The last local date the promise holds chasing (promise date + grace), None without a promise."""
        if self.promise_to_pay is None:
            return None
        return self.promise_to_pay + timedelta(days=max(self.promise_grace_days, 0))


NO_OVERRIDES = CustomerOverrides()


@dataclass(frozen=True, slots=True)
class InvoiceOverrides:
    """What people decided about one invoice (dates local to its customer): hold it, or move its due date.

    `paused_until`: nothing goes out for it before that date; `excluded`: never chased; `dispute`: disputed
    (`dispute_reason` shown in the hold). Each holds THIS invoice only: a grouped reminder leaves it out and its
    fees stop. `agreed_due_date` (flexible terms) replaces the ledger's due date for planning: the cadence counts
    from it, and a changed date starts a fresh cycle (action keys carry the due date).
    """

    paused_until: date | None = None
    excluded: bool = False
    dispute: bool = False
    dispute_reason: str = ""
    agreed_due_date: date | None = None

    @property
    def holds_something(self) -> bool:
        """Whether any field would hold the invoice on some day (the agreed date alone never holds)."""
        return self.excluded or self.dispute or self.paused_until is not None


NO_INVOICE_OVERRIDES = InvoiceOverrides()


@dataclass(frozen=True, slots=True)
class Payment:
    """Money received against one invoice (payment, applied credit), dated in the organisation's zone."""

    amount: Money
    paid_on: date
    reference: str = ""


class PaymentKind(StrEnum):
    """What kind of money movement a ledger object is (docs/design.md, "The provider port")."""

    PAYMENT = "payment"  # QuickBooks Payment, Xero Payment
    CREDIT = "credit"  # QuickBooks CreditMemo, Xero CreditNote
    OVERPAYMENT = "overpayment"  # Xero Overpayment
    PREPAYMENT = "prepayment"  # Xero Prepayment


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """Money one ledger object applies to one invoice, or (`invoice_external_id == ""`) leaves unapplied.

    One money-bearing object (a QuickBooks Payment or CreditMemo; a Xero Payment, CreditNote,
    Overpayment or Prepayment) maps to one snapshot per invoice it pays plus one for any unapplied
    remainder; that list is the object's complete current set, so sync replaces every stored row of
    (`kind`, `external_id`) with it. `amount` is positive, in the object's currency; `paid_on` is the
    calendar date the ledger gives the money (the organisation's zone); a voided or deleted object
    yields its snapshots with `voided=True`, or none where the provider strips its lines.
    """

    external_id: str
    kind: PaymentKind
    invoice_external_id: str
    customer_external_id: str
    amount: Money
    paid_on: date
    voided: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PaymentKind):
            object.__setattr__(self, "kind", PaymentKind(self.kind))
        if not self.amount.is_positive():
            raise ValueError(f"payment {self.external_id}: amount must be positive, got {self.amount}")

    @property
    def unapplied(self) -> bool:
        """Money the customer paid that no invoice has taken yet (it counts toward unapplied credit)."""
        return not self.invoice_external_id


@dataclass(frozen=True, slots=True)
class Installment:
    """One installment of a payment plan: `amount` due on local date `due_date`."""

    due_date: date
    amount: Money


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """An agreed schedule replacing one invoice's due date (see `connector.domain.payment_plans`).

    `policy` names a payment-plan policy (grace, reminders); `created_on` is the local date the plan
    was agreed; payments dated on or after it count towards the installments in order.
    """

    invoice_external_id: str
    policy: str
    created_on: date
    installments: tuple[Installment, ...]
    plan_id: str = ""

    def __post_init__(self) -> None:
        if not self.installments:
            raise ValueError("a payment plan needs at least one installment")
        currencies = {inst.amount.currency for inst in self.installments}
        if len(currencies) != 1:
            raise ValueError(f"installments mix currencies: {', '.join(sorted(currencies))}")
        dates = [inst.due_date for inst in self.installments]
        if any(later <= earlier for earlier, later in pairwise(dates)):
            raise ValueError("installment dates must be strictly increasing")
        if any(not inst.amount.is_positive() for inst in self.installments):
            raise ValueError("every installment amount must be positive")

    @property
    def total(self) -> Money:
        """Sum of the installments."""
        result = Money.zero(self.installments[0].amount.currency)
        for inst in self.installments:
            result = result + inst.amount
        return result
