"""People's tasks (issue 12): call tasks and escalations open tasks for a person instead of being "done"
by themselves; completing one records who and what was said, and writes it in the ledger when asked."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import main
from connector.config import load_settings
from connector.domain.actions import Action, ActionKind
from connector.domain.model import InvoiceSnapshot, Role
from connector.domain.money import Money
from connector.errors import TemplateError
from connector.outbox.codec import action_to_json
from connector.outbox.executor import Executor
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Task
from connector.tasks.service import StoreTaskDesk, TaskError, complete_task, list_tasks, task_note_key
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class NoMail:
    """Reminders are not what these tests are about: any attempt to send one fails the test."""

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        raise TemplateError("no reminder was expected")


def _invoice(n: int) -> InvoiceSnapshot:
    return invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20))


def _connection(store: Store, *roles: tuple[str, Role]) -> int:
    """A London connection with invoices 1 and 2 of "Cust One", and members of its organization (in order)."""
    cid = connection_with_invoices(
        store, [_invoice(1), _invoice(2)], first_seen_at=NOW - timedelta(days=20), time_zone="Europe/London"
    )
    with store.unit_of_work() as uow:
        org_id = uow.connections.by_id(cid).organization_id  # type: ignore[union-attr]
        for email, role in roles:
            user = uow.users.add(email, "not-a-real-hash")
            uow.memberships.add(user.id, org_id, role)
        uow.commit()
    return cid


def _task_action(
    cid: int, kind: ActionKind, key: str, *, invoices: tuple[str, ...] = ("1",), ledger: bool = False
) -> Action:
    return Action(
        key=key,
        kind=kind,
        connection_id=str(cid),
        customer_external_id="c1",
        invoice_external_ids=invoices,
        scheduled_at=NOW - timedelta(minutes=5),
        local_date=date(2026, 11, 16),
        step_id="call-21" if kind is ActionKind.CALL_TASK else "escalate-45",
        rule="cadence 'standard' step 'call-21' (21 days after due): call task",
        amount=Money.of("500.00", "GBP"),
        due_date=DUE,
        customer_name="Cust One",
        text="Phone the accounts team and ask when it will be paid" if kind is ActionKind.CALL_TASK else None,
        record_outcome_in_ledger=ledger,
    )


def _plan(store: Store, cid: int, action: Action) -> int:
    with store.unit_of_work() as uow:
        row = ActionRow(
            key=action.key,
            connection_id=cid,
            kind=action.kind.value,
            step=action.step_id,
            invoice_external_id=action.invoice_external_ids[0],
            customer_external_id=action.customer_external_id,
            state="planned",
            scheduled_at=action.scheduled_at,
            payload=action_to_json(action),
        )
        uow.session.add(row)
        uow.commit()
        return row.id


def _executor(store: Store, ledger: FakeLedger, *, at: datetime = NOW, owner: str = "w1") -> Executor:
    return Executor(store, ledger, NoMail(), lambda: at, owner, tasks=StoreTaskDesk(store, lambda: at))


def _tasks(store: Store) -> list[Task]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Task).order_by(Task.id)))
        uow.session.expunge_all()
        return rows


def _action_row(store: Store, key: str) -> ActionRow:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ActionRow).where(ActionRow.key == key)).one()
        uow.session.expunge(row)
        return row


def test_a_call_task_opens_a_task_for_the_accountant_and_the_action_points_at_it(store: Store) -> None:
    cid = _connection(
        store,
        ("owner@books.example", Role.OWNER),
        ("first@accountants.example", Role.ACCOUNTANT),
        ("second@accountants.example", Role.ACCOUNTANT),
    )
    _plan(store, cid, _task_action(cid, ActionKind.CALL_TASK, "call-1", invoices=("1", "2"), ledger=True))
    report = _executor(store, FakeLedger([_invoice(1), _invoice(2)])).run_due(cid)
    assert report.done == ["call-1"]
    [task] = _tasks(store)
    assert (task.kind, task.state, task.due_on, task.action_key) == ("call", "open", date(2026, 11, 16), "call-1")
    assert task.invoice_external_ids == ["1", "2"]
    assert task.customer_name == "Cust One"
    assert task.title == "Call Cust One about INV-1, INV-2 (500.00 GBP open)"
    assert "Phone the accounts team" in task.detail
    assert "call task" in task.detail
    assert task.record_in_ledger is True
    row = _action_row(store, "call-1")
    assert (row.state, row.external_ref) == ("done", f"task:{task.id}")
    [view] = list_tasks(store, connection_id=cid)
    assert view.assignee_email == "first@accountants.example"  # the accountant with the lowest membership id
    assert view.invoices == ("INV-1", "INV-2")
    assert view.client == "Books"


def test_without_an_accountant_the_owner_gets_the_task_and_without_members_nobody(store: Store) -> None:
    cid = _connection(store, ("viewer@books.example", Role.VIEWER), ("owner@books.example", Role.OWNER))
    desk = StoreTaskDesk(store, lambda: NOW)
    desk.open_task(_task_action(cid, ActionKind.CALL_TASK, "call-1"), cid)
    [view] = list_tasks(store)
    assert view.assignee_email == "owner@books.example"
    lonely = connection_with_invoices(store, [_invoice(3)], first_seen_at=NOW, organization="B")
    desk.open_task(_task_action(lonely, ActionKind.CALL_TASK, "call-2", invoices=("3",)), lonely)
    assert [v.assignee_email for v in list_tasks(store, connection_id=lonely)] == [""]


def test_a_retried_action_never_opens_a_second_task(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    action = _task_action(cid, ActionKind.CALL_TASK, "call-1")
    action_id = _plan(store, cid, action)
    desk = StoreTaskDesk(store, lambda: NOW)
    first = desk.open_task(action, cid)  # the worker opened the task and died before recording the action
    executor = _executor(store, FakeLedger([_invoice(1)]), at=NOW + timedelta(minutes=11), owner="w2")
    with store.unit_of_work() as uow:  # its lease expired: the action runs again
        row = uow.session.get(ActionRow, action_id)
        assert row is not None
        row.state, row.lease_owner, row.lease_until = "running", "w1", NOW + timedelta(minutes=10)
        uow.commit()
    assert executor.run_due(cid).done == ["call-1"]
    assert [task.id for task in _tasks(store)] == [int(first)]
    assert _action_row(store, "call-1").external_ref == f"task:{first}"
    assert desk.open_task(action, cid) == first


def test_an_escalation_opens_a_handoff_task_that_stays_open(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    _plan(store, cid, _task_action(cid, ActionKind.ESCALATE, "esc-1"))
    assert _executor(store, FakeLedger([_invoice(1)])).run_due(cid).done == ["esc-1"]
    [task] = _tasks(store)
    assert (task.kind, task.state) == ("handoff", "open")
    assert task.title.startswith("Take over Cust One's debt: INV-1")
    assert _action_row(store, "esc-1").external_ref == f"task:{task.id}"
    with store.unit_of_work() as uow:
        opened = uow.session.scalars(select(Activity).where(Activity.kind == "task.opened")).one()
        assert opened.detail["kind"] == "handoff"


def test_without_a_task_desk_a_call_task_fails_instead_of_pretending(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    _plan(store, cid, _task_action(cid, ActionKind.CALL_TASK, "call-1"))
    report = Executor(store, FakeLedger([_invoice(1)]), NoMail(), lambda: NOW, "w1").run_due(cid)
    assert report.failed == ["call-1"]
    assert "no task desk" in _action_row(store, "call-1").error
    assert _tasks(store) == []


def test_completing_a_task_records_who_and_what_and_writes_the_ledger_note_once(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    _plan(store, cid, _task_action(cid, ActionKind.CALL_TASK, "call-1", invoices=("2", "1"), ledger=True))
    ledger = FakeLedger([_invoice(1), _invoice(2)])
    _executor(store, ledger).run_due(cid)
    [task] = _tasks(store)
    done_at = NOW + timedelta(days=1, hours=13, minutes=30)  # 23:30 UTC on the 17th: still the 17th in London
    view = complete_task(store, task.id, "owner@books.example", "  Promised to pay\n on Friday  ", done_at)
    assert (view.state, view.completed_by, view.outcome) == ("done", "owner@books.example", "Promised to pay on Friday")
    assert view.completed_at == done_at
    with store.unit_of_work() as uow:
        note = uow.session.scalars(select(Activity).where(Activity.kind == "task.completed")).one()
        assert note.actor == "owner@books.example"
        assert note.detail["by"] == "owner@books.example"
        assert note.detail["outcome"] == "Promised to pay on Friday"
        assert note.detail["invoices"] == ["INV-2", "INV-1"]
    key = hashlib.sha256(f"task-note:{task.id}".encode()).hexdigest()[:40]
    assert task_note_key(task.id) == key
    row = _action_row(store, key)
    assert (row.kind, row.state, row.invoice_external_id, row.scheduled_at) == ("note", "planned", "2", done_at)
    expected = "Phoned Cust One on 2026-11-17 (owner@books.example): Promised to pay on Friday"
    assert row.payload["text"] == expected
    for minutes in (0, 20):  # the note goes out once, however often the executor runs
        _executor(store, ledger, at=done_at + timedelta(minutes=minutes)).run_due(cid)
    assert [detail for ref, detail in ledger.writes.values() if ref.startswith("note")] == [expected]
    assert ledger.writes[key][1] == expected
    assert list_tasks(store) == []  # nothing open any more
    assert [v.state for v in list_tasks(store, include_done=True)] == ["done"]


def test_a_task_whose_step_does_not_ask_for_it_leaves_no_ledger_note(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    desk = StoreTaskDesk(store, lambda: NOW)
    task_id = int(desk.open_task(_task_action(cid, ActionKind.CALL_TASK, "call-1", ledger=False), cid))
    complete_task(store, task_id, "owner@books.example", "No answer", NOW)
    with store.unit_of_work() as uow:
        assert list(uow.session.scalars(select(ActionRow.kind))) == []  # no outbox action at all


def test_completing_refuses_an_unknown_id_a_done_task_and_an_empty_outcome(store: Store) -> None:
    cid = _connection(store, ("owner@books.example", Role.OWNER))
    task_id = int(StoreTaskDesk(store, lambda: NOW).open_task(_task_action(cid, ActionKind.ESCALATE, "esc-1"), cid))
    with pytest.raises(TaskError, match="no task with id 999"):
        complete_task(store, 999, "owner@books.example", "Handed to the agency", NOW)
    with pytest.raises(TaskError, match="must not be empty"):
        complete_task(store, task_id, "owner@books.example", " \n ", NOW)
    complete_task(store, task_id, "owner@books.example", "Handed to the agency", NOW)
    with pytest.raises(TaskError, match=f"task {task_id} is already done by owner@books.example"):
        complete_task(store, task_id, "someone@else.example", "Again", NOW + timedelta(hours=1))
    [task] = _tasks(store)
    assert (task.outcome, task.completed_by) == ("Handed to the agency", "owner@books.example")


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "nudge.yaml"
    example = (ROOT / "config.example.yaml").read_text()
    config.write_text(
        example.replace("instance_path: instance", f"instance_path: {tmp_path / 'inst'}").replace(
            "url: ${NUDGE_DATABASE_URL:-sqlite:///instance/nudge.sqlite3}", f"url: sqlite:///{tmp_path / 'n.db'}"
        )
    )
    return config


def test_the_tasks_command_lists_and_completes_tasks(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store.from_url(load_settings(str(config), environ={}).database.url)
    store.upgrade()
    try:
        cid = _connection(store, ("owner@books.example", Role.OWNER), ("acc@books.example", Role.ACCOUNTANT))
        desk = StoreTaskDesk(store, lambda: NOW)
        call_id = desk.open_task(_task_action(cid, ActionKind.CALL_TASK, "call-1", ledger=True), cid)
        desk.open_task(_task_action(cid, ActionKind.ESCALATE, "esc-1", invoices=("2",)), cid)
        runner = CliRunner()
        base = ["--config", str(config)]
        listed = runner.invoke(main, [*base, "tasks"])
        assert listed.exit_code == 0, listed.output
        lines = listed.output.splitlines()
        assert lines[0].split() == ["id", "due", "kind", "client", "customer", "invoices", "assignee", "title"]
        call_line = next(line for line in lines if line.strip().startswith(f"{call_id} "))
        for part in ("2026-11-16", "call", "Books", "Cust One", "INV-1", "acc@books.example", "Call Cust One"):
            assert part in call_line
        assert "2 open task(s)" in listed.output
        unknown = runner.invoke(main, [*base, "tasks", "--connection", "4242"])
        assert unknown.exit_code != 0
        assert "no connection with id 4242" in unknown.output
        stranger = runner.invoke(main, [*base, "tasks", "done", call_id, "--note", "Paid", "--by", "x@y.example"])
        assert stranger.exit_code == 1
        assert "is not a member" in stranger.output
        completed = runner.invoke(
            main, [*base, "tasks", "done", call_id, "--note", "Will pay Friday", "--by", "ACC@books.example"]
        )
        assert completed.exit_code == 0, completed.output
        assert f"task {call_id} done by acc@books.example" in completed.output
        again = runner.invoke(main, [*base, "tasks", "done", call_id, "--note", "Again"])
        assert again.exit_code == 1
        assert "already done" in again.output
        missing = runner.invoke(main, [*base, "tasks", "done", "999", "--note", "x"])
        assert missing.exit_code == 1
        assert "no task with id 999" in missing.output
        assert "1 open task(s)" in runner.invoke(main, [*base, "tasks"]).output
        everything = runner.invoke(main, [*base, "tasks", "--all", "--connection", str(cid)])
        assert "2 task(s)" in everything.output
        assert "call*" in everything.output  # done tasks are marked
    finally:
        store.dispose()
