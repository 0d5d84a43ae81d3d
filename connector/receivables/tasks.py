"""People's tasks for the API: the organization's tasks the member may see, keyset-paged, and completing one.

Both reuse connector.tasks.service (the CLI's listing and completion), adding visibility and paging.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.receivables.common import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    cursor_date,
    cursor_int,
    decode_cursor,
    encode_cursor,
    plain_text,
    row_id,
    visible,
    visible_connection,
)
from connector.storage import Store
from connector.storage.tables import Task
from connector.tasks.service import DONE, OPEN, OUTCOME_MAX, TaskError, TaskView, complete_task, list_tasks

_CURSOR = "tasks"
STATES = (OPEN, DONE, "cancelled")


def list_tasks_page(
    store: Store,
    org_id: int,
    *,
    connection_ids: Collection[int] | None = None,
    state: str | None = OPEN,
    connection_id: int | None = None,
    assignee_user_id: int | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[TaskView]:
    """One page of the organization's tasks (open by default; `state` None: all), by due date then id."""
    limit = check_limit(limit)
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}", "state")
    after = None
    if cursor is not None:
        due_text, last_id = decode_cursor(_CURSOR, cursor, 2)
        due = cursor_date(due_text)
        if due is None:
            raise InvalidInput("cursor is not one this listing gave out: start again without it", "cursor")
        after = (due, cursor_int(last_id))
    if assignee_user_id is not None:
        row_id(assignee_user_id, "assignee_id", "member")
    if connection_id is not None:
        with store.unit_of_work() as uow:
            visible_connection(uow, org_id, connection_id, connection_ids)
    found = list_tasks(
        store,
        organization_id=org_id,
        connection_id=connection_id,
        include_done=state is None,
        connection_ids=connection_ids,
        state=state,
        assignee_user_id=assignee_user_id,
        after=after,
        limit=limit + 1,
    )
    items = tuple(found[:limit])
    next_cursor = encode_cursor(_CURSOR, [items[-1].due_on.isoformat(), items[-1].id]) if len(found) > limit else None
    return Page(items, next_cursor)


def complete(
    store: Store,
    org_id: int,
    task_id: int,
    actor: str,
    note: str,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
) -> TaskView:
    """Complete an open task the member may see, with what happened (the note); activity and audit entry."""
    if not isinstance(note, str) or not " ".join(note.split()):
        raise InvalidInput("say what happened: the note must not be empty", "note")
    plain_text(note, "note", OUTCOME_MAX)
    row_id(task_id, "task_id", "task")
    with store.unit_of_work() as uow:
        owned = uow.session.scalars(
            select(Task.id).where(
                Task.id == task_id,
                Task.organization_id == org_id,
                visible(Task.connection_id, org_id, connection_ids),
            )
        ).first()
        if owned is None:
            raise UnknownRecord(f"no task with id {task_id}", "task_id")
    try:
        return complete_task(store, task_id, actor, note, now)
    except TaskError as exc:
        raise InUse(exc.user_message, "state") from exc
