"""sync_connection: bring one connection's synced invoices up to date, page by page.

Each page is stored in one transaction together with the cursor after it, so an interrupted sync
resumes where it stopped; upserts are idempotent, so re-reading an inclusive boundary is harmless.
Paid, voided and deleted invoices cancel their pending actions in the same transaction; the page's
money objects (payments, credits, overpayments, prepayments) replace their stored rows there too.

The sync's `sync_runs` row records its calls and how often and how long they waited for the provider's limits
(the tenant limiter's counters, read before and after); the worker's turn adds the waits of its planning and
execution to the same row (`add_limit_waits`), so the row counts every wait of the turn it began.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from connector.domain.actions import ActionKind
from connector.domain.model import ActionState, CustomerSnapshot, InvoiceSnapshot, InvoiceStatus, PaymentKind
from connector.errors import ProviderError
from connector.ports import AccountingAdapter, Page
from connector.ratelimit.tenant import LimitWaits, read_limit_waits
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action, Customer, Invoice, Payment, SyncCursor, SyncRun

INVOICE_ENTITY = "invoice"
CREDITS_ENTITY = "open_credits"  # its sync_cursors row records when the open credits were last read complete
PENDING = (ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value)
# A fee reversal is owed because the invoice got paid: closing it must not cancel the reversal.
KEPT_WHEN_CLOSED = (ActionKind.FEE_REVERSAL.value,)


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    connection_id: int
    full: bool
    pages: int
    calls: int
    changed: int
    closed: int
    quarantined: int
    cancelled_actions: int
    run_id: int = 0  # its sync_runs row
    limit_waits: LimitWaits = field(default_factory=LimitWaits)  # waits for the provider's limits during the sync


def sync_connection(
    store: Store,
    adapter: AccountingAdapter,
    connection_id: int,
    now: Callable[[], datetime],
    *,
    full_reconcile_every: timedelta = timedelta(hours=24),
    force_full: bool = False,
) -> SyncReport:
    """Sync `connection_id` through `adapter`; a full reconcile when none ran within `full_reconcile_every`."""
    started = now()
    waits_from = read_limit_waits(adapter)
    with store.unit_of_work() as uow:
        cursor_row = uow.session.get(SyncCursor, (connection_id, INVOICE_ENTITY))
        run = SyncRun(connection_id=connection_id, started_at=started)
        uow.session.add(run)
        uow.commit()
        run_id = run.id
        full = (
            force_full
            or cursor_row is None
            or not cursor_row.cursor
            or cursor_row.full_reconciled_at is None
            or started - cursor_row.full_reconciled_at >= full_reconcile_every
        )
        cursor = None if full else cursor_row.cursor if cursor_row else None
        first_sync = cursor_row is None or cursor_row.full_reconciled_at is None

    pages = calls = changed = closed = quarantined = cancelled = 0
    seen_open: set[str] = set()
    seen_money: set[tuple[PaymentKind, str]] = set()
    try:
        for page in adapter.changed_invoices(cursor, first_sync=first_sync):
            pages += 1
            calls += page.calls
            with store.unit_of_work() as uow:
                result = _store_page(uow, connection_id, page, now())
                changed += result[0]
                closed += result[1]
                cancelled += result[2]
                quarantined += len(page.quarantined)
                if full:
                    seen_open.update(i.external_id for i in page.invoices if i.status is InvoiceStatus.OPEN)
                    seen_money.update(page.payments)
                _save_cursor(uow, connection_id, page.next_cursor, full_done=False, at=now())
                uow.commit()
        if full:
            extra_calls, extra_closed, extra_cancelled = _close_missing(store, adapter, connection_id, seen_open, now)
            calls += extra_calls
            closed += extra_closed
            cancelled += extra_cancelled
            with store.unit_of_work() as uow:
                _save_cursor(uow, connection_id, None, full_done=True, at=started)
                if getattr(adapter, "reconcile_reads_open_credits", False):  # the open credits came complete
                    drop_stale_unapplied(uow, connection_id, seen_money)
                    mark_credits_read(uow, connection_id, started)
                uow.commit()
    except ProviderError as exc:
        waits = read_limit_waits(adapter).since(waits_from)
        _finish_run(store, run_id, now(), calls, changed, quarantined, "failed", exc.user_message, waits)
        raise
    waits = read_limit_waits(adapter).since(waits_from)
    _finish_run(store, run_id, now(), calls, changed, quarantined, "ok", "", waits)
    return SyncReport(connection_id, full, pages, calls, changed, closed, quarantined, cancelled, run_id, waits)


def _store_page(uow: UnitOfWork, connection_id: int, page: Page, at: datetime) -> tuple[int, int, int]:
    connection = uow.connections.by_id(connection_id)
    org_id = connection.organization_id if connection else 0
    _upsert_customers(uow, connection_id, page.customers)
    changed, closed_ids = _upsert_invoices(uow, connection_id, page.invoices, at)
    uow.payments.replace(connection_id, page.payments, at)  # each money object's complete current set
    cancelled = cancel_pending_actions(uow, connection_id, closed_ids, at)
    for record in page.quarantined:
        uow.activities.record(
            org_id,
            "sync.quarantined",
            record.external_id,
            connection_id=connection_id,
            detail={"field": record.field, "reason": record.reason},
            at=at,
        )
    return changed, len(closed_ids), cancelled


def _upsert_customers(uow: UnitOfWork, connection_id: int, customers: list[CustomerSnapshot]) -> None:
    if not customers:
        return
    ids = [c.external_id for c in customers]
    existing = {
        row.external_id: row
        for row in uow.session.scalars(
            select(Customer).where(Customer.connection_id == connection_id, Customer.external_id.in_(ids))
        )
    }
    for snapshot in customers:
        row = existing.get(snapshot.external_id)
        if row is None:
            row = Customer(connection_id=connection_id, external_id=snapshot.external_id)
            uow.session.add(row)
            existing[snapshot.external_id] = row
        row.name = snapshot.name
        row.emails = list(snapshot.emails)
        row.cc_emails = list(snapshot.cc_emails)


def _upsert_invoices(
    uow: UnitOfWork, connection_id: int, invoices: list[InvoiceSnapshot], at: datetime
) -> tuple[int, list[str]]:
    if not invoices:
        return 0, []
    ids = [i.external_id for i in invoices]
    existing = {
        row.external_id: row
        for row in uow.session.scalars(
            select(Invoice).where(Invoice.connection_id == connection_id, Invoice.external_id.in_(ids))
        )
    }
    changed = 0
    closed: list[str] = []
    for snapshot in invoices:
        row = existing.get(snapshot.external_id)
        if row is None:
            row = Invoice(connection_id=connection_id, external_id=snapshot.external_id, first_seen_at=at)
            uow.session.add(row)
            existing[snapshot.external_id] = row
        elif row.updated_at > snapshot.updated_at:
            continue  # an older copy (inclusive boundary re-read): keep what we have
        _copy_snapshot(row, snapshot)
        changed += 1
        if snapshot.status.is_closed or snapshot.balance.is_zero():
            closed.append(snapshot.external_id)
    return changed, closed


def _copy_snapshot(row: Invoice, snapshot: InvoiceSnapshot) -> None:
    row.number = snapshot.number
    row.customer_external_id = snapshot.customer_external_id
    row.customer_name = snapshot.customer_name
    row.currency = snapshot.currency
    row.total = snapshot.total.amount
    row.balance = snapshot.balance.amount
    row.issue_date = snapshot.issue_date
    row.due_date = snapshot.due_date
    row.status = snapshot.status.value
    row.version = snapshot.version
    row.emails = list(snapshot.emails)
    row.updated_at = snapshot.updated_at
    # Nudge's marker as the ledger shows it now (any Nudge organization's fee invoice): never chased.
    row.created_by_nudge = snapshot.created_by_nudge


def cancel_pending_actions(uow: UnitOfWork, connection_id: int, invoice_ids: list[str], at: datetime) -> int:
    """Cancel planned (not yet running) actions of invoices that no longer need chasing."""
    if not invoice_ids:
        return 0
    result = uow.session.execute(
        update(Action)
        .where(
            Action.connection_id == connection_id,
            Action.invoice_external_id.in_(invoice_ids),
            Action.state.in_(PENDING),
            Action.kind.not_in(KEPT_WHEN_CLOSED),
        )
        .values(state=ActionState.CANCELLED.value, error="invoice paid, voided or deleted", updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _close_missing(
    store: Store, adapter: AccountingAdapter, connection_id: int, seen_open: set[str], now: Callable[[], datetime]
) -> tuple[int, int, int]:
    """After a full reconcile: invoices we hold as open that the listing lacks are re-read one by one."""
    with store.unit_of_work() as uow:
        missing = [
            external_id
            for external_id in uow.session.scalars(
                select(Invoice.external_id).where(
                    Invoice.connection_id == connection_id, Invoice.status == InvoiceStatus.OPEN.value
                )
            )
            if external_id not in seen_open
        ]
    calls = closed = cancelled = 0
    for external_id in missing:
        calls += 1
        snapshot = adapter.get_invoice(external_id)
        with store.unit_of_work() as uow:
            row = uow.session.scalars(
                select(Invoice).where(Invoice.connection_id == connection_id, Invoice.external_id == external_id)
            ).one()
            if snapshot is None:
                row.status = InvoiceStatus.DELETED.value
                row.balance = row.balance * 0
            else:
                _copy_snapshot(row, snapshot)
            if row.status != InvoiceStatus.OPEN.value or row.balance == 0:
                closed += 1
                cancelled += cancel_pending_actions(uow, connection_id, [external_id], now())
            uow.commit()
    return calls, closed, cancelled


def _save_cursor(uow: UnitOfWork, connection_id: int, cursor: str | None, *, full_done: bool, at: datetime) -> None:
    row = uow.session.get(SyncCursor, (connection_id, INVOICE_ENTITY))
    if row is None:
        row = SyncCursor(connection_id=connection_id, entity=INVOICE_ENTITY, cursor="")
        uow.session.add(row)
    if cursor:
        row.cursor = cursor
    if full_done:
        row.full_reconciled_at = at


def mark_credits_read(uow: UnitOfWork, connection_id: int, at: datetime) -> None:
    """Record that the connection's open credits were read complete at `at` (connector.sync.credits)."""
    row = uow.session.get(SyncCursor, (connection_id, CREDITS_ENTITY))
    if row is None:
        row = SyncCursor(connection_id=connection_id, entity=CREDITS_ENTITY, cursor="")
        uow.session.add(row)
    row.full_reconciled_at = at


def drop_stale_unapplied(uow: UnitOfWork, connection_id: int, listed: set[tuple[PaymentKind, str]]) -> int:
    """Delete the unapplied remainders of money objects a complete open-credit listing did not name."""
    stale = [
        row_id
        for row_id, kind, external_id in uow.session.execute(
            select(Payment.id, Payment.kind, Payment.external_id).where(
                Payment.connection_id == connection_id, Payment.invoice_external_id == ""
            )
        )
        if (PaymentKind(kind), external_id) not in listed
    ]
    if stale:
        uow.session.execute(delete(Payment).where(Payment.id.in_(stale)).execution_options(synchronize_session=False))
    return len(stale)


def _finish_run(
    store: Store,
    run_id: int,
    at: datetime,
    calls: int,
    changes: int,
    quarantined: int,
    outcome: str,
    error: str,
    waits: LimitWaits,
) -> None:
    with store.unit_of_work() as uow:
        run = uow.session.get(SyncRun, run_id)
        if run is not None:
            run.finished_at = at
            run.calls = calls
            run.changes = changes
            run.quarantined = quarantined
            run.outcome = outcome
            run.error = error
            run.limit_waits = waits.count
            run.limit_wait_seconds = waits.seconds
            uow.commit()


def add_limit_waits(store: Store, run_id: int, waits: LimitWaits) -> None:
    """Add `waits` (of the rest of the turn: planning and execution) to sync run `run_id`'s counters."""
    if not run_id or not waits.count:
        return
    with store.unit_of_work() as uow:
        uow.session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                limit_waits=SyncRun.limit_waits + waits.count,
                limit_wait_seconds=SyncRun.limit_wait_seconds + waits.seconds,
            )
            .execution_options(synchronize_session=False)
        )
        uow.commit()
