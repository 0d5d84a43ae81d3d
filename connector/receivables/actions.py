"""Outbox actions: the listing by state (keyset-paged) and the five things a person may do to one action.

- approve: awaiting_approval → planned, and skip: awaiting_approval or planned → skipped, both through
  connector.review (so the last decision of an onboarding review ends it, as in the review screen);
- retry: failed → planned, attempts reset to 0, due now; the key is unchanged, so whatever the failed attempt
  may have written is answered from the provider's idempotency store, never written twice;
- mark sent: an uncertain email (the worker stopped while handing it over) → done, with who and when; it then
  counts as delivered (history, recovery) and is never sent again;
- send again: an uncertain email a person found was not delivered → planned, due now (same key).
Each checks the state first (InUse, saying what the action is now), records an activity and an audit entry.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update

from connector.domain.actions import ActionKind
from connector.domain.model import ActionState
from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.receivables.common import (
    DEFAULT_LIMIT,
    Page,
    check_instant,
    check_limit,
    cursor_instant,
    cursor_int,
    decode_cursor,
    encode_cursor,
    row_id,
    visible,
    visible_connection,
)
from connector.receivables.views import ActionView, action_view
from connector.review import ReviewError
from connector.review import approve as review_approve
from connector.review import skip as review_skip
from connector.review.service import record_action_change
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, SentMessage

_CURSOR = "actions"
_SKIPPABLE = (ActionState.AWAITING_APPROVAL.value, ActionState.PLANNED.value)


@dataclass(frozen=True)
class ActionFilter:
    """What the action listing is narrowed to; every field optional. `due_*` bound the scheduled instant."""

    state: str | None = None
    connection_id: int | None = None
    kind: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None


def list_actions(
    store: Store,
    org_id: int,
    *,
    connection_ids: Collection[int] | None = None,
    filters: ActionFilter = ActionFilter(),
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ActionView]:
    """One page of the organization's actions the member may see, by scheduled instant then id."""
    limit = check_limit(limit)
    _check_filters(filters)
    with store.unit_of_work() as uow:
        if filters.connection_id is not None:
            visible_connection(uow, org_id, filters.connection_id, connection_ids)
        query = (
            select(ActionRow, Connection.name)
            .join(Connection, Connection.id == ActionRow.connection_id)
            .where(visible(ActionRow.connection_id, org_id, connection_ids))
        )
        if filters.connection_id is not None:
            query = query.where(ActionRow.connection_id == filters.connection_id)
        if filters.state is not None:
            query = query.where(ActionRow.state == filters.state)
        if filters.kind is not None:
            query = query.where(ActionRow.kind == filters.kind)
        if filters.due_from is not None:
            query = query.where(ActionRow.scheduled_at >= filters.due_from)
        if filters.due_to is not None:
            query = query.where(ActionRow.scheduled_at <= filters.due_to)
        if cursor is not None:
            query = query.where(_after(cursor))
        rows = uow.session.execute(query.order_by(ActionRow.scheduled_at, ActionRow.id).limit(limit + 1)).all()
        items = [action_view(row, client) for row, client in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        next_cursor = encode_cursor(_CURSOR, [items[-1].scheduled_at.isoformat(), items[-1].id])
    return Page(tuple(items), next_cursor)


def get_action(
    store: Store, org_id: int, action_id: int, *, connection_ids: Collection[int] | None = None
) -> ActionView:
    """One action the member may see (UnknownRecord otherwise)."""
    with store.unit_of_work() as uow:
        row, connection = _visible_action(uow, org_id, action_id, connection_ids)
        return action_view(row, connection.name)


def approve_action(
    store: Store,
    org_id: int,
    action_id: int,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> ActionView:
    """awaiting_approval → planned (the executor carries it out when due); the review ends when nothing waits."""
    row = _load(store, org_id, action_id, connection_ids)
    if row.state != ActionState.AWAITING_APPROVAL.value:
        raise InUse(f"only actions awaiting approval can be approved; this one is {_state_words(row)}", "state")
    try:
        report = review_approve(store, row.connection_id, actor, now, [row.key], org_id=org_id)
    except ReviewError as exc:
        raise InUse(exc.user_message, "connection_id") from exc
    if row.key not in report.changed:  # decided by someone else between our look and the update
        now_row = _load(store, org_id, action_id, connection_ids)
        raise InUse(f"action {action_id} was decided meanwhile; it is now {_state_words(now_row)}", "state")
    return get_action(store, org_id, action_id, connection_ids=connection_ids)


def skip_action(
    store: Store,
    org_id: int,
    action_id: int,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> ActionView:
    """awaiting_approval or planned → skipped for good (its key stays taken: never planned again)."""
    row = _load(store, org_id, action_id, connection_ids)
    if row.state not in _SKIPPABLE:
        raise InUse(
            f"only actions that are planned or awaiting approval can be skipped; this one is {_state_words(row)}",
            "state",
        )
    try:
        report = review_skip(store, row.connection_id, [row.key], actor, now, org_id=org_id)
    except ReviewError as exc:
        raise InUse(exc.user_message, "connection_id") from exc
    if row.key not in report.changed:
        now_row = _load(store, org_id, action_id, connection_ids)
        raise InUse(f"action {action_id} was decided meanwhile; it is now {_state_words(now_row)}", "state")
    return get_action(store, org_id, action_id, connection_ids=connection_ids)


def retry_action(
    store: Store,
    org_id: int,
    action_id: int,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> ActionView:
    """failed → planned, attempts reset, due now, same key (exactly once stays: the provider knows the key)."""
    with store.unit_of_work() as uow:
        row, connection = _visible_action(uow, org_id, action_id, connection_ids)
        if row.state != ActionState.FAILED.value:
            raise InUse(f"only failed actions can be retried; this one is {_state_words(row)}", "state")
        before = {"state": row.state, "attempts": row.attempts, "error": row.error}
        _replan(uow, connection, row, ActionState.FAILED, now, "retrying it")
        record_action_change(
            uow, connection, row, "action.retried", actor, now, before, {"state": "planned", "attempts": 0}
        )
        uow.commit()
    return get_action(store, org_id, action_id, connection_ids=connection_ids)


def mark_sent(
    store: Store,
    org_id: int,
    action_id: int,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> ActionView:
    """An uncertain email → done: a person checked it reached the customer (who and when are recorded).

    The row's `updated_at` keeps the moment it was handed to the mail server: history reads it as the send.
    """
    with store.unit_of_work() as uow:
        row, connection = _visible_action(uow, org_id, action_id, connection_ids)
        if row.kind != ActionKind.REMIND.value:
            raise InvalidInput(
                f"only emails can be marked as sent; this action is a {row.kind.replace('_', ' ')}", "kind"
            )
        if row.state != ActionState.UNCERTAIN.value:
            raise InUse(
                f"only emails whose delivery is uncertain can be marked as sent; this one is {_state_words(row)}",
                "state",
            )
        before = {"state": row.state, "error": row.error}
        changed = uow.session.execute(
            update(ActionRow)
            .where(ActionRow.id == row.id, ActionRow.state == ActionState.UNCERTAIN.value)
            .values(state=ActionState.DONE.value, error="", updated_at=ActionRow.updated_at)
            .execution_options(synchronize_session=False)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise InUse(f"action {action_id} changed meanwhile: look again before marking it", "state")
        # The kept copy of the email (connector.mail.archive) follows its action: a person says it was delivered.
        uow.session.execute(
            update(SentMessage)
            .where(SentMessage.action_key == row.key, SentMessage.state == "uncertain")
            .values(state="sent")
            .execution_options(synchronize_session=False)
        )
        after = {"state": "done", "marked_sent_by": actor, "marked_sent_at": now.isoformat()}
        record_action_change(uow, connection, row, "action.marked_sent", actor, now, before, after)
        uow.commit()
    return get_action(store, org_id, action_id, connection_ids=connection_ids)


def send_again(
    store: Store,
    org_id: int,
    action_id: int,
    actor: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> ActionView:
    """An uncertain email → planned, due now: a person checked it did not reach the customer and asks for it
    again (who and when are recorded). Same key; the send window and one-reminder-a-day still apply."""
    with store.unit_of_work() as uow:
        row, connection = _visible_action(uow, org_id, action_id, connection_ids)
        if row.kind != ActionKind.REMIND.value:
            raise InvalidInput(f"only emails can be sent again; this action is a {row.kind.replace('_', ' ')}", "kind")
        if row.state != ActionState.UNCERTAIN.value:
            raise InUse(
                f"only emails whose delivery is uncertain can be sent again; this one is {_state_words(row)}", "state"
            )
        before = {"state": row.state, "error": row.error}
        _replan(uow, connection, row, ActionState.UNCERTAIN, now, "sending it")
        after = {"state": "planned", "sent_again_by": actor, "sent_again_at": now.isoformat()}
        record_action_change(uow, connection, row, "action.sent_again", actor, now, before, after)
        uow.commit()
    return get_action(store, org_id, action_id, connection_ids=connection_ids)


def _replan(
    uow: UnitOfWork, connection: Connection, row: ActionRow, expected: ActionState, now: datetime, doing: str
) -> None:
    """`row` (still in state `expected`) → planned, attempts reset, due now, same key; the client's worker woken.
    InUse when someone changed it meanwhile."""
    changed = uow.session.execute(
        update(ActionRow)
        .where(ActionRow.id == row.id, ActionRow.state == expected.value)
        .values(
            state=ActionState.PLANNED.value,
            attempts=0,
            error="",
            scheduled_at=now,
            lease_owner="",
            lease_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        raise InUse(f"action {row.id} changed meanwhile: look again before {doing}", "state")
    _wake(connection, now)


def organization_of_action(store: Store, action_id: int) -> int:
    """The organization an action belongs to (the operator's CLI names actions by id alone); UnknownRecord if none."""
    row_id(action_id, "action_id", "action")
    with store.unit_of_work() as uow:
        found = uow.session.scalar(
            select(Connection.organization_id)
            .join(ActionRow, ActionRow.connection_id == Connection.id)
            .where(ActionRow.id == action_id)
        )
    if found is None:
        raise UnknownRecord(f"no action with id {action_id}", "action_id")
    return int(found)


# -- helpers --------------------------------------------------------------------------------------------------


def _check_filters(filters: ActionFilter) -> None:
    if filters.state is not None and filters.state not in {state.value for state in ActionState}:
        raise InvalidInput(f"state must be one of {', '.join(state.value for state in ActionState)}", "state")
    if filters.kind is not None and filters.kind not in {kind.value for kind in ActionKind}:
        raise InvalidInput(f"kind must be one of {', '.join(kind.value for kind in ActionKind)}", "kind")
    check_instant(filters.due_from, "due_from")
    check_instant(filters.due_to, "due_to")
    if filters.due_from is not None and filters.due_to is not None and filters.due_from > filters.due_to:
        raise InvalidInput("due_from is after due_to: nothing can be due in that range", "due_from")


def _after(cursor: str) -> ColumnElement[bool]:
    at_text, last_id = decode_cursor(_CURSOR, cursor, 2)
    at, last = cursor_instant(at_text), cursor_int(last_id)
    return or_(ActionRow.scheduled_at > at, and_(ActionRow.scheduled_at == at, ActionRow.id > last))


def _visible_action(
    uow: UnitOfWork, org_id: int, action_id: int, connection_ids: Collection[int] | None
) -> tuple[ActionRow, Connection]:
    row_id(action_id, "action_id", "action")
    found = uow.session.execute(
        select(ActionRow, Connection)
        .join(Connection, Connection.id == ActionRow.connection_id)
        .where(ActionRow.id == action_id, visible(ActionRow.connection_id, org_id, connection_ids))
    ).first()
    if found is None:
        raise UnknownRecord(f"no action with id {action_id}", "action_id")
    return found[0], found[1]


def _load(store: Store, org_id: int, action_id: int, connection_ids: Collection[int] | None) -> ActionRow:
    with store.unit_of_work() as uow:
        row, _ = _visible_action(uow, org_id, action_id, connection_ids)
        return row


def _state_words(row: ActionRow) -> str:
    """The state as a sentence ends: "done", "awaiting approval", "failed (the provider refused ...)"."""
    words = row.state.replace("_", " ")
    return f"{words} ({row.error})" if row.error and row.state in ("failed", "uncertain", "cancelled") else words


def _wake(connection: Connection, now: datetime) -> None:
    """The connection's worker turn comes at the next tick, so what was released goes out when due."""
    if connection.next_run_at is None or connection.next_run_at > now:
        connection.next_run_at = now
