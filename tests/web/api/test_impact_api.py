"""POST /api/v1/orgs/{org_id}/library/{kind}/impact on SQLite and PostgreSQL: the impact preview through the API.

The practice is tests/support/impact.py's (Alpha and Charlie use "standard" and its flat fee, Bravo does not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.accounts import tokens
from connector.bootstrap import Services
from connector.config import settings_for_tests
from connector.domain.model import Role
from connector.registry import Registry
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.support.databases import Database
from tests.support.impact import NOW, STANDARD, cadence, practice
from web import create_app

PROBLEM = "application/problem+json"
_BASE = settings_for_tests("sqlite://")


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    result = database.store()
    result.create_all()
    try:
        yield result
    finally:
        result.dispose()


@pytest.fixture
def app(store: Store) -> Flask:
    settings = replace(_BASE, database=replace(_BASE.database, url=store.engine.url.render_as_string(False)))
    return create_app(
        settings, Services(settings=settings, store=store, registry=Registry({}, {}), clock=FakeClock(NOW))
    )


def _bearer(store: Store, user_id: int, org_id: int, role: Role) -> dict[str, str]:
    with store.unit_of_work() as uow:
        created = tokens.create(uow, user_id=user_id, organization_id=org_id, name="t", role=role, now=NOW, actor="t")
        uow.commit()
    return {"Authorization": f"Bearer {created.secret}"}


@pytest.fixture
def owner(store: Store, make_user: Callable[..., Any]) -> tuple[int, dict[str, int], dict[str, str]]:
    """The practice's organization id, its library item ids and an owner's bearer header."""
    account = make_user("Practice", Role.OWNER)
    org_id, _, items = practice(store, account.org_id)
    return org_id, items, _bearer(store, account.user_id, org_id, Role.OWNER)


def test_a_step_added_shows_the_reminders_it_adds_per_client(
    client: FlaskClient, owner: tuple[int, dict[str, int], dict[str, str]]
) -> None:
    org_id, items, headers = owner
    nudged = cadence(*STANDARD["steps"][:2], {"id": "nudge", "offset": 7, "remind": "firm"}, STANDARD["steps"][2])
    answer = client.post(
        f"/api/v1/orgs/{org_id}/library/cadence/impact",
        json={"item_id": items["cadence:standard"], "body": nudged},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    impact = answer.get_json()
    assert (impact["kind"], impact["change"], impact["name"], impact["days"]) == ("cadence", "update", "standard", 14)
    assert [(c["name"], c["changes"]["reminders_added"]) for c in impact["clients"]] == [("Alpha", 2), ("Charlie", 1)]
    assert impact["total"]["reminders_added"] == 3
    assert impact["total"]["unchanged"] is False
    first = impact["clients"][1]["changes"]["reminders"][0]
    assert first == {
        "change": "added",
        "day": "2026-11-11",
        "customer": "c1",
        "customer_name": "Charlie c1",
        "step": "nudge",
        "invoices": ["Charlie-c1"],
    }


def test_a_late_fee_change_shows_amounts_per_currency(
    client: FlaskClient, owner: tuple[int, dict[str, int], dict[str, str]]
) -> None:
    org_id, items, headers = owner
    answer = client.post(
        f"/api/v1/orgs/{org_id}/library/late_fee/impact",
        json={"item_id": items["late_fee:flat"], "body": {"kind": "flat", "amount": 40, "warning_days": 0}, "days": 20},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    total = answer.get_json()["total"]
    assert total["fees_change"] == [{"amount": "15.00", "currency": "EUR"}, {"amount": "30.00", "currency": "GBP"}]
    assert total["fees_current"] == [{"amount": "25.00", "currency": "EUR"}, {"amount": "50.00", "currency": "GBP"}]
    assert {(f["invoice"], f["change"], f["before"]["amount"], f["after"]["amount"]) for f in total["fees"]} == {
        ("Alpha-c1", "changed", "25.00", "40.00"),
        ("Alpha-c2", "changed", "25.00", "40.00"),
        ("Charlie-c1", "changed", "25.00", "40.00"),
    }


def test_deleting_an_unused_policy_changes_nothing(
    client: FlaskClient, owner: tuple[int, dict[str, int], dict[str, str]]
) -> None:
    org_id, items, headers = owner
    answer = client.post(
        f"/api/v1/orgs/{org_id}/library/discount/impact",
        json={"item_id": items["discount:spare"], "delete": True},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.get_json()["clients"] == []
    assert answer.get_json()["total"]["unchanged"] is True


@pytest.mark.parametrize(
    ("kind", "body", "field", "status"),
    [
        ("cadence", {"item_id": "standard", "body": cadence({"id": "d", "offset": "soon", "remind": "firm"})}, "", 0),
        ("template", {"body": {"subject.txt": "Hi"}, "name": "hello"}, "kind", 422),
        ("cadence", {"delete": True}, "item_id", 422),
        ("cadence", {"item_id": "standard"}, "body", 422),
        ("cadence", {"item_id": "standard", "delete": True}, "item_id", 409),  # Alpha and Charlie follow it
        ("cadence", {"item_id": 999_999, "body": {}}, "item_id", 404),
        ("cadence", {"body": {}, "days": 0}, "days", 422),
    ],
)
def test_a_refused_proposal_is_a_problem_naming_the_field(
    client: FlaskClient,
    owner: tuple[int, dict[str, int], dict[str, str]],
    kind: str,
    body: dict[str, Any],
    field: str,
    status: int,
) -> None:
    org_id, items, headers = owner
    if body.get("item_id") == "standard":
        body = {**body, "item_id": items["cadence:standard"]}
    answer = client.post(f"/api/v1/orgs/{org_id}/library/{kind}/impact", json=body, headers=headers)
    problem = answer.get_json(force=True)
    assert answer.content_type == PROBLEM
    if status == 0:  # the planner's own check of the proposed cadence
        assert answer.status_code == 422
        assert [e["field"] for e in problem["errors"]] == ["body.offset"]
        return
    assert answer.status_code == status, problem
    if status == 404:  # not found: the same answer as for another organization's item, no field list
        assert problem["detail"] == "there is no cadence with id 999999 in this library"
        return
    assert [e["field"] for e in problem["errors"]] == [field]


def test_viewers_and_other_organizations_are_refused(
    client: FlaskClient,
    store: Store,
    owner: tuple[int, dict[str, int], dict[str, str]],
    make_user: Callable[..., Any],
) -> None:
    org_id, items, _ = owner
    viewer = make_user("Practice", Role.VIEWER)
    outsider = make_user("Elsewhere", Role.OWNER)
    payload = {"item_id": items["late_fee:flat"], "body": {"kind": "flat", "amount": 30}}
    as_viewer = client.post(
        f"/api/v1/orgs/{org_id}/library/late_fee/impact",
        json=payload,
        headers=_bearer(store, viewer.user_id, org_id, Role.VIEWER),
    )
    assert (as_viewer.status_code, as_viewer.content_type) == (403, PROBLEM)
    as_outsider = client.post(
        f"/api/v1/orgs/{org_id}/library/late_fee/impact",
        json=payload,
        headers=_bearer(store, outsider.user_id, outsider.org_id, Role.OWNER),
    )
    assert (as_outsider.status_code, as_outsider.content_type) == (404, PROBLEM)
    assert "Alpha" not in as_outsider.text


def test_the_openapi_document_describes_the_route(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/orgs/{org_id}/library/{kind}/impact"]["post"]
    assert "200" in operation["responses"]
    schemas = document["components"]["schemas"]
    assert {"ImpactRequest", "Impact", "Changes", "FeeChange", "ReminderChange", "Money"} <= set(schemas)
