"""Hostile input to the receivables services (issue 14): ids no row can have, control characters, years out of
range; each is refused naming its field (or answered as naming nothing), never a database error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connector.errors import ChangeRefused, InvalidInput, UnknownRecord
from connector.receivables.actions import ActionFilter, approve_action, list_actions, mark_sent, retry_action
from connector.receivables.activity import list_activity
from connector.receivables.invoices import InvoiceFilter, invoice_detail, list_invoices
from connector.receivables.reports import aging, recovery
from connector.receivables.tasks import complete, list_tasks_page
from connector.storage import Store
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
HUGE = 2**63  # beyond what either database binds
BIG = 2**31  # beyond a row id


@pytest.mark.parametrize("number", [HUGE, BIG, 0, -1])
def test_ids_no_row_can_have_name_nothing(store: Store, number: int) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    calls = [
        (lambda: list_invoices(store, p, NOW, filters=InvoiceFilter(connection_id=number)), "connection_id"),
        (lambda: list_invoices(store, p, NOW, filters=InvoiceFilter(customer_id=number)), "customer_id"),
        (lambda: invoice_detail(store, p, a, number, NOW), "invoice_id"),
        (lambda: invoice_detail(store, p, number, 1, NOW), "connection_id"),
        (lambda: list_actions(store, p, filters=ActionFilter(connection_id=number)), "connection_id"),
        (lambda: approve_action(store, p, number, "ann", NOW), "action_id"),
        (lambda: retry_action(store, p, number, "ann", NOW), "action_id"),
        (lambda: mark_sent(store, p, number, "ann", NOW), "action_id"),
        (lambda: complete(store, p, number, "ann", "called", NOW), "task_id"),
        (lambda: list_tasks_page(store, p, assignee_user_id=number), "assignee_id"),
        (lambda: list_activity(store, p, customer_id=number), "customer_id"),
        (lambda: list_activity(store, p, invoice_id=number), "invoice_id"),
        (lambda: aging(store, p, NOW, connection_id=number), "connection_id"),
    ]
    for call, field in calls:
        with pytest.raises(UnknownRecord) as unknown:
            call()
        assert unknown.value.field == field


def test_control_characters_and_far_years_are_refused_by_field(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    task = seed.task(store, p, a, due_on=date(2026, 12, 1))
    far = datetime(1, 1, 1, tzinfo=UTC)
    calls = [
        (lambda: list_invoices(store, p, NOW, filters=InvoiceFilter(search="INV\x00")), "search"),
        (lambda: list_invoices(store, p, NOW, filters=InvoiceFilter(due_from=date(1, 1, 1))), "due_from"),
        (lambda: list_actions(store, p, filters=ActionFilter(due_to=far + timedelta(days=1))), "due_to"),
        (lambda: complete(store, p, task, "ann", "called\x00back", NOW), "note"),
        (lambda: recovery(store, p, date(1, 1, 1)), "since"),
    ]
    for call, field in calls:
        with pytest.raises(InvalidInput) as refused:
            call()
        assert refused.value.field == field
    # Tabs and line breaks are ordinary text in a note.
    assert complete(store, p, task, "ann", "called\tback\nlater", NOW).state == "done"


def test_every_refusal_is_a_change_refused(store: Store) -> None:
    """The API maps ChangeRefused's subclasses to problems; nothing here escapes as another exception."""
    p = seed.organization(store, "P")
    with pytest.raises(ChangeRefused):
        list_invoices(store, p, NOW, cursor="%%%")
    with pytest.raises(ChangeRefused):
        list_activity(store, p, cursor="W10")  # valid base64 of the wrong shape
