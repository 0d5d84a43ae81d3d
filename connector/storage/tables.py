"""SQLAlchemy 2 tables for everything docs/design.md "Data" names. Times are stored as aware UTC instants."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store aware ones as UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: store aware UTC instants")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read instants back as aware UTC datetimes (SQLite keeps no zone)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


AMOUNT = Numeric(20, 4)


def utcnow() -> datetime:
    """Default for created/updated columns (the one place storage reads the clock)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base: constraint naming convention and the column types of Python types."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), Decimal: AMOUNT, dict[str, Any]: JSON, list[Any]: JSON}


class Organization(Base):
    """Who installed Nudge: one business or an accounting practice."""

    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Account security: owners of this organization are sent to enroll in two-factor before anything else.
    owners_need_two_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class User(Base):
    """A person who signs in (local account, or via Intuit/Xero OpenID Connect)."""

    __tablename__ = "users"
    # NULLs never collide in a unique constraint (SQLite and PostgreSQL): local accounts leave both empty.
    __table_args__ = (UniqueConstraint("auth_provider", "auth_subject"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300), default="")  # "" for an external identity
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An external identity (OpenID Connect): the provider key and its `sub`; None for a local account.
    auth_provider: Mapped[str | None] = mapped_column(String(40), default=None)
    auth_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    # Bumped when the user signs out or changes password: every session carrying an older value ends.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Account security (connector.accounts.security / two_factor): when the address was proven by a link; the
    # TOTP secret sealed by the vault ("" = none), when two-factor was confirmed (None = off or enrolment pending)
    # and the last time step accepted (a code works once).
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_secret_sealed: Mapped[str] = mapped_column(Text, default="", server_default="")
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def __repr__(self) -> str:
        return f"User(id={self.id}, email={self.email!r})"


class Membership(Base):
    """A user's role in an organization."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    # True: the member sees only the connections listed in membership_clients (e.g. a client's own owner).
    client_limited: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class MembershipClient(Base):
    """One connection (client) a client-limited member may see and act on."""

    __tablename__ = "membership_clients"
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)


class Connection(Base):
    """One connected accounting file (QuickBooks realm / Xero tenant) with its sealed tokens."""

    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("organization_id", "provider", "tenant_id"),
        Index("ix_connections_due", "status", "next_run_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="active")
    tokens_sealed: Mapped[str] = mapped_column(Text, default="")
    access_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    cadence: Mapped[str] = mapped_column(String(100), default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    home_currency: Mapped[str] = mapped_column(String(3), default="")  # "" = not known yet
    approval_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who chases this ledger: "review" (new: synced, nothing goes out until a person approves the first plan),
    # "active", or "managed_elsewhere" (another Nudge organization chases the same ledger; see `managed_by`).
    chasing: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    chasing_since: Mapped[datetime | None] = mapped_column(default=None)  # when the review was approved
    managed_by_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), default=None
    )
    # The ledger's own country (ISO 3166-1 alpha-2) and subdivision: the default holiday calendar.
    holiday_country: Mapped[str] = mapped_column(String(2), default="", server_default="")
    holiday_subdiv: Mapped[str] = mapped_column(String(10), default="", server_default="")
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, provider={self.provider!r}, tenant_id={self.tenant_id!r}, tokens=<sealed>)"


class SyncCursor(Base):
    """Where the incremental sync of one entity of one connection resumes."""

    __tablename__ = "sync_cursors"
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text, default="")
    full_reconciled_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Customer(Base):
    """Who owes money, with the user's overrides for chasing them."""

    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300), default="")
    emails: Mapped[list[Any]] = mapped_column(default=list)
    cc_emails: Mapped[list[Any]] = mapped_column(default=list)
    paused_until: Mapped[date | None] = mapped_column(Date, default=None)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    dispute: Mapped[bool] = mapped_column(Boolean, default=False)
    promise_to_pay_until: Mapped[date | None] = mapped_column(Date, default=None)
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    holiday_calendar: Mapped[str] = mapped_column(String(20), default="")
    cadence: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(20), default="")
    # Overrides people set (connector.library.overrides); the columns above the sync never writes but emails.
    dispute_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    promise_amount: Mapped[Decimal | None] = mapped_column(default=None)  # in `promise_currency`
    promise_currency: Mapped[str] = mapped_column(String(3), default="", server_default="")
    promise_grace_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    cadence_id: Mapped[int | None] = mapped_column(ForeignKey("library_items.id"), default=None)  # None: the client's
    recipients_to: Mapped[list[Any] | None] = mapped_column(default=None)  # None: the ledger's addresses
    recipients_cc: Mapped[list[Any] | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InvoiceOverride(Base):
    """What people decided about one invoice: pause, exclude, dispute, a new agreed date (flexible terms).

    `agreed_due_date` moves the cadence (its steps count from it) without changing the ledger's due date.
    """

    __tablename__ = "invoice_overrides"
    __table_args__ = (UniqueConstraint("connection_id", "invoice_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    invoice_external_id: Mapped[str] = mapped_column(String(100))
    paused_until: Mapped[date | None] = mapped_column(Date, default=None)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    dispute: Mapped[bool] = mapped_column(Boolean, default=False)
    dispute_reason: Mapped[str] = mapped_column(Text, default="")
    agreed_due_date: Mapped[date | None] = mapped_column(Date, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Invoice(Base):
    """The synced copy of one receivable."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_id"),
        Index("ix_invoices_open", "connection_id", "status", "due_date"),
        Index("ix_invoices_issued", "connection_id", "issue_date"),  # the pages' recent sales (DSO)
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(100), default="")
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    customer_name: Mapped[str] = mapped_column(String(300), default="")
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column()
    balance: Mapped[Decimal] = mapped_column()
    issue_date: Mapped[date | None] = mapped_column(Date, default=None)
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(40), default="")
    emails: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column()
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_nudge: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Action(Base):
    """The outbox: one planned effect with its idempotency key, carried out exactly once."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_due", "connection_id", "state", "scheduled_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    step: Mapped[str] = mapped_column(String(100), default="")
    invoice_external_id: Mapped[str] = mapped_column(String(100), default="")
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(20), default="planned")
    scheduled_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    external_ref: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    # The library version (of the cadence) that planned this action; a version stays while an action names it.
    library_version_id: Mapped[int | None] = mapped_column(ForeignKey("library_versions.id"), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PaymentPlan(Base):
    """An agreed split of an invoice's balance into installments."""

    __tablename__ = "payment_plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    invoice_external_id: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="active")  # active | kept | broken | cancelled
    policy: Mapped[str] = mapped_column(String(100), default="", server_default="")  # payment-plan policy name
    grace_days: Mapped[int] = mapped_column(Integer, default=3)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    installments: Mapped[list[Installment]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="Installment.due_date"
    )


class Installment(Base):
    """One dated amount of a payment plan."""

    __tablename__ = "installments"
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id", ondelete="CASCADE"), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    plan: Mapped[PaymentPlan] = relationship(back_populates="installments")


class Task(Base):
    """Work for a person: phone a customer (`call`) or take over an escalated debt (`handoff`).

    Opened by the executor from a call-task or escalation action (`action_key`), assigned to the
    connection's accountant (else its owner), due on `due_on` (local date); completing it records who
    and what was said (`outcome`), in the timeline and, when the step says so, as a ledger note.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_org_state", "organization_id", "state", "due_on"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    action_key: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    kind: Mapped[str] = mapped_column(String(20))  # call | handoff
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    customer_name: Mapped[str] = mapped_column(String(300), default="")
    invoice_external_ids: Mapped[list[Any]] = mapped_column(default=list)
    title: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    due_on: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default="open")  # open | done | cancelled
    record_in_ledger: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(Text, default="")
    completed_by: Mapped[str] = mapped_column(String(200), default="")
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessRequest(Base):
    """An organization asks to chase a ledger another organization already chases (one ledger, one chaser).

    `connection_id` is the requester's own (managed-elsewhere) connection; the managing organization's
    owner approves (chasing moves to the requester, which starts with an onboarding review) or declines.
    """

    __tablename__ = "access_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    requesting_organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    managing_organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | approved | declined
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)


class Payment(Base):
    """Money one ledger object (payment, credit, overpayment, prepayment) applies to one invoice.

    `invoice_external_id` is "" for the unapplied remainder; `paid_on` is the date the money arrived as
    the ledger states it (the organisation's zone). Sync replaces every row of (kind, external_id) at once.
    """

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "external_id", "invoice_external_id"),
        Index("ix_payments_customer", "connection_id", "customer_external_id"),
        Index("ix_payments_invoice", "connection_id", "invoice_external_id"),
        Index("ix_payments_paid_on", "connection_id", "paid_on"),  # the pages' collected per week, DSO trend
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # payment | credit | overpayment | prepayment
    external_id: Mapped[str] = mapped_column(String(100))
    invoice_external_id: Mapped[str] = mapped_column(String(100), default="")  # "" = unapplied remainder
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    paid_on: Mapped[date] = mapped_column(Date)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Activity(Base):
    """Append-only record of everything that happened (sync, action, user edit, webhook)."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_org_at", "organization_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"), default=None)
    kind: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncRun(Base):
    """One sync of one connection: calls made, changes, duration, outcome, waits on the provider's limits."""

    __tablename__ = "sync_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    error: Mapped[str] = mapped_column(Text, default="")
    # How often and how long the worker waited on the provider's limits during the turn this sync began (the
    # tenant limiter's counters; GET /metrics reads them here because the web and the worker are two processes).
    limit_waits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    limit_wait_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class WebhookDelivery(Base):
    """A webhook event already accepted (deduplication by the provider's event id), or a signed delivery
    that could not be read (outcome "failed", with the reason; event_id is then the body's SHA-256)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20), default="accepted", server_default="accepted")
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    tenant_id: Mapped[str | None] = mapped_column(String(100), default=None)  # None: not known


class OAuthPending(Base):
    """One OAuth round trip in progress (connect, sign-up or sign-in), kept server-side until its callback.

    Looked up by the SHA-256 of `state`; bound to one browser (the SHA-256 of a random id kept in that
    browser's session), to the provider and the purpose; used once (`used_at`); valid for 10 minutes.
    The PKCE verifier and the OpenID Connect nonce are sealed by the vault.
    """

    __tablename__ = "oauth_pending"
    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None
    )
    secrets_sealed: Mapped[str] = mapped_column(Text, default="")  # {"verifier", "nonce"} sealed
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class VaultCanary(Base):
    """A known text sealed with the vault's key at first start; opened at every start to catch a wrong key."""

    __tablename__ = "vault_canary"
    id: Mapped[int] = mapped_column(primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LibraryItem(Base):
    """One cadence, policy or email template an organization owns (connector.library); its body is versioned.

    `kind`: cadence | late_fee | discount | payment_plan | template. The id is what clients and customers refer
    to, so a rename never loses them; `name` mirrors the current version's; a deleted item keeps its versions.
    """

    __tablename__ = "library_items"
    __table_args__ = (Index("ix_library_items_org_kind", "organization_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    current_version_id: Mapped[int | None] = mapped_column(default=None)  # library_versions.id (no FK: a cycle)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LibraryVersion(Base):
    """One saved state of a library item: its name and body (the YAML format of config.example.yaml, as JSON;
    a template's body is {"subject.txt", "body.txt", "body.html"} sources). Never changed once written."""

    __tablename__ = "library_versions"
    __table_args__ = (UniqueConstraint("item_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("library_items.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 … per item
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClientSettings(Base):
    """One connection's (client's) own settings; an empty value inherits (the ledger's zone, the cadence's window).

    `cadence_id` names a library cadence by id. `holiday_calendar` is "CC" or "CC-SUBDIV" ("" = the ledger's
    country). `send_window` {"days": [0..6], "start": "HH:MM", "end": "HH:MM"} overrides the cadence's;
    `approval` "" (the cadence's) | none | ledger | all; `minimum_amounts` {currency: "amount"}. The sender shown
    to customers: `business_name`, `from_name`, `reply_to` (reminders come from the client's business).
    """

    __tablename__ = "client_settings"
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    cadence_id: Mapped[int | None] = mapped_column(ForeignKey("library_items.id"), default=None)
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    holiday_calendar: Mapped[str] = mapped_column(String(20), default="")
    send_window: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    approval: Mapped[str] = mapped_column(String(10), default="")
    minimum_amounts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str] = mapped_column(String(20), default="")
    business_name: Mapped[str] = mapped_column(String(200), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    # What customers say on their page (issue 17) is also written to the ledger as a note on the invoice.
    customer_page_ledger_notes: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Who changed what in the library, a client's settings or an override, when, and the state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_at", "organization_id", "at"),
        Index("ix_audit_log_connection_at", "connection_id", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"), default=None)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column()
    entity: Mapped[str] = mapped_column(String(40))  # cadence, late_fee, …, client_settings, customer, invoice, …
    entity_id: Mapped[str] = mapped_column(String(200))
    change: Mapped[str] = mapped_column(String(20))  # create | update | delete | import
    before: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class ApiToken(Base):
    """A personal API token: shown once, stored as its SHA-256, scoped to one organization and at most the
    member's role; revocable; `last_used_at` shown to its owner."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class SentMessage(Base):
    """One email exactly as Nudge handed it to the mail server (SMTP) or the outbox folder (maildir).

    Written just before the hand-over in state `sending` (connector.mail.archive), then settled in the same
    transaction as its action: `sent` with the action done, `uncertain` with the action uncertain (the worker
    stopped, or the server's answer never came), and removed when the mail was certainly not handed over (the
    action goes back to planned or fails). One row per action key. `raw` is the RFC 5322 message as sent, byte for
    byte, when at most connector.mail.archive.MAX_STORED_BYTES; a larger one is kept with its attachments' contents
    left out (`attachments_omitted`); `size` and `sha256` are always those of the message as sent. No Bcc (the
    bytes carry none) and no secret (the SMTP password never is in a message).
    """

    __tablename__ = "sent_messages"
    __table_args__ = (Index("ix_sent_messages_connection_sent", "connection_id", "sent_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    action_key: Mapped[str] = mapped_column(String(64), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    invoice_external_ids: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(20), default="sending")  # sending | sent | uncertain
    mailer: Mapped[str] = mapped_column(String(20), default="")  # smtp | maildir
    message_id: Mapped[str] = mapped_column(String(300), default="")  # the Message-ID header, with its <>
    subject: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    to_addresses: Mapped[list[Any]] = mapped_column(default=list)
    cc_addresses: Mapped[list[Any]] = mapped_column(default=list)
    sent_at: Mapped[datetime] = mapped_column()  # the moment it was handed over (the Date header's instant)
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the message as sent
    sha256: Mapped[str] = mapped_column(String(64), default="")  # of the message as sent
    attachments_omitted: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- Teams: invitations and requests to join the organization that manages a ledger (migration 0011) ----------


class Invitation(Base):
    """An invitation to join an organization with a role (and, for a client-limited member, some clients).

    Only the SHA-256 of the link's token is stored. Single use: `accepted_at` (with who accepted) or `revoked_at`
    ends it, and so does `expires_at`. Resending issues a new token (the old link stops working).
    """

    __tablename__ = "invitations"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    client_limited: Mapped[bool] = mapped_column(Boolean, default=False)
    connection_ids: Mapped[list[Any]] = mapped_column(default=list)  # the clients of a client-limited member
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class MembershipRequest(Base):
    """A person asks to join the organization that manages a ledger their own organization also connected.

    `connection_id` is the managing organization's connection to the ledger: approved, the requester becomes an
    accountant of the managing organization limited to that client. (Handing the chasing itself over is the
    other kind of request, `AccessRequest`.)
    """

    __tablename__ = "membership_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    requesting_organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    requesting_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requesting_connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    managing_organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | approved | declined
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


# -- issue 17: customers' replies (connector.replies) ---------------------------------------------------------------
class InboundMessage(Base):
    """One email received at the reply address (webhook or IMAP), kept with what Nudge made of it.

    `kind`: human (a person replied: an inbox item, the customer's reminders pause), auto_reply (out of office
    and other automatic mail: on the timeline only), unmatched (no thread found, or unreadable). `fingerprint` is
    SHA-256 of the organization and the Message-ID (of the bytes when there is none): the same message delivered
    twice is stored once. Only the trimmed text is kept, never the attachments.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_org_kind_handled", "organization_id", "kind", "handled"),
        Index("ix_inbound_messages_customer", "connection_id", "customer_external_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None
    )
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), default=None)
    customer_external_id: Mapped[str] = mapped_column(String(100), default="")
    sent_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("sent_messages.id", ondelete="SET NULL"), default=None
    )
    thread_hash: Mapped[str] = mapped_column(String(16), default="")
    route: Mapped[str] = mapped_column(String(20), default="")  # token | headers | "" (unmatched)
    source: Mapped[str] = mapped_column(String(20), default="")  # postmark | mailgun | imap | smtp
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(300), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[datetime] = mapped_column()
    text: Mapped[str] = mapped_column(Text, default="")  # the trimmed text
    size: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(20))  # human | auto_reply | unmatched
    reason: Mapped[str] = mapped_column(String(200), default="")  # why auto_reply / unmatched
    paused_until: Mapped[date | None] = mapped_column(Date, default=None)  # the pause this reply set, if any
    handled: Mapped[bool] = mapped_column(Boolean, default=False)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)
    handled_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- Account security (sessions, emailed links, two-factor recovery codes) ------------------------------------


class UserSession(Base):
    """One signed-in browser: the cookie carries the user id and a random public id, stored here as its SHA-256.

    Ended (`ended_at`) by signing out, "sign out everywhere", a password change or reset, or removal from a team;
    an ended or missing row signs nobody in. `last_seen_at` is written at most once a minute.
    """

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    public_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class AccountToken(Base):
    """A single-use emailed link (password reset, address check): only the SHA-256 of its secret is kept.

    `email` is the address the link was sent to (an address check proves that one, not whatever the user has now).
    """

    __tablename__ = "account_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # password-reset | verify-email
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class RecoveryCode(Base):
    """One two-factor recovery code (shown once at enrolment), stored as its SHA-256; works once."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


# --- Sign in with Intuit / Xero: identities per user and single-use ID-token nonces (migration 0010) ---


class UserIdentity(Base):
    """One external identity (OpenID Connect provider and `sub`) a user signs in with; a user may have several
    (Xero and Intuit). `users.auth_provider/auth_subject` still holds the identity a user signed up with."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320), default="")  # the verified email when it was linked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OidcNonce(Base):
    """An ID token's nonce once used (SHA-256 hex, never the nonce): a second use is refused until it expires."""

    __tablename__ = "oidc_nonces"
    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(index=True)


# -- issue 17: the hand-off pack (connector.handoff) ------------------------------------------------------------------
class HandoffPack(Base):
    """The hand-off pack of a customer's invoices handed over by an `escalate: handoff` step, made exactly once.

    `pack_key` (40 hex) is the hash of the connection, the customer, the letter's local date and the invoices it
    covers: the escalations of one customer on one day share one pack, and a retried escalation finds it instead of
    making a second. The files are kept here: the letter (PDF), the evidence ZIP and the agency placement CSV.
    `kind`: `pre_action` (UK letter before claim) or `final_demand`. `totals` per currency as strings.
    """

    __tablename__ = "handoff_packs"
    __table_args__ = (Index("ix_handoff_packs_customer", "connection_id", "customer_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    pack_key: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    action_key: Mapped[str] = mapped_column(String(64))  # the escalation that made it
    customer_external_id: Mapped[str] = mapped_column(String(100))
    customer_name: Mapped[str] = mapped_column(String(300), default="")
    invoice_external_ids: Mapped[list[Any]] = mapped_column(default=list)
    invoice_numbers: Mapped[list[Any]] = mapped_column(default=list)
    kind: Mapped[str] = mapped_column(String(20))  # pre_action | final_demand
    letter_date: Mapped[date] = mapped_column(Date)
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {currency: {"outstanding": "12.00", ...}}
    letter_pdf: Mapped[bytes] = mapped_column(LargeBinary)
    evidence_zip: Mapped[bytes] = mapped_column(LargeBinary)
    placement_csv: Mapped[bytes] = mapped_column(LargeBinary)
    missing_pdfs: Mapped[list[Any]] = mapped_column(default=list)  # invoice numbers the ledger gave no PDF of
    created_at: Mapped[datetime] = mapped_column()


# --- The customer page (issue 17, docs/customer-page.md): what customers ask or tell on it (migration 0014) ---


class CustomerRequest(Base):
    """One thing a customer did on their page: a promise to pay, a payment-plan request, a dispute or "already paid".

    `kind`: promise | plan | dispute | paid. `invoice_external_id` is "" for a promise (it is about the customer).
    `detail` holds what the customer gave (dates ISO, amounts as text in the invoice's currency, the reason or
    reference, the proposed installments). `state`: open (waits for a person: a plan to decide, a dispute or a
    payment to look into), approved or declined (a plan), handled (a person closed it), recorded (a promise: no
    decision needed). `hold_until`: the day reminders hold to (a promise's date, a payment looked for).
    """

    __tablename__ = "customer_requests"
    __table_args__ = (
        Index("ix_customer_requests_org_state", "organization_id", "state"),
        Index("ix_customer_requests_customer", "customer_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(100))
    invoice_external_id: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hold_until: Mapped[date | None] = mapped_column(Date, default=None)
    created_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decision_note: Mapped[str] = mapped_column(Text, default="")
