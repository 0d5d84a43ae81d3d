"""The inbox in a real browser on the demo's data, at 1440 and 390 px, axe clean: every group a person may meet
(items the demo lacks are made first through the real rows and services), then bulk approve, complete a call
task with a note, and mark an uncertain email sent, each checked on the page and in the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from connector.domain.actions import Action, ActionKind
from connector.domain.money import Money
from connector.receivables.inbox import open_count
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Invoice, Task
from connector.tasks.service import StoreTaskDesk
from tests.support.outbox import insert_action
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

HUDSON, THAMES = 1, 2  # the demo's two clients (QuickBooks, Xero)


@dataclass(frozen=True)
class Seeded:
    """The ids of what was added to the demo's inbox."""

    approvals: tuple[int, ...]
    uncertain: int
    failed: int
    call: int
    handoff: int
    quarantined_invoice: str


def _open_invoices(store: Store, connection_id: int, count: int) -> list[Invoice]:
    with store.unit_of_work() as uow:
        rows = list(
            uow.session.scalars(
                select(Invoice)
                .where(Invoice.connection_id == connection_id, Invoice.status == "open")
                .order_by(Invoice.due_date, Invoice.id)
                .limit(count)
            )
        )
        uow.session.expunge_all()
        return rows


def _action(world: World, invoice: Invoice, key: str, kind: ActionKind, state: str, error: str = "") -> int:
    now = world.clock.now()
    action = Action(
        key=key,
        kind=kind,
        connection_id=str(invoice.connection_id),
        customer_external_id=invoice.customer_external_id,
        invoice_external_ids=(invoice.external_id,),
        scheduled_at=now - timedelta(hours=1),
        local_date=now.date(),
        step_id="overdue-14",
        rule="cadence 'standard' step 'overdue-14' (14 days after the due date)",
        amount=Money(Decimal("25.00"), invoice.currency) if kind is ActionKind.LATE_FEE else None,
        template="firm" if kind is ActionKind.REMIND else None,
        customer_name=invoice.customer_name,
        recipients=(f"accounts@{invoice.customer_external_id}.example",),
    )
    action_id = insert_action(world.services.store, invoice.connection_id, action, state=state)
    if error:
        with world.services.store.unit_of_work() as uow:
            # updated_at kept as stamped (by Nudge's clock): the column's onupdate would take the real one.
            uow.session.execute(
                update(ActionRow)
                .where(ActionRow.id == action_id)
                .values(error=error, updated_at=ActionRow.updated_at)
                .execution_options(synchronize_session=False)
            )
            uow.commit()
    return action_id


def seed_inbox(world: World) -> Seeded:
    """What the demo does not make yet: approvals, an uncertain email, a failed fee, an escalation, a record
    the sync could not read."""
    store = world.services.store
    hudson = _open_invoices(store, HUDSON, 6)
    thames = _open_invoices(store, THAMES, 2)
    approvals = (
        _action(world, thames[0], "inbox-approve-1", ActionKind.REMIND, "awaiting_approval"),
        _action(world, thames[1], "inbox-approve-2", ActionKind.LATE_FEE, "awaiting_approval"),
        _action(world, hudson[0], "inbox-approve-3", ActionKind.REMIND, "awaiting_approval"),
    )
    uncertain = _action(
        world,
        hudson[1],
        "inbox-uncertain",
        ActionKind.REMIND,
        "uncertain",
        "the mail server smtp.demo.example took the whole message but its reply never came; it may have been delivered",
    )
    failed = _action(
        world,
        hudson[2],
        "inbox-failed",
        ActionKind.LATE_FEE,
        "failed",
        "QuickBooks refused the request: the accounting period is closed",
    )
    escalation = Action(
        key="inbox-escalate",
        kind=ActionKind.ESCALATE,
        connection_id=str(HUDSON),
        customer_external_id=hudson[3].customer_external_id,
        invoice_external_ids=(hudson[3].external_id,),
        scheduled_at=world.clock.now(),
        local_date=world.clock.now().date(),
        step_id="escalate",
        rule="cadence 'standard' step 'escalate' (45 days after the due date)",
        customer_name=hudson[3].customer_name,
        text="Hand the debt to Ridgeway Collections",
    )
    handoff = int(StoreTaskDesk(store, world.clock.now).open_task(escalation, HUDSON))
    with store.unit_of_work() as uow:
        call = uow.session.scalars(
            select(Task.id).where(Task.state == "open", Task.kind == "call").order_by(Task.id)
        ).first()
        uow.activities.record(
            1,
            "sync.quarantined",
            hudson[4].external_id,
            connection_id=HUDSON,
            detail={"field": "DueDate", "reason": "the due date '2026-02-30' is not a date"},
            at=world.clock.now() - timedelta(minutes=20),
        )
        uow.commit()
    assert call is not None
    return Seeded(approvals, uncertain, failed, int(call), handoff, hudson[4].external_id)


def submit(page: Any, button: Any) -> None:
    """Press a button that posts a form and wait until the page it leads to has loaded (its stylesheets too:
    looking at a half-styled page makes the browser load Pico's data: icons, which the CSP refuses)."""
    with page.expect_navigation(wait_until="load"):
        button.click()


def _state(store: Store, action_id: int) -> str:
    with store.unit_of_work() as uow:
        row = uow.session.get(ActionRow, action_id)
        assert row is not None
        return row.state


def _open_count(store: Store) -> int:
    """The inbox's count as the navigation shows it (connector.receivables.inbox.open_count)."""
    with store.unit_of_work() as uow:
        return open_count(uow, 1)


def _awaiting(store: Store) -> int:
    with store.unit_of_work() as uow:
        return len(list(uow.session.scalars(select(ActionRow.id).where(ActionRow.state == "awaiting_approval"))))


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_inbox_groups_and_actions(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    seeded = seed_inbox(world)
    store = world.services.store
    page = browse(width)
    page.goto("/orgs/1/inbox")
    expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    sections = page.get_by_role("navigation", name="Sections")
    before = _open_count(store)  # the demo's items and the 7 seeded
    expect(sections.get_by_role("link", name="Inbox")).to_contain_text(str(before))
    for title in (
        "Waiting for your approval",
        "Emails that may not have been sent",
        "Failed actions",
        "Records Nudge could not read",
        "Calls to make",
        "Debts to take over",
    ):
        expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_test_id(f"uncertain-{seeded.uncertain}")).to_contain_text(
        "may not have been sent: the mail server smtp.demo.example took the whole message"
    )
    expect(page.get_by_test_id(f"failed-{seeded.failed}")).to_contain_text("the accounting period is closed")
    expect(page.get_by_test_id("group-unreadable")).to_contain_text("DueDate")
    expect(page.get_by_test_id(f"handoffs-{seeded.handoff}")).to_contain_text("Hand the debt to Ridgeway Collections")
    check(page, "inbox")
    if width == "phone":
        return  # at 390 px the journey (test_journey.py) approves, completes a call and marks an email sent

    # Bulk approve two of the three.
    approvals = page.get_by_test_id("group-approvals")
    for action_id in seeded.approvals[:2]:
        approvals.get_by_test_id(f"approval-{action_id}").get_by_role("checkbox").check()
    submit(page, approvals.get_by_role("button", name="Approve selected"))
    expect(page.get_by_role("status").filter(has_text="Approved 2 actions: they go out when due.")).to_be_visible()
    assert [_state(store, action_id) for action_id in seeded.approvals] == ["planned", "planned", "awaiting_approval"]
    expect(page.get_by_test_id("count-approvals")).to_have_text(str(_awaiting(store)))

    # Complete a call task with a note.
    call = page.get_by_test_id(f"calls-{seeded.call}")
    call.get_by_text("Complete…").click()
    call.get_by_label("What happened?").fill("Spoke to their bookkeeper: paying on Friday")
    submit(page, call.get_by_role("button", name="Complete the task"))
    expect(page.get_by_role("status").filter(has_text="Completed the call with")).to_be_visible()
    expect(page.get_by_test_id(f"calls-{seeded.call}")).to_have_count(0)
    with store.unit_of_work() as uow:
        task = uow.session.get(Task, seeded.call)
        assert task is not None
        assert (task.state, task.outcome) == ("done", "Spoke to their bookkeeper: paying on Friday")

    # Mark the uncertain email sent.
    submit(page, page.get_by_test_id(f"uncertain-{seeded.uncertain}").get_by_role("button", name="Mark sent"))
    expect(page.get_by_role("status").filter(has_text="as sent.")).to_be_visible()
    expect(page.get_by_test_id("group-uncertain")).to_have_count(0)
    assert _state(store, seeded.uncertain) == "done"
    expect(sections.get_by_role("link", name="Inbox")).to_contain_text(str(before - 4))  # 2 approved, a call, an email
    assert _open_count(store) == before - 4
    check(page, "inbox-after-actions")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_inbox_review_and_filter(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    seeded = seed_inbox(world)
    store = world.services.store
    with store.unit_of_work() as uow:
        thames = uow.session.get(Connection, THAMES)
        assert thames is not None
        thames.chasing = "review"
        uow.commit()
    page = browse(width)
    page.goto("/orgs/1/inbox")
    page.get_by_label("Client", exact=True).select_option(label="Thames Joinery Ltd")
    submit(page, page.get_by_role("button", name="Show"))
    expect(page.get_by_test_id("inbox-total")).to_contain_text("at this client")
    review = page.get_by_test_id(f"reviews-{THAMES}")
    expect(review).to_contain_text("Thames Joinery Ltd is newly connected")
    expect(review).to_contain_text("1 reminder, 1 late fee")
    expect(page.get_by_test_id(f"uncertain-{seeded.uncertain}")).to_have_count(0)  # Hudson's
    check(page, "inbox-review")
    submit(page, review.get_by_role("button", name="Approve the first plan"))
    expect(page.get_by_role("status").filter(has_text="Nudge now chases it")).to_be_visible()
    with store.unit_of_work() as uow:
        thames = uow.session.get(Connection, THAMES)
        assert thames is not None
        assert thames.chasing == "active"
    assert [_state(store, action_id) for action_id in seeded.approvals[:2]] == ["planned", "planned"]
