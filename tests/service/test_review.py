"""Onboarding review (issue 12): a new connection plans but sends nothing until a person approves;
approve all or single actions, skip for good; the review listing per customer, grouped by step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.connections.connect import ConnectedFile, store_connections
from connector.domain.actions import Action, ActionKind, HoldReason, ReminderItem
from connector.domain.model import ActionState, ConnectionInfo, InvoiceSnapshot
from connector.domain.money import Money
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.codec import action_to_json
from connector.outbox.executor import Executor
from connector.outbox.planning import connection_settings, load_states, plan_connection
from connector.ports import AccountingAdapter
from connector.review import ReviewError, approve, review_of, skip
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection, Customer, Invoice
from connector.sync.invoices import sync_connection
from tests.support.ledger import FakeLedger
from tests.support.outbox import invoice_snapshot
from tests.support.tokens import sample_tokens, vault_with

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # 14 days late, inside the London send window

RULES = policy_from_dict(
    {
        "late_fees": {"flat": {"kind": "flat", "amount": 25}},
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late", "offset": 14, "remind": "firm", "note": "Reminder sent", "late_fee": "flat"},
                ],
            }
        },
    }
)


class Outbox:
    """A reminder sender that records what it would have mailed."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sent.append(action.key)
        return f"<{action.key}@nudge.test>"


def snapshot(n: int, customer: str = "c1", name: str = "Cust One", **changes: object) -> InvoiceSnapshot:
    base = replace(
        invoice_snapshot(n, due=DUE, updated_at=NOW - timedelta(days=20)),
        customer_external_id=customer,
        customer_name=name,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def connect(store: Store, org: str = "Practice", tenant: str = "t1", **extra: str) -> ConnectedFile:
    """Connect a "fake" ledger through the connect flow's storing step (what the OAuth callback runs)."""
    with store.unit_of_work() as uow:
        org_id = (uow.organizations.by_name(org) or uow.organizations.add(org)).id
        info = ConnectionInfo("fake", tenant, "Acme Ledger", extra={"home_currency": "GBP", **extra})
        [connected] = store_connections(uow, vault_with("k1"), "fake", org_id, [info], sample_tokens(), NOW, actor="o")
        connection = uow.connections.by_id(connected.connection_id)
        assert connection is not None
        connection.cadence = "standard"
        uow.commit()
    return connected


def synced(store: Store, connection_id: int, invoices: list[InvoiceSnapshot]) -> FakeLedger:
    """Sync the ledger's invoices into the store (a real sync run)."""
    ledger = FakeLedger(invoices)
    ledger.changes = list(invoices)
    sync_connection(store, ledger, connection_id, lambda: NOW)
    return ledger


def states(store: Store, connection_id: int) -> dict[str, str]:
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(select(ActionRow).where(ActionRow.connection_id == connection_id))
        return {row.key: f"{row.kind}:{row.state}" for row in rows}


def connection_row(store: Store, connection_id: int) -> Connection:
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(connection_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def activities(store: Store, kind: str) -> list[Activity]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Activity).where(Activity.kind == kind).order_by(Activity.id)))
        uow.session.expunge_all()
        return rows


def test_a_new_connection_plans_awaiting_approval_and_the_executor_sends_nothing(store: Store) -> None:
    connected = connect(store)
    assert (connected.created, connected.chasing) == (True, "review")
    assert "nothing goes out until you approve" in connected.message
    cid = connected.connection_id
    ledger = synced(store, cid, [snapshot(1), snapshot(2, customer="c2", name="Cust Two")])
    report = plan_connection(store, cid, RULES, NOW)
    assert report.planned >= 2
    assert report.awaiting_approval == report.planned  # no holds here: every action waits
    assert {value.split(":")[1] for value in states(store, cid).values()} == {"awaiting_approval"}
    outbox = Outbox()
    done = Executor(store, ledger, outbox, lambda: NOW, "w1").run_due(cid)
    assert done.done == []
    assert outbox.sent == []
    assert ledger.writes == {}
    # planning again (the next turn) adds nothing and still sends nothing
    assert plan_connection(store, cid, RULES, NOW + timedelta(hours=1)).planned == 0
    assert Executor(store, ledger, outbox, lambda: NOW + timedelta(hours=1), "w1").run_due(cid).done == []
    assert connection_row(store, cid).chasing == "review"


def test_holds_are_planned_in_review_they_only_inform(store: Store) -> None:
    cid = connect(store).connection_id
    synced(store, cid, [snapshot(1), snapshot(2, customer="c2", name="Cust Two")])
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(Customer).where(Customer.connection_id == cid, Customer.external_id == "c2"))
        customer = row.first()
        if customer is None:
            customer = Customer(connection_id=cid, external_id="c2", name="Cust Two")
            uow.session.add(customer)
        customer.dispute = True
        uow.commit()
    plan_connection(store, cid, RULES, NOW)
    kinds_states = sorted(states(store, cid).values())
    assert "hold:planned" in kinds_states
    assert all(value.endswith("awaiting_approval") for value in kinds_states if not value.startswith("hold:"))
    review = review_of(store, cid)
    [disputed] = [c for c in review.customers if c.customer_external_id == "c2"]
    assert disputed.groups == ()
    assert [h.reason for h in disputed.holds] == ["dispute"]
    assert [h.invoices[0].number for h in disputed.holds] == ["INV-2"]


def test_approve_all_starts_chasing_and_the_executor_carries_it_out(store: Store) -> None:
    cid = connect(store).connection_id
    ledger = synced(store, cid, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    waiting = review_of(store, cid).waiting
    assert waiting >= 1
    later = NOW + timedelta(minutes=30)
    report = approve(store, cid, "owner@practice", later)
    assert report.review_ended
    assert len(report.changed) == waiting
    assert report.still_waiting == 0
    row = connection_row(store, cid)
    assert row.chasing == "active"
    assert row.chasing_since == later
    assert {value.split(":")[1] for value in states(store, cid).values()} == {"planned"}
    [approved] = activities(store, "review.approved")
    assert (approved.actor, approved.connection_id, approved.detail["approved"]) == ("owner@practice", cid, waiting)
    outbox = Outbox()
    done = Executor(store, ledger, outbox, lambda: later, "w1").run_due(cid)
    assert len(outbox.sent) == 1
    assert len(done.done) == waiting
    with store.unit_of_work() as uow:
        settings = connection_settings(uow.connections.by_id(cid))  # type: ignore[arg-type]
    assert settings.started_on == date(2026, 11, 16)  # the approval's local date (London)


def test_approve_and_skip_single_keys_then_the_review_ends(store: Store) -> None:
    cid = connect(store).connection_id
    synced(store, cid, [snapshot(1), snapshot(2, customer="c2", name="Cust Two")])
    plan_connection(store, cid, RULES, NOW)
    keys = sorted(states(store, cid))
    assert len(keys) >= 2
    first, rest = keys[0], keys[1:]
    report = approve(store, cid, "alice", NOW, [first, "0" * 40])
    assert report.changed == (first,)
    assert report.unknown == ("0" * 40,)
    assert not report.review_ended
    assert report.still_waiting == len(rest)
    assert states(store, cid)[first].endswith(":planned")
    assert [a.subject for a in activities(store, "action.approved")] == [first]
    skipped = skip(store, cid, rest, "bob", NOW)
    assert sorted(skipped.changed) == rest
    assert skipped.review_ended
    assert skipped.still_waiting == 0
    assert all(states(store, cid)[key].endswith(":skipped") for key in rest)
    assert sorted(a.subject for a in activities(store, "action.skipped")) == rest
    assert {a.actor for a in activities(store, "action.skipped")} == {"bob"}
    assert connection_row(store, cid).chasing == "active"
    assert activities(store, "review.approved")[0].actor == "bob"


def test_skipped_actions_are_never_planned_again(store: Store) -> None:
    cid = connect(store).connection_id
    ledger = synced(store, cid, [snapshot(1)])
    plan_connection(store, cid, RULES, NOW)
    keys = list(states(store, cid))
    skip(store, cid, keys, "alice", NOW)
    for hours in (1, 24, 72):
        assert plan_connection(store, cid, RULES, NOW + timedelta(hours=hours)).planned == 0 or all(
            key not in keys for key in _new_keys(store, cid, keys)
        )
    assert all(states(store, cid)[key].endswith(":skipped") for key in keys)
    outbox = Outbox()
    Executor(store, ledger, outbox, lambda: NOW + timedelta(days=3), "w1").run_due(cid)
    assert not set(outbox.sent) & set(keys)
    assert not set(ledger.writes) & set(keys)


def _new_keys(store: Store, connection_id: int, old: list[str]) -> list[str]:
    return [key for key in states(store, connection_id) if key not in old]


def test_errors_name_the_problem(store: Store) -> None:
    cid = connect(store).connection_id
    nothing = approve(store, cid, "alice", NOW, ["0" * 40])  # a mistyped key before anything was planned
    assert nothing.unknown == ("0" * 40,)
    assert not nothing.review_ended
    assert connection_row(store, cid).chasing == "review"
    with pytest.raises(ReviewError, match="no connection with id 999"):
        review_of(store, 999)
    with pytest.raises(ReviewError, match="at least one action"):
        skip(store, cid, [], "alice", NOW)
    with pytest.raises(ReviewError, match="at least one action"):
        approve(store, cid, "alice", NOW, [])
    with store.unit_of_work() as uow:
        other_org = uow.organizations.add("Elsewhere").id
        uow.commit()
    with pytest.raises(ReviewError, match="no connection with id"):
        approve(store, cid, "mallory", NOW, org_id=other_org)  # another organization cannot approve


def test_approval_mode_uses_the_same_service(store: Store) -> None:
    cid = connect(store).connection_id
    approve(store, cid, "alice", NOW)  # the review itself is approved at once: active
    with store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        row.approval_mode = True
        uow.commit()
    synced(store, cid, [snapshot(1)])
    report = plan_connection(store, cid, RULES, NOW)
    assert report.awaiting_approval == report.planned >= 1
    review = review_of(store, cid)
    assert review.approval_mode
    assert not review.in_review
    assert review.waiting == report.planned
    [remind] = [k for k, v in states(store, cid).items() if v.startswith("remind:")]
    result = approve(store, cid, "alice", NOW, [remind])
    assert result.changed == (remind,)
    assert not result.review_ended
    assert connection_row(store, cid).chasing == "active"


def test_the_listing_groups_by_step_with_amounts_holds_and_totals_per_currency(store: Store) -> None:
    cid = connect(store).connection_id
    usd = Money.of("300.00", "USD")
    synced(
        store,
        cid,
        [
            snapshot(1),
            snapshot(2),
            snapshot(3, customer="c2", name="Dollar Co", currency="USD", total=usd, balance=usd),
        ],
    )
    gbp = Money.of("500.00", "GBP")
    items = (
        ReminderItem("1", "INV-1", DUE, gbp, gbp, 14, "late", "firm", "m1"),
        ReminderItem("2", "INV-2", DUE + timedelta(days=20), gbp, gbp, -6, "late", "firm", "m2"),
    )
    base = Action(
        key="",
        kind=ActionKind.REMIND,
        connection_id=str(cid),
        customer_external_id="c1",
        invoice_external_ids=("1", "2"),
        scheduled_at=NOW,
        local_date=NOW.date(),
        step_id="late",
        rule="14 days late: firm reminder",
        customer_name="Cust One",
    )
    actions = [
        (replace(base, key="r" * 40, items=items, recipients=("ap@cust.example",)), ActionState.AWAITING_APPROVAL),
        (
            replace(
                base, key="f" * 40, kind=ActionKind.LATE_FEE, invoice_external_ids=("1",), amount=Money.of(25, "GBP")
            ),
            ActionState.AWAITING_APPROVAL,
        ),
        (replace(base, key="c" * 40, kind=ActionKind.CALL_TASK, step_id="call"), ActionState.AWAITING_APPROVAL),
        (
            replace(
                base,
                key="u" * 40,
                kind=ActionKind.LATE_FEE,
                customer_external_id="c2",
                customer_name="Dollar Co",
                invoice_external_ids=("3",),
                amount=Money.of("10.50", "USD"),
            ),
            ActionState.AWAITING_APPROVAL,
        ),
        (
            replace(
                base,
                key="h" * 40,
                kind=ActionKind.HOLD,
                customer_external_id="c2",
                customer_name="Dollar Co",
                invoice_external_ids=("3",),
                hold_reason=HoldReason.PROMISE_TO_PAY,
                rule="the customer promised to pay by 2026-11-20",
            ),
            ActionState.PLANNED,
        ),
        (replace(base, key="d" * 40, step_id="old"), ActionState.DONE),  # already sent: not in the review
    ]
    with store.unit_of_work() as uow:
        for action, state in actions:
            uow.session.add(
                ActionRow(
                    key=action.key,
                    connection_id=cid,
                    kind=action.kind.value,
                    step=action.step_id,
                    invoice_external_id=action.invoice_external_ids[0],
                    customer_external_id=action.customer_external_id,
                    state=state.value,
                    scheduled_at=action.scheduled_at,
                    payload=action_to_json(action),
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        uow.commit()
    review = review_of(store, cid)
    assert review.synced
    assert review.in_review
    assert review.waiting == 4
    one, dollar = review.customers
    assert (one.name, dollar.name) == ("Cust One", "Dollar Co")
    assert [(g.label, g.step_id) for g in one.groups] == [
        ("reminder", "late"),
        ("late fee", "late"),
        ("call task", "call"),
    ]
    [reminder] = one.groups[0].items
    assert [(line.number, line.coming_up) for line in reminder.invoices] == [("INV-1", False), ("INV-2", True)]
    assert reminder.amount == gbp  # only the overdue invoice is asked for; INV-2 is coming up
    assert one.groups[1].items[0].amount == Money.of(25, "GBP")
    [totals] = one.totals
    assert (totals.currency, totals.reminded, totals.fees) == ("GBP", gbp, Money.of(25, "GBP"))
    assert [h.reason for h in dollar.holds] == ["promise to pay"]
    assert [(t.currency, t.fees) for t in review.totals] == [
        ("GBP", Money.of(25, "GBP")),
        ("USD", Money.of("10.50", "USD")),
    ]


def test_nothing_synced_yet_is_said(store: Store) -> None:
    cid = connect(store).connection_id
    review = review_of(store, cid)
    assert not review.synced
    assert review.waiting == 0
    assert review.customers == ()


def test_nudges_own_fee_invoices_are_never_planned(store: Store) -> None:
    cid = connect(store).connection_id
    synced(store, cid, [snapshot(1), snapshot(2)])
    with store.unit_of_work() as uow:
        fee = uow.session.scalars(select(Invoice).where(Invoice.connection_id == cid, Invoice.external_id == "2")).one()
        fee.created_by_nudge = True  # the ledger's copy carries Nudge's marker (written by any organization)
        uow.commit()
    with store.unit_of_work() as uow:
        [state] = load_states(uow, cid, RULES)
    assert [invoice.external_id for invoice in state.invoices] == ["1"]
    plan_connection(store, cid, RULES, NOW)
    with store.unit_of_work() as uow:
        subjects = {
            invoice
            for payload in uow.session.scalars(select(ActionRow.payload).where(ActionRow.connection_id == cid))
            for invoice in payload["invoice_external_ids"]
        }
    assert subjects == {"1"}


def test_the_ledgers_country_and_zone_become_the_defaults(store: Store) -> None:
    connected = connect(store, country="gb", subdivision="ENG", time_zone="Europe/London")
    row = connection_row(store, connected.connection_id)
    assert (row.holiday_country, row.holiday_subdiv, row.time_zone) == ("GB", "ENG", "Europe/London")
    with store.unit_of_work() as uow:
        settings = connection_settings(uow.connections.by_id(connected.connection_id))  # type: ignore[arg-type]
    assert (settings.holiday_country, settings.holiday_subdiv, settings.started_on) == ("GB", "ENG", None)
    # the user's own choice is kept on a reconnect, even when the ledger says otherwise
    with store.unit_of_work() as uow:
        user_set = uow.connections.by_id(connected.connection_id)
        assert user_set is not None
        user_set.time_zone, user_set.holiday_country, user_set.holiday_subdiv = "Europe/Dublin", "IE", ""
        uow.commit()
    again = connect(store, country="GB", subdivision="ENG", time_zone="Europe/London")
    assert (again.created, again.connection_id) == (False, connected.connection_id)
    row = connection_row(store, connected.connection_id)
    assert (row.holiday_country, row.holiday_subdiv, row.time_zone) == ("IE", "", "Europe/Dublin")
    assert row.chasing == "review"  # a reconnect keeps its state


def test_hostile_locale_values_are_ignored_with_a_note(store: Store) -> None:
    connected = connect(store, country="United Kingdom", subdivision="x", time_zone="Mars/Olympus_Mons")
    row = connection_row(store, connected.connection_id)
    assert (row.holiday_country, row.holiday_subdiv, row.time_zone) == ("", "", "UTC")
    [note] = activities(store, "connection.locale_ignored")
    assert note.detail["ignored"] == {"country": "UNITED KINGDOM", "time_zone": "Mars/Olympus_Mons"}
    empty = connect(store, tenant="t2", country="", time_zone="")
    assert connection_row(store, empty.connection_id).time_zone == "UTC"
    assert len(activities(store, "connection.locale_ignored")) == 1


def test_a_review_left_open_for_weeks_releases_only_its_first_plan_and_the_cadence_runs_from_approval(
    store: Store,
) -> None:
    rules = policy_from_dict(
        {
            "cadences": {
                "standard": {
                    "time_zone": "Europe/London",
                    "send_time": "09:30",
                    "steps": [
                        {"id": "late", "offset": 14, "remind": "firm"},
                        {"id": "final", "offset": 30, "remind": "final_notice", "escalate": True},
                    ],
                }
            }
        }
    )
    cid = connect(store).connection_id
    synced(store, cid, [snapshot(1)])  # first seen 14 days late: the first contact is 'late'
    assert plan_connection(store, cid, rules, NOW).awaiting_approval == 1
    three_weeks = NOW + timedelta(days=21)  # 'final' (+30) has passed while nobody looked at the review
    assert plan_connection(store, cid, rules, three_weeks).planned == 0
    approve(store, cid, "owner", three_weeks)
    plan_connection(store, cid, rules, three_weeks)
    assert sorted(states(store, cid).values()) == ["remind:planned"]  # no final notice straight after it
    # the cadence runs from the approval: 'final' follows 16 days after it (+14 -> +30), not at once
    plan_connection(store, cid, rules, three_weeks + timedelta(days=15))
    assert sorted(states(store, cid).values()) == ["remind:planned"]
    plan_connection(store, cid, rules, three_weeks + timedelta(days=16, hours=1))
    assert sorted(states(store, cid).values()) == ["escalate:planned", "remind:planned", "remind:planned"]
