"""The open credits, read before acting: overpayments, prepayments, unapplied payments, credit notes.

A connection at rest must cost at most six reads a day (issue 13), and the open credit matters only
when something would go out: it decides the unapplied-credit hold ("never chase an invoice that is
already paid"). So it is not read on every poll or by every reconcile: a worker turn reads it when the
last complete read is older than a day and the plan would act now (connector.worker.turn, through
`plan_connection(before_acting=...)`: a new action, or a hold for credit that may have been applied
since), and then plans again on the fresh money. Where the provider's reconcile carries the open
credits at no extra call (QuickBooks' batch), the reconcile counts as that read.

The listing is complete: an unapplied remainder stored for an object the listing no longer names has
been applied or voided since, and is dropped, so a stale credit never holds reminders back for good.
"""

from __future__ import annotations

from datetime import datetime

from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import SyncCursor
from connector.sync.invoices import CREDITS_ENTITY, drop_stale_unapplied, mark_credits_read


def credits_read_since(store: Store, connection_id: int, moment: datetime) -> bool:
    """Whether the open credits were read complete at or after `moment`."""
    with store.unit_of_work() as uow:
        row = uow.session.get(SyncCursor, (connection_id, CREDITS_ENTITY))
        return row is not None and row.full_reconciled_at is not None and row.full_reconciled_at >= moment


def refresh_open_credits(store: Store, adapter: AccountingAdapter, connection_id: int, now: datetime) -> int:
    """Read the open credits now and store them as the complete set; the calls made."""
    credits = adapter.open_credits()
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        uow.payments.replace(connection_id, credits.payments, now)
        drop_stale_unapplied(uow, connection_id, set(credits.payments))
        for record in credits.quarantined:
            uow.activities.record(
                connection.organization_id if connection else 0,
                "sync.quarantined",
                record.external_id,
                connection_id=connection_id,
                detail={"field": record.field, "reason": record.reason},
                at=now,
            )
        mark_credits_read(uow, connection_id, now)
        uow.commit()
    return credits.calls
