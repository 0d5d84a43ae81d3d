"""Opening, listing and completing people's tasks (the `tasks` table, model `Task`).

- `StoreTaskDesk.open_task` (the executor's `TaskDesk`): one task per action key, so a retried action
  never opens two; `call` for a call task, `handoff` for an escalation; assigned to the organization's
  accountant, else its owner (lowest membership id first); due on the action's local date.
- `list_tasks`: open tasks (or all), oldest due first, with what a person needs to act on them.
- `complete_task`: open → done with who, when and what was said; activity `task.completed` (the
  timeline note); when the task's step says so, a NOTE action for its first invoice is put in the outbox
  (key `task_note_key(task id)`), which the executor writes to the ledger exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from connector.domain.actions import KEY_LENGTH, Action, ActionKind
from connector.domain.calendar import zone
from connector.domain.model import ActionState, Role
from connector.errors import NudgeError
from connector.library import audit
from connector.outbox.codec import action_to_json
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Invoice, Membership, Task, User

CALL = "call"
HANDOFF = "handoff"
OPEN = "open"
DONE = "done"
OUTCOME_MAX = 2000  # characters kept of what a person says happened (a ledger note is shorter still)


class TaskError(NudgeError):
    """A task cannot be completed as asked (unknown id, already done, nothing said)."""


@dataclass(frozen=True)
class TaskView:
    """One task as a person sees it: what to do, about whom, for which client, by when, who does it."""

    id: int
    connection_id: int
    client: str  # the connection's name
    kind: str  # call | handoff
    state: str  # open | done | cancelled
    due_on: date
    customer_name: str
    invoices: tuple[str, ...]  # invoice numbers (external ids where no number is synced)
    assignee_email: str
    title: str
    detail: str
    record_in_ledger: bool
    outcome: str = ""
    completed_by: str = ""
    completed_at: datetime | None = None


def task_note_key(task_id: int) -> str:
    """The outbox key of the ledger note a completed task leaves: 40 hex of sha256("task-note:<id>")."""
    return hashlib.sha256(f"task-note:{task_id}".encode()).hexdigest()[:KEY_LENGTH]


class StoreTaskDesk:
    """The executor's `TaskDesk` over the store: opens one task per call-task / escalation action."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now

    def open_task(self, action: Action, connection_id: int) -> str:
        """The task of `action` (opened now, or found when a retried action opened it already); its id."""
        if action.kind not in (ActionKind.CALL_TASK, ActionKind.ESCALATE):
            raise TaskError(f"a {action.kind.value} action does not open a task")
        existing = self._by_action(action.key)
        if existing is not None:
            return str(existing)
        try:
            return str(self._open(action, connection_id))
        except IntegrityError:  # another worker opened it between our look-up and insert: theirs stands
            found = self._by_action(action.key)
            if found is None:
                raise
            return str(found)

    def _by_action(self, key: str) -> int | None:
        with self.store.unit_of_work() as uow:
            return uow.session.scalars(select(Task.id).where(Task.action_key == key)).first()

    def _open(self, action: Action, connection_id: int) -> int:
        now = self.now()
        with self.store.unit_of_work() as uow:
            connection = uow.connections.by_id(connection_id)
            if connection is None:
                raise TaskError(f"connection {connection_id} does not exist")
            org_id = connection.organization_id
            kind = HANDOFF if action.kind is ActionKind.ESCALATE else CALL
            numbers = _numbers(uow, connection_id, action.invoice_external_ids)
            customer = action.customer_name or action.customer_external_id
            task = Task(
                organization_id=org_id,
                connection_id=connection_id,
                action_key=action.key,
                kind=kind,
                customer_external_id=action.customer_external_id,
                customer_name=action.customer_name,
                invoice_external_ids=list(action.invoice_external_ids),
                title=_title(kind, customer, numbers, action),
                detail=_detail(action),
                assignee_user_id=assignee(uow, org_id),
                due_on=action.local_date,
                state=OPEN,
                record_in_ledger=action.record_outcome_in_ledger,
                created_at=now,
            )
            uow.session.add(task)
            uow.flush()
            uow.activities.record(
                org_id,
                "task.opened",
                task.title[:200],
                connection_id=connection_id,
                at=now,
                detail={
                    "task": task.id,
                    "kind": kind,
                    "customer": customer,
                    "invoices": list(numbers),
                    "due_on": action.local_date.isoformat(),
                    "action": action.key,
                },
            )
            uow.commit()
            return task.id


def assignee(uow: UnitOfWork, org_id: int) -> int | None:
    """Who gets the organization's tasks: its accountant, else its owner (lowest membership id first)."""
    for role in (Role.ACCOUNTANT, Role.OWNER):
        found = uow.session.scalars(
            select(Membership.user_id)
            .where(Membership.organization_id == org_id, Membership.role == role.value)
            .order_by(Membership.id)
            .limit(1)
        ).first()
        if found is not None:
            return found
    return None


def list_tasks(
    store: Store,
    *,
    organization_id: int | None = None,
    connection_id: int | None = None,
    include_done: bool = False,
    connection_ids: Collection[int] | None = None,
    state: str | None = None,
    assignee_user_id: int | None = None,
    after: tuple[date, int] | None = None,
    limit: int | None = None,
) -> list[TaskView]:
    """Tasks (open ones unless `include_done` or `state`), of one organization and/or connection, by due date then id.

    `connection_ids` limits them to those clients (a client-limited member), `state` to one state,
    `assignee_user_id` to one person's; `after` (due date, id) and `limit` page through them.
    """
    query = (
        select(Task, Connection.name, User.email)
        .join(Connection, Connection.id == Task.connection_id)
        .outerjoin(User, User.id == Task.assignee_user_id)
        .order_by(Task.due_on, Task.id)
    )
    if organization_id is not None:
        query = query.where(Task.organization_id == organization_id)
    if connection_id is not None:
        query = query.where(Task.connection_id == connection_id)
    if connection_ids is not None:
        query = query.where(Task.connection_id.in_(sorted(connection_ids)))
    if state is not None:
        query = query.where(Task.state == state)
    elif not include_done:
        query = query.where(Task.state == OPEN)
    if assignee_user_id is not None:
        query = query.where(Task.assignee_user_id == assignee_user_id)
    if after is not None:
        due_on, task_id = after
        query = query.where(or_(Task.due_on > due_on, and_(Task.due_on == due_on, Task.id > task_id)))
    if limit is not None:
        query = query.limit(limit)
    with store.unit_of_work() as uow:
        rows = uow.session.execute(query).all()
        numbers: dict[tuple[int, str], str] = {}
        for task, _, _ in rows:
            ids = tuple(str(i) for i in task.invoice_external_ids or ())
            found = _numbers(uow, task.connection_id, ids)
            numbers.update({(task.connection_id, i): n for i, n in zip(ids, found, strict=True)})
        return [_view(task, client, email or "", numbers) for task, client, email in rows]


def complete_task(store: Store, task_id: int, actor: str, outcome: str, now: datetime) -> TaskView:
    """Mark an open task done with who and what was said; the timeline note and, when asked, a ledger note.

    Raises TaskError for an unknown id, a task already done (or cancelled) and an empty outcome.
    """
    said = " ".join(outcome.split())  # one line: it goes into a ledger note and a table cell
    if not said:
        raise TaskError("say what happened: the outcome of a task must not be empty")
    said = said[:OUTCOME_MAX]
    who = actor.strip() or "unknown"
    with store.unit_of_work() as uow:
        # Conditional on still being open: of two people completing the same task at once, one wins.
        closed = uow.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.state == OPEN)
            .values(state=DONE, outcome=said, completed_by=who, completed_at=now)
            .execution_options(synchronize_session=False)
        )
        task = uow.session.get(Task, task_id, populate_existing=True)
        if task is None:
            raise TaskError(f"no task with id {task_id}")
        if not closed.rowcount:  # type: ignore[attr-defined]
            by = f" by {task.completed_by}" if task.completed_by else ""
            raise TaskError(f"task {task_id} is already {task.state}{by}; nothing was changed")
        connection = uow.connections.by_id(task.connection_id)
        assert connection is not None  # the foreign key cascades: a task never outlives its connection
        ids = tuple(str(i) for i in task.invoice_external_ids or ())
        numbers = _numbers(uow, task.connection_id, ids)
        note_key = _ledger_note(uow, task, connection, who, said, now) if task.record_in_ledger and ids else None
        uow.activities.record(
            task.organization_id,
            "task.completed",
            task.title[:200],
            connection_id=task.connection_id,
            actor=who,
            at=now,
            detail={
                "task": task.id,
                "kind": task.kind,
                "customer": task.customer_name or task.customer_external_id,
                "invoices": list(numbers),
                "by": who,
                "outcome": said,
                "ledger_note": note_key or "",
            },
        )
        audit.record(
            uow,
            organization_id=task.organization_id,
            actor=who,
            at=now,
            entity="task",
            entity_id=task.id,
            change="update",
            before={"state": OPEN},
            after={"state": DONE, "outcome": said, "ledger_note": note_key or ""},
            connection_id=task.connection_id,
        )
        uow.commit()
        email = uow.session.scalars(select(User.email).where(User.id == task.assignee_user_id)).first() or ""
        named = {(task.connection_id, i): n for i, n in zip(ids, numbers, strict=True)}
        return _view(task, connection.name, email, named)


def _ledger_note(uow: UnitOfWork, task: Task, connection: Connection, who: str, said: str, now: datetime) -> str:
    """Put the note "Phoned <customer> on <date> (<who>): <said>" for the task's first invoice in the outbox."""
    ledger_zone = _zone(connection.time_zone)
    today = now.astimezone(ledger_zone).date()
    customer = task.customer_name or task.customer_external_id
    verb = "Phoned" if task.kind == CALL else "Handed over"
    text = f"{verb} {customer} on {today.isoformat()} ({who}): {said}"
    key = task_note_key(task.id)
    action = Action(
        key=key,
        kind=ActionKind.NOTE,
        connection_id=str(connection.id),
        customer_external_id=task.customer_external_id,
        invoice_external_ids=(str(task.invoice_external_ids[0]),),
        scheduled_at=now,
        local_date=today,
        step_id=f"task:{task.id}",
        rule=f"task {task.id} completed by {who}",
        customer_name=task.customer_name,
        text=text,
    )
    values = {
        "key": key,
        "connection_id": connection.id,
        "kind": ActionKind.NOTE.value,
        "step": action.step_id,
        "invoice_external_id": action.invoice_external_ids[0],
        "customer_external_id": task.customer_external_id,
        "state": ActionState.PLANNED.value,
        "scheduled_at": now,
        "payload": action_to_json(action),
        "created_at": now,
        "updated_at": now,
    }
    insert = pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    uow.session.execute(insert(ActionRow).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return key


def _numbers(uow: UnitOfWork, connection_id: int, external_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The invoices' numbers as synced (the external id where there is none), in the order given."""
    if not external_ids:
        return ()
    found = dict(
        uow.session.execute(
            select(Invoice.external_id, Invoice.number).where(
                Invoice.connection_id == connection_id, Invoice.external_id.in_(external_ids)
            )
        ).all()
    )
    return tuple(found.get(i) or i for i in external_ids)


def _title(kind: str, customer: str, numbers: tuple[str, ...], action: Action) -> str:
    invoices = ", ".join(numbers)
    owed = f" ({action.amount} open)" if action.amount is not None else ""
    if kind == HANDOFF:
        return f"Take over {customer}'s debt: {invoices}{owed}"
    return f"Call {customer} about {invoices}{owed}"


def _detail(action: Action) -> str:
    """The step's own words (its call-task text) and the rule that produced the task."""
    return "\n".join(part for part in (action.text or "", action.rule) if part)


def _view(task: Task, client: str, email: str, numbers: dict[tuple[int, str], str]) -> TaskView:
    ids = tuple(str(i) for i in task.invoice_external_ids or ())
    return TaskView(
        id=task.id,
        connection_id=task.connection_id,
        client=client,
        kind=task.kind,
        state=task.state,
        due_on=task.due_on,
        customer_name=task.customer_name or task.customer_external_id,
        invoices=tuple(numbers.get((task.connection_id, i), i) for i in ids),
        assignee_email=email,
        title=task.title,
        detail=task.detail,
        record_in_ledger=task.record_in_ledger,
        outcome=task.outcome,
        completed_by=task.completed_by,
        completed_at=task.completed_at,
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return zone(name or "UTC")
    except ValueError:  # an unknown zone on the row: the note is dated in UTC rather than not written
        return zone("UTC")


def member_actor(store: Store, task_id: int, email: str) -> str:
    """`email` normalized, when it names a member of the task's organization; TaskError otherwise."""
    with store.unit_of_work() as uow:
        task = uow.session.get(Task, task_id)
        if task is None:
            raise TaskError(f"no task with id {task_id}")
        user = uow.users.by_email(email)
        if user is None or uow.memberships.role(user.id, task.organization_id) is None:
            raise TaskError(f"{email.strip()!r} is not a member of the organization task {task_id} belongs to")
        return user.email
