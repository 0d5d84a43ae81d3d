"""Actions for the API (issue 14): the listing by state with keyset pages, and approve / skip / retry /
mark-sent, each refused with a sentence when the state does not allow it, each leaving an activity and an
audit entry; a retried write keeps its key, so the ledger never gets it twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import main
from connector.config import load_settings
from connector.domain.actions import Action, ActionKind
from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import InUse, InvalidInput, Rejected, UnknownRecord
from connector.library.audit import entries
from connector.outbox.executor import Executor
from connector.outbox.planning import plan_connection
from connector.ports import AccountingAdapter
from connector.receivables.actions import (
    ActionFilter,
    approve_action,
    list_actions,
    mark_sent,
    retry_action,
    skip_action,
)
from connector.receivables.views import ActionView
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection
from tests.support import receivables as seed
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ANN = "ann@practice.example"


def _all(store: Store, org_id: int, limit: int = 50, **kwargs: object) -> list[ActionView]:
    found: list[ActionView] = []
    cursor: str | None = None
    while True:
        page = list_actions(store, org_id, cursor=cursor, limit=limit, **kwargs)  # type: ignore[arg-type]
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _row(store: Store, action_id: int) -> ActionRow:
    with store.unit_of_work() as uow:
        row = uow.session.get(ActionRow, action_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _activities(store: Store, kind: str) -> list[Activity]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Activity).where(Activity.kind == kind)))
        for row in rows:
            uow.session.expunge(row)
        return rows


@pytest.fixture
def org(store: Store) -> dict[str, int]:
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    a = seed.client(store, p, "Alpha")
    b = seed.client(store, p, "Beta")
    other = seed.client(store, q, "Other")
    return {"p": p, "q": q, "a": a, "b": b, "other": other}


def _key(n: int) -> str:
    return f"{n:040d}"


def test_the_listing_filters_by_state_client_kind_and_due_range_and_pages_stably(
    store: Store, org: dict[str, int]
) -> None:
    p, a, b = org["p"], org["a"], org["b"]
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    ids = []
    for n in range(6):  # a and b alternately, an hour apart; two at the very same moment
        at = start + timedelta(hours=n if n != 5 else 4)
        ids.append(seed.action(store, a if n % 2 == 0 else b, _key(n), state="awaiting_approval", at=at))
    seed.action(store, a, _key(10), state="done", kind=ActionKind.LATE_FEE, at=start)
    seed.action(store, org["other"], _key(20), state="awaiting_approval", at=start)
    waiting = _all(store, p, limit=2, filters=ActionFilter(state="awaiting_approval"))
    assert [item.id for item in waiting] == ids  # by scheduled instant, then id (4 and 5 share a moment)
    assert {item.client for item in waiting} == {"Alpha", "Beta"}
    assert [item.key for item in _all(store, p, filters=ActionFilter(connection_id=b))] == [_key(1), _key(3), _key(5)]
    assert [item.key for item in _all(store, p, filters=ActionFilter(kind="late_fee"))] == [_key(10)]
    window = ActionFilter(due_from=start + timedelta(hours=1), due_to=start + timedelta(hours=2))
    assert [item.key for item in _all(store, p, filters=window)] == [_key(1), _key(2)]
    # Inserted between pages: an earlier one never shows on a later page, a later one shows once.
    first = list_actions(store, p, limit=3, filters=ActionFilter(state="awaiting_approval"))
    seed.action(store, a, _key(30), state="awaiting_approval", at=start - timedelta(days=1))
    seed.action(store, a, _key(31), state="awaiting_approval", at=start + timedelta(days=1))
    second = list_actions(store, p, limit=50, cursor=first.next_cursor, filters=ActionFilter(state="awaiting_approval"))
    assert [item.key for item in second.items] == [_key(3), _key(4), _key(5), _key(31)]
    assert second.next_cursor is None
    # A client-limited member sees their client's only.
    assert {item.connection_id for item in _all(store, p, connection_ids={a})} == {a}


def test_refused_listing_filters_name_their_field(store: Store, org: dict[str, int]) -> None:
    for filters, field in [
        (ActionFilter(state="pending"), "state"),
        (ActionFilter(kind="fax"), "kind"),
        (ActionFilter(due_from=datetime(2026, 11, 1)), "due_from"),  # noqa: DTZ001 - naive on purpose
        (ActionFilter(due_from=NOW, due_to=NOW - timedelta(days=1)), "due_from"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            list_actions(store, org["p"], filters=filters)
        assert refused.value.field == field
    with pytest.raises(UnknownRecord):
        list_actions(store, org["p"], filters=ActionFilter(connection_id=org["other"]))
    with pytest.raises(UnknownRecord):
        list_actions(store, org["p"], connection_ids={org["a"]}, filters=ActionFilter(connection_id=org["b"]))


def test_approve_releases_a_waiting_action_with_an_activity_and_an_audit_entry(
    store: Store, org: dict[str, int]
) -> None:
    p, a = org["p"], org["a"]
    waiting = seed.action(store, a, _key(1), state="awaiting_approval")
    other = seed.action(store, a, _key(2), state="awaiting_approval")
    view = approve_action(store, p, waiting, ANN, NOW)
    assert view.state == "planned"
    assert _row(store, other).state == "awaiting_approval"  # only the one named
    (activity,) = _activities(store, "action.approved")
    assert activity.actor == ANN
    assert activity.subject == _key(1)
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, p, entity="action", entity_id=str(waiting))
    assert entry.before == {"state": "awaiting_approval"}
    assert entry.after == {"state": "planned", "operation": "approved"}
    assert entry.actor == ANN
    with pytest.raises(InUse) as refused:
        approve_action(store, p, waiting, ANN, NOW)
    assert refused.value.user_message == "only actions awaiting approval can be approved; this one is planned"


def test_approving_the_last_waiting_action_of_a_review_ends_it(store: Store, org: dict[str, int]) -> None:
    p = org["p"]
    reviewed = seed.client(store, p, "New client", chasing="review")
    first = seed.action(store, reviewed, _key(1), state="awaiting_approval")
    second = seed.action(store, reviewed, _key(2), state="awaiting_approval")
    approve_action(store, p, first, ANN, NOW)
    with store.unit_of_work() as uow:
        assert uow.session.get(Connection, reviewed).chasing == "review"  # type: ignore[union-attr]
    skip_action(store, p, second, ANN, NOW)
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, reviewed)
        assert connection is not None
        assert connection.chasing == "active"
        assert connection.chasing_since == NOW
    assert len(_activities(store, "review.approved")) == 1


def test_skip_drops_a_planned_or_waiting_action_and_refuses_others(store: Store, org: dict[str, int]) -> None:
    p, a = org["p"], org["a"]
    planned = seed.action(store, a, _key(1), state="planned")
    done = seed.action(store, a, _key(2), state="done")
    view = skip_action(store, p, planned, ANN, NOW)
    assert view.state == "skipped"
    assert view.error == f"skipped by {ANN}"
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, p, entity="action", entity_id=str(planned))
    assert entry.before == {"state": "planned"}
    assert entry.after == {"state": "skipped", "operation": "skipped"}
    with pytest.raises(InUse) as refused:
        skip_action(store, p, done, ANN, NOW)
    assert refused.value.user_message == (
        "only actions that are planned or awaiting approval can be skipped; this one is done"
    )
    assert refused.value.field == "state"


def test_actions_of_another_organization_or_client_are_unknown(store: Store, org: dict[str, int]) -> None:
    theirs = seed.action(store, org["other"], _key(1), state="awaiting_approval")
    bs = seed.action(store, org["b"], _key(2), state="failed")
    operations = (approve_action, skip_action, retry_action, mark_sent)
    for operation in operations:
        with pytest.raises(UnknownRecord) as unknown:
            operation(store, org["p"], theirs, ANN, NOW)
        assert unknown.value.field == "action_id"
        with pytest.raises(UnknownRecord):
            operation(store, org["p"], bs, ANN, NOW, connection_ids={org["a"]})
    assert _row(store, theirs).state == "awaiting_approval"
    assert _row(store, bs).state == "failed"


def test_retry_puts_a_failed_action_back_with_attempts_reset_and_refuses_others(
    store: Store, org: dict[str, int]
) -> None:
    p, a = org["p"], org["a"]
    failed = seed.action(store, a, _key(1), state="failed", kind=ActionKind.NOTE)
    with store.unit_of_work() as uow:
        row = uow.session.get(ActionRow, failed)
        assert row is not None
        row.attempts = 5
        row.error = "gave up after 5 attempts: QuickBooks answered 503"
        uow.commit()
    done = seed.action(store, a, _key(2), state="done")
    view = retry_action(store, p, failed, ANN, NOW)
    assert (view.state, view.attempts, view.error, view.key) == ("planned", 0, "", _key(1))
    assert view.scheduled_at == NOW
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, p, entity="action", entity_id=str(failed))
        connection = uow.session.get(Connection, a)
        assert connection is not None
        assert connection.next_run_at == NOW  # carried out at the next tick
    assert entry.before == {
        "state": "failed",
        "attempts": 5,
        "error": "gave up after 5 attempts: QuickBooks answered 503",
    }
    assert entry.after == {"state": "planned", "attempts": 0, "operation": "retried"}
    assert [activity.actor for activity in _activities(store, "action.retried")] == [ANN]
    with pytest.raises(InUse) as refused:
        retry_action(store, p, done, ANN, NOW)
    assert refused.value.user_message == "only failed actions can be retried; this one is done"
    with pytest.raises(InUse) as refused:
        retry_action(store, p, failed, ANN, NOW)  # now planned
    assert refused.value.user_message == "only failed actions can be retried; this one is planned"


class _Mail:
    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        return f"<{action.key}@nudge.test>"


def test_a_retried_ledger_write_keeps_its_key_so_the_ledger_gets_it_once(store: Store) -> None:
    """The fee went through at the provider but its answer was lost as a refusal: retrying it replays the key."""
    due = date(2026, 11, 2)
    now = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
    rules = policy_from_dict(
        {
            "late_fees": {"flat": {"kind": "flat", "amount": 25, "warning_required": False}},
            "cadences": {
                "standard": {
                    "time_zone": "Europe/London",
                    "send_time": "09:30",
                    "steps": [{"id": "late", "offset": 14, "late_fee": "flat"}],
                }
            },
        }
    )
    snapshot = replace(invoice_snapshot(1, due=due, updated_at=now - timedelta(days=20)))
    cid = connection_with_invoices(
        store, [snapshot], first_seen_at=now - timedelta(days=20), cadence="standard", time_zone="Europe/London"
    )
    with store.unit_of_work() as uow:
        org_id = uow.connections.by_id(cid).organization_id  # type: ignore[union-attr]
    plan_connection(store, cid, rules, now)
    ledger = FakeLedger([snapshot])
    ledger.fail_with = Rejected("Business Validation Error: stale object")
    Executor(store, ledger, _Mail(), lambda: now, "w1").run_due(cid)
    with store.unit_of_work() as uow:
        fee_id, fee_key, state = uow.session.execute(
            select(ActionRow.id, ActionRow.key, ActionRow.state).where(ActionRow.kind == "late_fee")
        ).one()
    assert state == "failed"
    ledger.fail_with = None
    first_ref = ledger.create_fee_invoice(snapshot, snapshot.balance, "fee", fee_key).external_ref  # it went through
    retry_action(store, org_id, fee_id, ANN, now + timedelta(minutes=5))
    Executor(store, ledger, _Mail(), lambda: now + timedelta(minutes=6), "w1").run_due(cid)
    row = _row(store, fee_id)
    assert row.state == "done"
    assert row.key == fee_key
    assert row.external_ref == first_ref
    assert [key for key, (ref, _) in ledger.writes.items() if ref.startswith("fee")] == [fee_key]


def test_mark_sent_turns_an_uncertain_email_into_a_delivered_one(store: Store, org: dict[str, int]) -> None:
    p, a = org["p"], org["a"]
    handed_over = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    uncertain = seed.action(store, a, _key(1), state="uncertain", updated_at=handed_over)
    uncertain_note = seed.action(store, a, _key(2), state="uncertain", kind=ActionKind.NOTE)
    planned = seed.action(store, a, _key(3), state="planned")
    view = mark_sent(store, p, uncertain, ANN, NOW)
    assert view.state == "done"
    assert view.updated_at == handed_over  # history counts it on the day it went to the mail server
    (activity,) = _activities(store, "action.marked_sent")
    assert activity.actor == ANN
    assert activity.at == NOW
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, p, entity="action", entity_id=str(uncertain))
    assert entry.after == {
        "state": "done",
        "marked_sent_by": ANN,
        "marked_sent_at": NOW.isoformat(),
        "operation": "marked_sent",
    }
    with pytest.raises(InUse) as refused:
        mark_sent(store, p, planned, ANN, NOW)
    assert refused.value.user_message == (
        "only emails whose delivery is uncertain can be marked as sent; this one is planned"
    )
    with pytest.raises(InUse):
        mark_sent(store, p, uncertain, ANN, NOW)  # already done
    with pytest.raises(InvalidInput) as not_mail:
        mark_sent(store, p, uncertain_note, ANN, NOW)
    assert not_mail.value.field == "kind"


def test_the_cli_retries_a_failed_action_and_marks_an_uncertain_email_sent(tmp_path: Path) -> None:
    config = tmp_path / "nudge.yaml"
    config.write_text(f"mode: development\ndatabase:\n  url: sqlite:///{tmp_path / 'n.sqlite3'}\n")
    store = Store.from_url(load_settings(str(config), environ={}).database.url)
    try:
        store.upgrade()
        p = seed.organization(store, "P")
        a = seed.client(store, p, "Alpha")
        failed = seed.action(store, a, _key(1), state="failed", kind=ActionKind.NOTE)
        uncertain = seed.action(store, a, _key(2), state="uncertain")
        runner = CliRunner()
        retried = runner.invoke(main, ["--config", str(config), "retry", "--action", str(failed), "--by", ANN])
        assert retried.exit_code == 0, retried.output
        assert "planned again" in retried.output
        sent = runner.invoke(main, ["--config", str(config), "mark-sent", "--action", str(uncertain), "--by", ANN])
        assert sent.exit_code == 0, sent.output
        assert "recorded as sent" in sent.output
        again = runner.invoke(main, ["--config", str(config), "retry", "--action", str(failed)])
        assert again.exit_code == 1
        assert "only failed actions can be retried; this one is planned" in again.output
        missing = runner.invoke(main, ["--config", str(config), "mark-sent", "--action", "999"])
        assert "no action with id 999" in missing.output
        assert _row(store, failed).state == "planned"
        assert _row(store, uncertain).state == "done"
        assert [activity.actor for activity in _activities(store, "action.marked_sent")] == [ANN]
    finally:
        store.dispose()
