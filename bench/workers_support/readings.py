"""What the bench reads back: when each change became visible in Nudge's store, which connections missed
their interval, and every effect that happened twice."""

from __future__ import annotations

import email
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from email import policy
from pathlib import Path

from sqlalchemy import func, select, tuple_

from bench.workers_support.ledgers import Change
from connector.storage import Store
from connector.storage.tables import Action, Activity, Invoice, SyncRun


def visible(store: Store, pending: dict[int, tuple[int, Change]]) -> list[int]:
    """The pending webhooks (by number) whose change Nudge's store now shows.

    `pending` maps a webhook's number to (connection id, change): a payment is visible once the invoice's
    balance is the lowered one, an entered invoice once its row exists."""
    if not pending:
        return []
    keys = {(connection_id, change.invoice_id) for connection_id, change in pending.values()}
    with store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(Invoice.connection_id, Invoice.external_id, Invoice.balance).where(
                tuple_(Invoice.connection_id, Invoice.external_id).in_(keys)
            )
        ).all()
    balances: dict[tuple[int, str], Decimal] = {(row[0], row[1]): row[2] for row in rows}
    shown = []
    for number, (connection_id, change) in pending.items():
        balance = balances.get((connection_id, change.invoice_id))
        if balance is not None and (change.kind == "entered" or balance == change.balance):
            shown.append(number)
    return shown


def successful_syncs(store: Store, since: datetime) -> dict[int, list[datetime]]:
    """Each connection's successful syncs finished since `since` (their finish instants, in order)."""
    with store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(SyncRun.connection_id, SyncRun.finished_at)
            .where(SyncRun.outcome == "ok", SyncRun.finished_at >= since)
            .order_by(SyncRun.finished_at)
        ).all()
    finished: dict[int, list[datetime]] = defaultdict(list)
    for connection_id, at in rows:
        if at is not None:
            finished[connection_id].append(at)
    return finished


def last_successful_sync(store: Store) -> dict[int, datetime]:
    """Each connection's latest successful sync."""
    with store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(SyncRun.connection_id, func.max(SyncRun.finished_at))
            .where(SyncRun.outcome == "ok")
            .group_by(SyncRun.connection_id)
        ).all()
    return {connection_id: at for connection_id, at in rows if at is not None}


def missed_intervals(
    due: dict[int, datetime],
    syncs: dict[int, list[datetime]],
    last_sync: dict[int, datetime],
    connection_ids: Iterable[int],
    window_end: datetime,
    tolerance: timedelta,
    interval: timedelta,
) -> int:
    """Connections that fell due in the window and were not synced within `tolerance` of it, plus any whose
    last successful sync at the window's end is older than the poll `interval` (see the scenario's docstring)."""
    missed = {
        connection_id
        for connection_id, at in due.items()
        if at + tolerance <= window_end and not any(s <= at + tolerance for s in syncs.get(connection_id, []))
    }
    stale = {cid for cid in connection_ids if cid not in last_sync or window_end - last_sync[cid] > interval}
    return len(missed | stale)


def overlapping_turns(store: Store, since: datetime) -> int:
    """Turns of one connection that started while another turn of it (any worker's) had not finished."""
    with store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(Activity.connection_id, Activity.kind, Activity.actor)
            .where(
                Activity.kind.in_(("connection.turn_started", "connection.turn_finished")),
                Activity.at >= since,
            )
            .order_by(Activity.connection_id, Activity.at, Activity.id)
        ).all()
    overlaps = 0
    open_turns: dict[int, list[str]] = defaultdict(list)
    for connection_id, kind, actor in rows:
        held = open_turns[connection_id or 0]
        if kind == "connection.turn_started":
            overlaps += bool(held)
            held.append(actor)
        elif actor in held:
            held.remove(actor)
    return overlaps


def duplicate_actions(store: Store) -> tuple[int, int]:
    """(actions done, done actions beyond the first with the same key)."""
    with store.unit_of_work() as uow:
        keys = list(uow.session.scalars(select(Action.key).where(Action.state == "done")))
    return len(keys), len(keys) - len(set(keys))


def done_reminders(store: Store) -> int:
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).where(Action.kind == "remind", Action.state == "done")) or 0)


def duplicate_emails(outbox: Path, invoice_numbers: Iterable[str]) -> tuple[int, int]:
    """(reminder emails in the maildir outbox, emails beyond the first naming the same entered invoice).

    The maildir names each file by its Message-ID (a resend of one message rewrites one file), so a
    duplicate that reached the customer is a second message about the same invoice."""
    texts = [
        email.message_from_bytes(path.read_bytes(), policy=policy.default).as_string() for path in outbox.glob("*.eml")
    ]
    per_invoice = Counter(number for number in invoice_numbers for text in texts if number in text)
    return len(texts), sum(count - 1 for count in per_invoice.values() if count > 1)
