"""Every error under /api/ is an RFC 9457 problem (application/problem+json), with the field that was wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from connector.domain.model import Role
from connector.errors import InUse, InvalidInput, NotPermitted, UnknownRecord
from tests.web.api.conftest import PROBLEM, Caller
from web import create_app
from web.extensions import SERVICES_KEY

Make = Callable[..., Any]
SHAPE = {"type", "title", "status", "detail", "instance"}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.get_json(force=True)
    assert set(body) >= SHAPE, body
    assert body["status"] == status
    assert all(isinstance(body[key], str) for key in SHAPE - {"status"})
    return body


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": ""}, [("name", "Length must be between 1 and 100.")]),
        ({"name": 5, "surprise": 1}, [("name", "Not a valid string."), ("surprise", "Unknown field.")]),
        ({}, [("name", "Missing data for required field.")]),
        ({"name": "ci", "role": "admin"}, [("role", "Must be one of: owner, accountant, viewer.")]),
        ([1, 2], [("body", "Invalid input type.")]),
    ],
)
def test_invalid_bodies_are_422_naming_each_field(
    make_user: Make, mint: Make, bearer: Callable[[str], Caller], body: Any, errors: list[tuple[str, str]]
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    answer = bearer(mint(owner)).post(f"/api/v1/orgs/{owner.org_id}/tokens", json=body)
    problem = _problem(answer, 422)
    assert problem["type"] == "urn:nudge:problem:invalid-input"
    assert sorted((e["field"], e["message"]) for e in problem["errors"]) == sorted(errors)
    assert problem["instance"] == f"/api/v1/orgs/{owner.org_id}/tokens"


def test_invalid_query_and_nested_fields_are_named(
    make_user: Make, mint: Make, bearer: Callable[[str], Caller]
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    caller = bearer(mint(owner))
    problem = _problem(caller.get(f"/api/v1/orgs/{owner.org_id}/members?limit=201"), 422)
    assert [e["field"] for e in problem["errors"]] == ["limit"]
    problem = _problem(caller.get(f"/api/v1/orgs/{owner.org_id}/members?limit=x&cursor="), 422)
    assert sorted(e["field"] for e in problem["errors"]) == ["cursor", "limit"]
    member = caller.get(f"/api/v1/orgs/{owner.org_id}/members").get_json()["items"][0]["id"]
    problem = _problem(
        caller.patch(f"/api/v1/orgs/{owner.org_id}/members/{member}", json={"connection_ids": ["x"]}), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["connection_ids.0"]
    bad_json = caller.client.post(
        f"/api/v1/orgs/{owner.org_id}/tokens",
        data="{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {caller.secret}"},
    )
    assert [e["field"] for e in _problem(bad_json, 400)["errors"]] == ["body"]


def test_a_service_refusal_names_its_field(make_user: Make, mint: Make, bearer: Callable[[str], Caller]) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    caller = bearer(mint(owner))
    member = caller.get(f"/api/v1/orgs/{owner.org_id}/members").get_json()["items"][0]["id"]
    problem = _problem(caller.patch(f"/api/v1/orgs/{owner.org_id}/members/{member}", json={"role": "viewer"}), 422)
    assert problem["errors"] == [{"field": "role", "message": problem["detail"]}]
    assert "owner" in problem["detail"]
    missing = _problem(caller.patch(f"/api/v1/orgs/{owner.org_id}/members/999999", json={"role": "viewer"}), 404)
    assert "errors" not in missing


@pytest.fixture
def probe_app(app: Flask) -> Flask:
    """A second app over the same services with API routes that raise each kind of error."""
    fresh = create_app(app.extensions[SERVICES_KEY].settings, app.extensions[SERVICES_KEY])
    refusals = {
        "in-use": InUse("cadence Gentle is followed by 2 clients: Client A, Client B"),
        "invalid": InvalidInput("offset must be a whole number of days", "steps.2.offset"),
        "unknown": UnknownRecord("no such cadence", "cadence_id"),
        "not-permitted": NotPermitted("viewers only read"),
    }

    @fresh.get("/api/v1/orgs/<int:org_id>/probe/<kind>")
    def probe(org_id: int, kind: str) -> str:
        if kind == "crash":
            raise RuntimeError("secret internals: /srv/nudge/db password=hunter2")
        raise refusals[kind]

    return fresh


@pytest.mark.parametrize(
    ("kind", "status", "type_", "errors"),
    [
        ("in-use", 409, "urn:nudge:problem:in-use", None),
        (
            "invalid",
            422,
            "urn:nudge:problem:invalid-input",
            [{"field": "steps.2.offset", "message": "offset must be a whole number of days"}],
        ),
        ("unknown", 404, "urn:nudge:problem:not-found", None),
        ("not-permitted", 403, "urn:nudge:problem:not-permitted", None),
    ],
)
def test_connector_errors_map_to_their_status(
    probe_app: Flask, make_user: Make, mint: Make, kind: str, status: int, type_: str, errors: Any
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    answer = probe_app.test_client().get(
        f"/api/v1/orgs/{owner.org_id}/probe/{kind}", headers={"Authorization": f"Bearer {mint(owner)}"}
    )
    problem = _problem(answer, status)
    assert problem["type"] == type_
    assert problem.get("errors") == errors


def test_a_crash_is_a_bare_500_problem_without_internals(probe_app: Flask, make_user: Make, mint: Make) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    answer = probe_app.test_client().get(
        f"/api/v1/orgs/{owner.org_id}/probe/crash", headers={"Authorization": f"Bearer {mint(owner)}"}
    )
    problem = _problem(answer, 500)
    assert problem["type"] == "about:blank"
    assert "hunter2" not in answer.get_data(as_text=True)
    assert "Traceback" not in answer.get_data(as_text=True)
    html = probe_app.test_client().get("/no-such-page")
    assert html.content_type.startswith("text/html")


def test_viewers_only_read(make_user: Make, mint: Make, bearer: Callable[[str], Caller]) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    viewer = make_user("Alpha Books", Role.VIEWER)
    caller = bearer(mint(viewer))
    assert caller.get(f"/api/v1/orgs/{owner.org_id}/members").status_code == 200
    member = caller.get(f"/api/v1/orgs/{owner.org_id}/members").get_json()["items"][1]["id"]
    problem = _problem(caller.patch(f"/api/v1/orgs/{owner.org_id}/members/{member}", json={"role": "owner"}), 403)
    assert problem["title"] == "Forbidden"
