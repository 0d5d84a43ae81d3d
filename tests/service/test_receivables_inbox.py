"""The inbox read model (connector.receivables.inbox): every group from the rows that make it, in words, with
counts that match the navigation's one-statement count; scoped to the organization and to a client-limited
member's clients; narrowed to one client on request; and the actions done from it (send again, remove a member)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.accounts import members
from connector.accounts.tokens import authenticate
from connector.accounts.tokens import create as create_token
from connector.domain.actions import ActionKind, HoldReason
from connector.domain.model import Role
from connector.domain.money import Money
from connector.errors import InUse, InvalidInput, NotPermitted, UnknownRecord
from connector.receivables.actions import get_action, send_again
from connector.receivables.inbox import (
    APPROVALS,
    CALLS,
    FAILED,
    GROUPS,
    HANDOFFS,
    RECONNECT,
    REVIEWS,
    UNCERTAIN,
    UNREADABLE,
    Inbox,
    inbox,
    open_count,
)
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection, Membership, SyncCursor, Task
from tests.support import receivables as seed
from tests.support.statements import counting_statements

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
DUE = date(2026, 11, 1)


def _quarantine(
    store: Store, org_id: int, connection_id: int, record: str, field: str, reason: str, at: datetime
) -> int:
    with store.unit_of_work() as uow:
        row = uow.activities.record(
            org_id,
            "sync.quarantined",
            record,
            connection_id=connection_id,
            detail={"field": field, "reason": reason},
            at=at,
        )
        uow.commit()
        return int(row.id)


def _reconciled(store: Store, connection_id: int, at: datetime) -> None:
    with store.unit_of_work() as uow:
        uow.session.merge(SyncCursor(connection_id=connection_id, entity="invoice", cursor="c", full_reconciled_at=at))
        uow.commit()


def _set(store: Store, connection_id: int, **fields: object) -> None:
    with store.unit_of_work() as uow:
        row = uow.session.get(Connection, connection_id)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
        uow.commit()


def _error(store: Store, key: str, error: str) -> None:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ActionRow).where(ActionRow.key == key)).one()
        row.error = error
        uow.commit()


def _handoff(store: Store, org_id: int, connection_id: int) -> int:
    task = seed.task(store, org_id, connection_id, due_on=date(2026, 11, 28))
    with store.unit_of_work() as uow:
        row = uow.session.get(Task, task)
        assert row is not None
        row.kind = "handoff"
        row.title = "Take over"
        uow.commit()
    return task


@pytest.fixture
def world(store: Store) -> dict[str, int]:
    """Practice P with clients Alpha and Beta (one of each item in Alpha, some in Beta), and Q with its own."""
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    alpha = seed.client(store, p, "Alpha")
    beta = seed.client(store, p, "Beta")
    other = seed.client(store, q, "Other")
    seed.customer(store, alpha, "c1", "Acme Ltd")
    invoice = seed.invoice(store, alpha, "1", due=DUE, number="INV-1001", customer_name="Acme Ltd")
    seed.invoice(store, alpha, "2", due=DUE, number="INV-1002", customer_name="Acme Ltd")
    ids = {"p": p, "q": q, "alpha": alpha, "beta": beta, "other": other, "invoice": invoice}
    ids["waiting"] = seed.action(store, alpha, "k-wait", state="awaiting_approval", invoices=("1", "2"), grouped=True)
    ids["fee"] = seed.action(
        store, alpha, "k-fee", kind=ActionKind.LATE_FEE, state="awaiting_approval", amount=Money.of("25", "GBP")
    )
    seed.action(store, alpha, "k-hold", kind=ActionKind.HOLD, state="awaiting_approval", hold=HoldReason.DISPUTE)
    ids["uncertain"] = seed.action(store, alpha, "k-unc", state="uncertain", updated_at=NOW - timedelta(hours=2))
    _error(
        store,
        "k-unc",
        "the mail server smtp.example took the whole message but its reply never came; it may have been delivered",
    )
    ids["failed"] = seed.action(store, alpha, "k-fail", kind=ActionKind.NOTE, state="failed")
    _error(store, "k-fail", "QuickBooks refused the request: the invoice is locked (closed books).")
    seed.action(store, alpha, "k-done", state="done")
    ids["call"] = seed.task(store, p, alpha, due_on=date(2026, 11, 27))
    seed.task(store, p, alpha, due_on=date(2026, 11, 27), state="done")
    ids["handoff"] = _handoff(store, p, alpha)
    _reconciled(store, alpha, NOW - timedelta(hours=6))
    _quarantine(store, p, alpha, "77", "TxnDate", "fixed since", NOW - timedelta(days=2))  # before the last reconcile
    _quarantine(store, p, alpha, "1", "DueDate", "not a date", NOW - timedelta(hours=3))  # the same record, earlier
    ids["quarantined"] = _quarantine(
        store, p, alpha, "1", "DueDate", "not a date: '31/02/2026'", NOW - timedelta(hours=1)
    )
    _set(store, beta, status="needs_reauth", last_error="the grant was revoked")
    _set(store, beta, chasing="review")
    ids["beta_waiting"] = seed.action(store, beta, "k-beta", state="awaiting_approval")
    # Q's rows never show in P's inbox.
    seed.action(store, other, "k-other", state="failed")
    seed.task(store, q, other, due_on=date(2026, 11, 27))
    _set(store, other, status="disconnected")
    return ids


def _count(store: Store, org_id: int, connection_ids: set[int] | None = None) -> int:
    with store.unit_of_work() as uow:
        return open_count(uow, org_id, connection_ids)


def _keys(box: Inbox) -> dict[str, list[int]]:
    return {group.key: [item.id for item in group.items] for group in box.groups}


def test_every_group_is_filled_from_its_rows_and_counted(store: Store, world: dict[str, int]) -> None:
    box = inbox(store, world["p"], provider_names={"fake": "Fake Books"})
    found = _keys(box)
    assert [group.key for group in box.groups] == list(GROUPS)
    assert found[REVIEWS] == [world["beta"]]
    assert sorted(found[APPROVALS]) == sorted([world["waiting"], world["fee"], world["beta_waiting"]])  # no hold
    assert found[UNCERTAIN] == [world["uncertain"]]
    assert found[FAILED] == [world["failed"]]
    assert found[RECONNECT] == [world["beta"]]
    assert found[UNREADABLE] == [world["quarantined"]]  # the latest per record, since the last full reconcile
    assert found[CALLS] == [world["call"]]
    assert found[HANDOFFS] == [world["handoff"]]
    assert {group.key: group.count for group in box.groups} == {key: len(ids) for key, ids in found.items()}
    assert box.total == 10 == _count(store, world["p"])
    assert box.clients == ((world["alpha"], "Alpha"), (world["beta"], "Beta"))


def test_items_read_in_plain_words_with_links(store: Store, world: dict[str, int]) -> None:
    box = inbox(store, world["p"], provider_names={"fake": "Fake Books"})
    uncertain = box.group(UNCERTAIN).items[0]
    assert uncertain.sentence == (
        "Email to Cust One about INV-1001 may not have been sent: the mail server smtp.example took the whole "
        "message but its reply never came; it may have been delivered. Check your Sent folder, then mark it sent "
        "or send it again."
    )
    assert uncertain.invoices[0].id == world["invoice"]
    assert uncertain.customer_id is not None
    fee = next(item for item in box.group(APPROVALS).items if item.id == world["fee"])
    assert fee.headline == "Late fee of £25.00 on INV-1001 (Cust One)"
    grouped = next(item for item in box.group(APPROVALS).items if item.id == world["waiting"])
    assert grouped.headline == "Reminder email to Cust One about INV-1001 and INV-1002"
    failed = box.group(FAILED).items[0]
    assert failed.sentence.startswith(
        "Note in the ledger on INV-1001 (Cust One) failed: QuickBooks refused the request: the invoice is locked"
    )
    assert "never gets it twice" in failed.advice
    unreadable = box.group(UNREADABLE).items[0]
    assert unreadable.field == "DueDate"
    assert unreadable.invoices[0].number == "INV-1001"
    assert unreadable.sentence.startswith(
        "Invoice INV-1001 of Alpha could not be read from Fake Books: not a date: '31/02/2026' (field DueDate)."
    )
    reconnect = box.group(RECONNECT).items[0]
    assert reconnect.headline == "Beta: reconnect needed"
    assert "Fake Books no longer accepts" in reconnect.reason
    assert "needs_reauth" not in reconnect.sentence
    review = box.group(REVIEWS).items[0]
    assert review.waiting == 1
    assert review.waiting_words == "1 reminder"
    assert review.headline == "Beta is newly connected: nothing goes out until you approve its first plan"
    call = box.group(CALLS).items[0]
    assert call.headline == "Call Cust One about INV-1001"
    assert call.due_on == date(2026, 11, 27)
    assert box.group(HANDOFFS).items[0].headline == "Take over Cust One's debt: INV-1001"


def test_a_client_limited_member_sees_only_their_clients(store: Store, world: dict[str, int]) -> None:
    box = inbox(store, world["p"], connection_ids={world["beta"]})
    found = _keys(box)
    assert found[APPROVALS] == [world["beta_waiting"]]
    assert found[REVIEWS] == [world["beta"]]
    assert found[RECONNECT] == [world["beta"]]
    assert found[CALLS] == found[UNCERTAIN] == found[UNREADABLE] == []
    assert box.clients == ((world["beta"], "Beta"),)
    assert box.total == 3 == _count(store, world["p"], {world["beta"]})
    assert inbox(store, world["p"], connection_ids=set()).total == 0 == _count(store, world["p"], set())
    with pytest.raises(UnknownRecord):
        inbox(store, world["p"], connection_ids={world["beta"]}, connection_id=world["alpha"])


def test_one_client_and_other_organizations(store: Store, world: dict[str, int]) -> None:
    only = inbox(store, world["p"], connection_id=world["alpha"])
    assert only.connection_id == world["alpha"]
    assert len(only.clients) == 2
    assert only.total == 7
    assert _keys(only)[REVIEWS] == []
    with pytest.raises(UnknownRecord):
        inbox(store, world["p"], connection_id=world["other"])  # Q's client
    theirs = inbox(store, world["q"])
    assert theirs.total == 3 == _count(store, world["q"])  # a failed action, a call, a disconnected client
    assert _keys(theirs)[RECONNECT] == [world["other"]]
    assert theirs.group(RECONNECT).items[0].headline == "Other is disconnected from Fake"


def test_counts_stay_whole_when_a_group_is_cut(store: Store, world: dict[str, int]) -> None:
    box = inbox(store, world["p"], limit=1)
    approvals = box.group(APPROVALS)
    assert approvals.count == 3
    assert len(approvals.items) == 1
    assert approvals.more == 2


def test_reads_in_a_fixed_number_of_statements(store: Store, world: dict[str, int]) -> None:
    for index in range(30):
        seed.action(store, world["alpha"], f"k-more-{index}", state="failed", invoices=(str(index),))
        seed.task(store, world["p"], world["alpha"], due_on=date(2026, 11, 27), invoices=(str(index),))
    engine = store.engine
    with counting_statements(engine) as log:
        box = inbox(store, world["p"])
    assert box.group(FAILED).count == 31
    assert log.count <= 13, log.report()  # connections, counts, 3 action states, 2 task kinds, unreadable, replies,
    # customer requests, lookups
    with counting_statements(engine) as log, store.unit_of_work() as uow:
        open_count(uow, world["p"], None)
    assert log.count <= 3, log.report()  # the count itself is one statement (the rest: transaction bookkeeping)


def test_a_record_read_again_after_a_reconcile_is_gone(store: Store, world: dict[str, int]) -> None:
    _reconciled(store, world["alpha"], NOW)
    assert inbox(store, world["p"]).group(UNREADABLE).count == 0


def test_send_again_puts_an_uncertain_email_back_in_the_outbox(store: Store, world: dict[str, int]) -> None:
    view = send_again(store, world["p"], world["uncertain"], "ann@p.example", NOW)
    assert view.state == "planned"
    assert view.scheduled_at == NOW
    assert view.error == ""
    with store.unit_of_work() as uow:
        kinds = list(uow.session.scalars(select(Activity.kind).where(Activity.kind == "action.sent_again")))
    assert kinds == ["action.sent_again"]
    with pytest.raises(InUse):
        send_again(store, world["p"], world["uncertain"], "ann@p.example", NOW)  # now planned
    with pytest.raises(InvalidInput):
        send_again(store, world["p"], world["failed"], "ann@p.example", NOW)  # a note, not an email
    with pytest.raises(UnknownRecord):
        send_again(store, world["q"], world["uncertain"], "ann@p.example", NOW)
    assert get_action(store, world["p"], world["uncertain"]).state == "planned"


def test_an_owner_removes_a_member_whose_tokens_stop_and_tasks_are_unassigned(store: Store) -> None:
    org = seed.organization(store, "P")
    owner = seed.member(store, org, "owner@p.example", Role.OWNER)
    ann = seed.member(store, org, "ann@p.example", Role.ACCOUNTANT)
    alpha = seed.client(store, org, "Alpha")
    task = seed.task(store, org, alpha, due_on=DUE, assignee=ann)
    with store.unit_of_work() as uow:
        secret = create_token(
            uow, user_id=ann, organization_id=org, name="cli", role=Role.ACCOUNTANT, now=NOW, actor="ann"
        ).secret
        member_id = uow.session.scalars(select(Membership.id).where(Membership.user_id == ann)).one()
        owner_id = uow.session.scalars(select(Membership.id).where(Membership.user_id == owner)).one()
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(NotPermitted):
        members.remove_member(uow, organization_id=org, member_id=owner_id, acting_user_id=ann, now=NOW, actor="ann")
    with store.unit_of_work() as uow:
        removed = members.remove_member(
            uow, organization_id=org, member_id=member_id, acting_user_id=owner, now=NOW, actor="owner"
        )
        uow.commit()
    assert removed.email == "ann@p.example"
    with store.unit_of_work() as uow:
        assert members.scope(uow, ann, org) is None
        assert authenticate(uow, secret, NOW) is None
        assert uow.session.get(Task, task).assignee_user_id is None  # type: ignore[union-attr]
    with store.unit_of_work() as uow, pytest.raises(InvalidInput) as refused:
        members.remove_member(uow, organization_id=org, member_id=owner_id, acting_user_id=owner, now=NOW, actor="o")
    assert refused.value.field == "member_id"  # the last owner stays
    other = seed.organization(store, "Q")
    with store.unit_of_work() as uow:
        uow.memberships.add(owner, other, Role.OWNER)
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(UnknownRecord):  # P's member, named from Q
        members.remove_member(uow, organization_id=other, member_id=owner_id, acting_user_id=owner, now=NOW, actor="o")
