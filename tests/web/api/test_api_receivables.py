"""The receivables resources of /api/v1 (issue 14): invoices (filters, cursor pages, detail with timeline),
actions (list, approve / skip / retry / mark-sent), tasks (list, complete), activity, reports. Viewers read,
owners and accountants act; client-limited members and other organizations see nothing of others' clients."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.accounts import tokens
from connector.domain.actions import ActionKind
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Membership, MembershipClient
from tests.support import receivables as seed
from tests.support.clock import FakeClock
from web.extensions import SERVICES_KEY

PROBLEM = "application/problem+json"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TODAY = NOW.date()


class Caller:
    """A test client that sends one API token with every request."""

    def __init__(self, client: FlaskClient, secret: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}

    def get(self, url: str, **query: Any) -> Any:
        return self.client.get(url, query_string=query, headers=self.headers)

    def post(self, url: str, body: Any = None) -> Any:
        return self.client.post(url, json=body, headers=self.headers)


def _token(store: Store, user_id: int, org_id: int, role: Role) -> str:
    with store.unit_of_work() as uow:
        created = tokens.create(
            uow, user_id=user_id, organization_id=org_id, name="t", role=role, now=NOW, actor="test"
        )
        uow.commit()
    return created.secret


def _limit_to(store: Store, user_id: int, org_id: int, connection_ids: list[int]) -> None:
    with store.unit_of_work() as uow:
        membership = uow.session.query(Membership).filter_by(user_id=user_id, organization_id=org_id).one()
        membership.client_limited = True
        for cid in connection_ids:
            uow.session.add(MembershipClient(membership_id=membership.id, connection_id=cid))
        uow.commit()


@pytest.fixture
def world(app: Flask, store: Store, make_user: Callable[..., Any]) -> dict[str, Any]:
    """Practice P (owner, viewer, a member limited to client A) with clients A and B; practice Q with one client."""
    app.extensions[SERVICES_KEY].clock = FakeClock(NOW)
    owner = make_user("P", Role.OWNER)
    viewer = make_user("P", Role.VIEWER)
    limited = make_user("P", Role.ACCOUNTANT)
    stranger = make_user("Q", Role.OWNER)
    p, q = owner.org_id, stranger.org_id
    a = seed.client(store, p, "Alpha")
    b = seed.client(store, p, "Beta", home_currency="EUR")
    other = seed.client(store, q, "Other")
    _limit_to(store, limited.user_id, p, [a])
    customer = seed.customer(store, a, "c1", "Cust One", emails=("ap@cust.example",))
    inv1 = seed.invoice(store, a, "1", due=TODAY - timedelta(days=31), balance="120.50")
    seed.invoice(store, a, "2", due=TODAY - timedelta(days=3))
    seed.invoice(store, a, "3", due=TODAY + timedelta(days=3))
    inv_b = seed.invoice(store, b, "1", due=TODAY - timedelta(days=95), currency="EUR", balance="99.99")
    inv_q = seed.invoice(store, other, "1", due=TODAY, number="Q-SECRET")
    ids = {
        "waiting": seed.action(store, a, "w" * 40, state="awaiting_approval", at=NOW + timedelta(hours=1)),
        "failed": seed.action(store, a, "f" * 40, state="failed", kind=ActionKind.NOTE),
        "uncertain": seed.action(store, a, "u" * 40, state="uncertain", recipients=("ap@cust.example",)),
        "done": seed.action(store, a, "d" * 40, state="done"),
        "beta": seed.action(store, b, "b" * 40, state="failed", kind=ActionKind.NOTE, customer_id="x"),
        "theirs": seed.action(store, other, "q" * 40, state="failed", kind=ActionKind.NOTE),
    }
    seed.payment(store, a, "PAY-1", "1", "20.00", TODAY - timedelta(days=2))
    task_a = seed.task(store, p, a, due_on=TODAY)
    task_b = seed.task(store, p, b, due_on=TODAY)
    return {
        "owner": Caller(app.test_client(), _token(store, owner.user_id, p, Role.OWNER)),
        "viewer": Caller(app.test_client(), _token(store, viewer.user_id, p, Role.VIEWER)),
        "limited": Caller(app.test_client(), _token(store, limited.user_id, p, Role.ACCOUNTANT)),
        "stranger": Caller(app.test_client(), _token(store, stranger.user_id, q, Role.OWNER)),
        "owner_email": owner.email,
        "p": p,
        "q": q,
        "a": a,
        "b": b,
        "other": other,
        "customer": customer,
        "inv1": inv1,
        "inv_b": inv_b,
        "inv_q": inv_q,
        "task_a": task_a,
        "task_b": task_b,
        **ids,
    }


def _pages(caller: Caller, url: str, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = caller.get(url, **query, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_invoices_list_with_filters_pages_and_money_as_strings(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    url = f"/api/v1/orgs/{p}/invoices"
    every = _pages(owner, url, limit=2)
    assert [(item["client"], item["number"]) for item in every] == [
        ("Beta", "INV-1"),
        ("Alpha", "INV-1"),
        ("Alpha", "INV-2"),
        ("Alpha", "INV-3"),
    ]
    first = every[1]
    assert first["balance"] == {"amount": "120.50", "currency": "GBP"}
    assert first["aging"] == "31-60"
    assert first["days_past_due"] == 31
    assert first["customer_id"] == world["customer"]
    assert first["client_id"] == world["a"]
    assert [item["number"] for item in _pages(owner, url, aging="90+")] == ["INV-1"]
    assert [item["client"] for item in _pages(owner, url, client_id=world["b"])] == ["Beta"]
    assert len(_pages(owner, url, customer_id=world["customer"])) == 3
    assert [item["number"] for item in _pages(owner, url, search="inv-3")] == ["INV-3"]
    assert [item["number"] for item in _pages(owner, url, due_from=TODAY.isoformat())] == ["INV-3"]
    assert "Q-SECRET" not in str(every)


def test_invoice_input_errors_are_problems_naming_the_field(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    url = f"/api/v1/orgs/{p}/invoices"
    for query, field in [
        ({"aging": "0-10"}, "aging"),
        ({"status": "late"}, "status"),
        ({"limit": 0}, "limit"),
        ({"cursor": "tampered"}, "cursor"),
        ({"due_from": TODAY.isoformat(), "due_to": (TODAY - timedelta(days=1)).isoformat()}, "due_from"),
    ]:
        answer = owner.get(url, **query)
        assert answer.status_code == 422, query
        assert answer.content_type == PROBLEM
        assert field in {error["field"] for error in answer.get_json()["errors"]}, answer.get_json()
    # A cursor of another list is refused too.
    actions_cursor = owner.get(f"/api/v1/orgs/{p}/actions", limit=1).get_json()["next_cursor"]
    assert owner.get(url, cursor=actions_cursor).status_code == 422


def test_the_invoice_detail_has_its_customer_payments_actions_and_timeline(world: dict[str, Any]) -> None:
    owner, p, a = world["owner"], world["p"], world["a"]
    answer = owner.get(f"/api/v1/orgs/{p}/clients/{a}/invoices/{world['inv1']}")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["invoice"]["external_id"] == "1"
    assert body["customer"]["emails"] == ["ap@cust.example"]
    assert body["payments"][0]["amount"] == {"amount": "20.00", "currency": "GBP"}
    assert {action["key"][0] for action in body["actions"]} == {"w", "f", "u", "d"}
    moments = [entry["at"] for entry in body["timeline"]]
    assert moments == sorted(moments, reverse=True)
    assert {entry["type"] for entry in body["timeline"]} == {"action", "payment", "task"}
    # Ids are internal and client-scoped: another client's invoice, or another organization's, is a 404.
    assert owner.get(f"/api/v1/orgs/{p}/clients/{a}/invoices/{world['inv_b']}").status_code == 404
    assert owner.get(f"/api/v1/orgs/{p}/clients/{world['other']}/invoices/{world['inv_q']}").status_code == 404
    stranger = world["stranger"].get(f"/api/v1/orgs/{p}/clients/{a}/invoices/{world['inv1']}")
    assert stranger.status_code == 404
    assert stranger.content_type == PROBLEM


def test_a_client_limited_member_sees_only_their_client(world: dict[str, Any]) -> None:
    limited, p = world["limited"], world["p"]
    assert {item["client_id"] for item in _pages(limited, f"/api/v1/orgs/{p}/invoices")} == {world["a"]}
    assert limited.get(f"/api/v1/orgs/{p}/clients/{world['b']}/invoices/{world['inv_b']}").status_code == 404
    assert limited.get(f"/api/v1/orgs/{p}/invoices", client_id=world["b"]).status_code == 404
    assert {item["client_id"] for item in _pages(limited, f"/api/v1/orgs/{p}/actions")} == {world["a"]}
    assert limited.post(f"/api/v1/orgs/{p}/actions/{world['beta']}/retry").status_code == 404
    assert [item["id"] for item in _pages(limited, f"/api/v1/orgs/{p}/tasks")] == [world["task_a"]]
    assert limited.post(f"/api/v1/orgs/{p}/tasks/{world['task_b']}/complete", {"note": "x"}).status_code == 404
    aging = limited.get(f"/api/v1/orgs/{p}/reports/aging").get_json()["items"]
    assert {row["client_id"] for row in aging} == {world["a"]}
    # Acting on their own client is allowed (an accountant).
    assert limited.post(f"/api/v1/orgs/{p}/actions/{world['failed']}/retry").status_code == 200


def test_actions_list_by_state_and_the_four_operations(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    failed = _pages(owner, f"/api/v1/orgs/{p}/actions", state="failed")
    assert sorted(item["id"] for item in failed) == sorted([world["failed"], world["beta"]])
    approved = owner.post(f"/api/v1/orgs/{p}/actions/{world['waiting']}/approve")
    assert approved.status_code == 200
    assert approved.get_json()["state"] == "planned"
    retried = owner.post(f"/api/v1/orgs/{p}/actions/{world['failed']}/retry").get_json()
    assert (retried["state"], retried["attempts"], retried["key"]) == ("planned", 0, "f" * 40)
    sent = owner.post(f"/api/v1/orgs/{p}/actions/{world['uncertain']}/mark-sent").get_json()
    assert sent["state"] == "done"
    skipped = owner.post(f"/api/v1/orgs/{p}/actions/{world['waiting']}/skip").get_json()
    assert skipped["state"] == "skipped"
    refused = owner.post(f"/api/v1/orgs/{p}/actions/{world['done']}/retry")
    assert refused.status_code == 409
    assert refused.content_type == PROBLEM
    assert refused.get_json()["detail"] == "only failed actions can be retried; this one is done"
    assert owner.post(f"/api/v1/orgs/{p}/actions/{world['theirs']}/retry").status_code == 404
    activity = _pages(owner, f"/api/v1/orgs/{p}/activity")
    kinds = [entry["kind"] for entry in activity]
    assert kinds[:4] == ["action.skipped", "action.marked_sent", "action.retried", "action.approved"]
    assert {entry["actor"] for entry in activity[:4]} == {f"{world['owner_email']} (API token {_prefix(owner)})"}


def _prefix(caller: Caller) -> str:
    return caller.headers["Authorization"].removeprefix("Bearer ")[: tokens.PREFIX_LENGTH]


def test_viewers_read_but_do_not_act(world: dict[str, Any]) -> None:
    viewer, p = world["viewer"], world["p"]
    assert viewer.get(f"/api/v1/orgs/{p}/actions").status_code == 200
    for operation in ("approve", "skip", "retry", "mark-sent"):
        answer = viewer.post(f"/api/v1/orgs/{p}/actions/{world['waiting']}/{operation}")
        assert answer.status_code == 403, operation
        assert answer.content_type == PROBLEM
    assert viewer.post(f"/api/v1/orgs/{p}/tasks/{world['task_a']}/complete", {"note": "called"}).status_code == 403
    assert [
        item["state"] for item in _pages(world["owner"], f"/api/v1/orgs/{p}/actions", state="awaiting_approval")
    ] == ["awaiting_approval"]


def test_tasks_list_and_complete_with_a_note(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    listed = _pages(owner, f"/api/v1/orgs/{p}/tasks", limit=1)
    assert [item["id"] for item in listed] == [world["task_a"], world["task_b"]]
    empty = owner.post(f"/api/v1/orgs/{p}/tasks/{world['task_a']}/complete", {"note": ""})
    assert empty.status_code == 422
    assert "note" in {error["field"] for error in empty.get_json()["errors"]}
    done = owner.post(f"/api/v1/orgs/{p}/tasks/{world['task_a']}/complete", {"note": "Paying Friday"})
    assert done.status_code == 200
    assert (done.get_json()["state"], done.get_json()["outcome"]) == ("done", "Paying Friday")
    again = owner.post(f"/api/v1/orgs/{p}/tasks/{world['task_a']}/complete", {"note": "again"})
    assert again.status_code == 409
    assert [item["id"] for item in _pages(owner, f"/api/v1/orgs/{p}/tasks", state="done")] == [world["task_a"]]
    assert len(_pages(owner, f"/api/v1/orgs/{p}/tasks", state="all")) == 2


def test_activity_of_an_invoice_and_a_customer(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    owner.post(f"/api/v1/orgs/{p}/actions/{world['failed']}/retry")
    for_invoice = _pages(owner, f"/api/v1/orgs/{p}/activity", invoice_id=world["inv1"])
    assert [entry["kind"] for entry in for_invoice] == ["action.retried"]
    for_customer = _pages(owner, f"/api/v1/orgs/{p}/activity", customer_id=world["customer"])
    assert [entry["kind"] for entry in for_customer] == ["action.retried"]
    assert _pages(owner, f"/api/v1/orgs/{p}/activity", client_id=world["b"]) == []
    assert owner.get(f"/api/v1/orgs/{p}/activity", client_id=world["other"]).status_code == 404


def test_reports_aging_dso_and_recovery(world: dict[str, Any]) -> None:
    owner, p = world["owner"], world["p"]
    aging = owner.get(f"/api/v1/orgs/{p}/reports/aging").get_json()["items"]
    assert [(row["client"], row["currency"]) for row in aging] == [("Alpha", "GBP"), ("Beta", "EUR")]
    alpha = {bucket["bucket"]: bucket["balance"]["amount"] for bucket in aging[0]["buckets"]}
    assert alpha == {"current": "100.00", "1-30": "100.00", "31-60": "120.50", "61-90": "0.00", "90+": "0.00"}
    assert aging[1]["total"] == {"amount": "99.99", "currency": "EUR"}
    dso = owner.get(f"/api/v1/orgs/{p}/reports/dso", period_days=90).get_json()["items"]
    assert [row["currency"] for row in dso] == ["GBP", "EUR"]
    assert all(row["dso"] is None or isinstance(row["dso"], str) for row in dso)
    assert owner.get(f"/api/v1/orgs/{p}/reports/dso", period_days=0).status_code == 422
    recovery = owner.get(f"/api/v1/orgs/{p}/reports/recovery", since=(TODAY - timedelta(days=30)).isoformat())
    assert recovery.status_code == 200
    steps = recovery.get_json()["items"]
    assert steps == [
        {
            "step": "overdue-7",  # the reminder of 1 October, sent before the period, preceded the payment
            "reminders_sent": 0,
            "paid_within_7_days": 0,
            "payments": 1,
            "recovered": [{"amount": "20.00", "currency": "GBP"}],
        }
    ]
    assert world["stranger"].get(f"/api/v1/orgs/{p}/reports/aging").status_code == 404


def test_every_receivables_route_is_in_the_openapi_document(client: FlaskClient) -> None:
    paths = set(client.get("/api/v1/openapi.json").get_json()["paths"])
    assert {
        "/api/v1/orgs/{org_id}/invoices",
        "/api/v1/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}",
        "/api/v1/orgs/{org_id}/actions",
        "/api/v1/orgs/{org_id}/actions/{action_id}/approve",
        "/api/v1/orgs/{org_id}/actions/{action_id}/skip",
        "/api/v1/orgs/{org_id}/actions/{action_id}/retry",
        "/api/v1/orgs/{org_id}/actions/{action_id}/mark-sent",
        "/api/v1/orgs/{org_id}/tasks",
        "/api/v1/orgs/{org_id}/tasks/{task_id}/complete",
        "/api/v1/orgs/{org_id}/activity",
        "/api/v1/orgs/{org_id}/reports/aging",
        "/api/v1/orgs/{org_id}/reports/dso",
        "/api/v1/orgs/{org_id}/reports/recovery",
    } <= paths
