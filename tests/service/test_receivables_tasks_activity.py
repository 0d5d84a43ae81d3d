"""Tasks and the activity timeline for the API (issue 14): filters, keyset pages, completing with a note
(activity and audit entry), refusals, and what a client-limited member may see."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connector.domain.model import Role
from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library.audit import entries
from connector.receivables.activity import ActivityView, list_activity
from connector.receivables.tasks import complete, list_tasks_page
from connector.storage import Store
from connector.tasks.service import TaskView
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ANN = "ann@practice.example"


def _tasks(store: Store, org_id: int, limit: int = 50, **kwargs: object) -> list[TaskView]:
    found: list[TaskView] = []
    cursor: str | None = None
    while True:
        page = list_tasks_page(store, org_id, cursor=cursor, limit=limit, **kwargs)  # type: ignore[arg-type]
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _activity(store: Store, org_id: int, limit: int = 50, **kwargs: object) -> list[ActivityView]:
    found: list[ActivityView] = []
    cursor: str | None = None
    while True:
        page = list_activity(store, org_id, cursor=cursor, limit=limit, **kwargs)  # type: ignore[arg-type]
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


@pytest.fixture
def org(store: Store) -> dict[str, int]:
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    ann = seed.member(store, p, ANN)
    bob = seed.member(store, p, "bob@practice.example", Role.OWNER)
    a = seed.client(store, p, "Alpha")
    b = seed.client(store, p, "Beta")
    other = seed.client(store, q, "Other")
    return {"p": p, "q": q, "ann": ann, "bob": bob, "a": a, "b": b, "other": other}


def test_tasks_list_by_state_client_and_assignee_in_stable_pages(store: Store, org: dict[str, int]) -> None:
    p, a, b = org["p"], org["a"], org["b"]
    day = date(2026, 12, 1)
    ids = [
        seed.task(store, p, a if n % 2 == 0 else b, due_on=day + timedelta(days=n // 2), assignee=org["ann"])
        for n in range(5)
    ]
    bobs = seed.task(store, p, a, due_on=day, assignee=org["bob"])
    finished = seed.task(store, p, a, due_on=day, state="done")
    seed.task(store, org["q"], org["other"], due_on=day)
    assert [task.id for task in _tasks(store, p, limit=2)] == [ids[0], ids[1], bobs, ids[2], ids[3], ids[4]]
    assert [task.id for task in _tasks(store, p, state="done")] == [finished]
    assert len(_tasks(store, p, state=None)) == 7
    assert [task.id for task in _tasks(store, p, connection_id=b)] == [ids[1], ids[3]]
    assert [task.id for task in _tasks(store, p, assignee_user_id=org["bob"])] == [bobs]
    assert {task.connection_id for task in _tasks(store, p, connection_ids={b})} == {b}
    assert {task.assignee_email for task in _tasks(store, p, assignee_user_id=org["ann"])} == {ANN}
    with pytest.raises(InvalidInput) as refused:
        list_tasks_page(store, p, state="closed")
    assert refused.value.field == "state"
    with pytest.raises(UnknownRecord):
        list_tasks_page(store, p, connection_id=org["other"])
    with pytest.raises(InvalidInput):
        list_tasks_page(store, p, cursor="bogus")


def test_completing_a_task_records_the_note_an_activity_and_an_audit_entry(store: Store, org: dict[str, int]) -> None:
    p, a = org["p"], org["a"]
    task_id = seed.task(store, p, a, due_on=date(2026, 12, 1), assignee=org["ann"])
    with pytest.raises(InvalidInput) as empty:
        complete(store, p, task_id, ANN, "   ", NOW)
    assert empty.value.field == "note"
    view = complete(store, p, task_id, ANN, "Spoke to Jo: paying Friday", NOW)
    assert view.state == "done"
    assert view.outcome == "Spoke to Jo: paying Friday"
    assert view.completed_by == ANN
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, p, entity="task", entity_id=str(task_id))
    assert entry.before == {"state": "open"}
    assert entry.after == {"state": "done", "outcome": "Spoke to Jo: paying Friday", "ledger_note": ""}
    (activity,) = [item for item in _activity(store, p) if item.kind == "task.completed"]
    assert activity.actor == ANN
    with pytest.raises(InUse) as again:
        complete(store, p, task_id, "bob@practice.example", "me too", NOW)
    assert again.value.user_message == f"task {task_id} is already done by {ANN}; nothing was changed"


def test_tasks_of_another_organization_or_client_cannot_be_completed(store: Store, org: dict[str, int]) -> None:
    theirs = seed.task(store, org["q"], org["other"], due_on=date(2026, 12, 1))
    betas = seed.task(store, org["p"], org["b"], due_on=date(2026, 12, 1))
    with pytest.raises(UnknownRecord):
        complete(store, org["p"], theirs, ANN, "done", NOW)
    with pytest.raises(UnknownRecord) as unknown:
        complete(store, org["p"], betas, ANN, "done", NOW, connection_ids={org["a"]})
    assert unknown.value.field == "task_id"
    assert [task.state for task in _tasks(store, org["p"], connection_id=org["b"])] == ["open"]


def test_the_activity_timeline_per_organization_client_customer_and_invoice(store: Store, org: dict[str, int]) -> None:
    p, a, b = org["p"], org["a"], org["b"]
    seed.customer(store, a, "c1", "Cust One")
    cust2 = seed.customer(store, a, "c2", "Cust Two")
    inv1 = seed.invoice(store, a, "1", due=date(2026, 11, 1))
    seed.invoice(store, a, "2", due=date(2026, 11, 1))
    seed.invoice(store, a, "3", due=date(2026, 11, 1), customer_id="c2", customer_name="Cust Two")
    grouped = "g" * 40
    seed.action(store, a, grouped, invoices=("1", "2"), grouped=True, state="done")
    seed.action(store, a, "t" * 40, invoices=("3",), customer_id="c2", state="done")
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with store.unit_of_work() as uow:

        def record(kind: str, subject: str, connection: int | None, minutes: int, **detail: object) -> None:
            uow.activities.record(
                p, kind, subject, connection_id=connection, detail=detail, at=start + timedelta(minutes=minutes)
            )

        record("user.created", "ann", None, 0)
        record("action.remind", grouped, a, 1, invoice="", customer="c1")  # a grouped reminder names no invoice
        record("action.remind", "t" * 40, a, 2, invoice="3", customer="c2")
        record("invoice_override.updated", "INV-1", a, 3, invoice_id=inv1)
        record("sync.finished", "Beta", b, 4)
        record("connection.connected", "Other", None, 5)
        # Someone else's detail with the same keys holding text: a customer's or invoice's timeline still reads.
        record("note.added", "free text", a, 6, task="call them", invoice_id="INV-1", customer_id="c1")
        uow.activities.record(org["q"], "user.created", "theirs", at=start)
        uow.commit()
    everything = _activity(store, p, limit=2)
    assert [item.kind for item in everything] == [
        "note.added",
        "connection.connected",
        "sync.finished",
        "invoice_override.updated",
        "action.remind",
        "action.remind",
        "user.created",
    ]
    assert everything[2].client == "Beta"
    assert [item.kind for item in _activity(store, p, connection_id=b)] == ["sync.finished"]
    # A client-limited member: their clients' entries only, never organization-wide ones.
    assert [item.connection_id for item in _activity(store, p, connection_ids={b})] == [b]
    invoice_one = _activity(store, p, invoice_id=inv1)
    assert [item.kind for item in invoice_one] == ["invoice_override.updated", "action.remind"]
    assert invoice_one[1].subject == grouped
    assert [item.subject for item in _activity(store, p, customer_id=cust2)] == ["t" * 40]
    with pytest.raises(UnknownRecord):
        list_activity(store, p, invoice_id=inv1, connection_ids={b})
    with pytest.raises(UnknownRecord):
        list_activity(store, org["q"], customer_id=cust2)
    with pytest.raises(InvalidInput):
        list_activity(store, p, customer_id=cust2, invoice_id=inv1)


def test_activity_pages_do_not_repeat_when_entries_arrive_between_them(store: Store, org: dict[str, int]) -> None:
    p, a = org["p"], org["a"]
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with store.unit_of_work() as uow:
        for n in range(5):
            uow.activities.record(p, "sync.finished", f"s{n}", connection_id=a, at=start + timedelta(minutes=n))
        uow.activities.record(p, "sync.finished", "s4-twin", connection_id=a, at=start + timedelta(minutes=4))
        uow.commit()
    first = list_activity(store, p, limit=2)
    assert [item.subject for item in first.items] == ["s4-twin", "s4"]
    with store.unit_of_work() as uow:
        uow.activities.record(p, "sync.finished", "newer", connection_id=a, at=start + timedelta(hours=1))
        uow.commit()
    rest: list[ActivityView] = []
    cursor = first.next_cursor
    while cursor is not None:
        page = list_activity(store, p, limit=2, cursor=cursor)
        rest.extend(page.items)
        cursor = page.next_cursor
    assert [item.subject for item in rest] == ["s3", "s2", "s1", "s0"]
