"""The library API and the audit log API on SQLite and PostgreSQL: list, get, create, update, rename, delete,
restore, versions, usage for every kind; refusals as problems naming the field; roles; other organizations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.accounts import tokens
from connector.config import Settings
from connector.domain.model import Role
from connector.library import audit
from connector.library.starter import ensure_library
from connector.storage import Store
from connector.storage.tables import Membership, MembershipClient
from tests.support.databases import Database
from tests.support.domain import utc
from tests.support.library import add_client, add_customer, starter_settings

PROBLEM = "application/problem+json"
KINDS = ("cadences", "late_fees", "discounts", "payment_plans", "templates")


@pytest.fixture
def settings(database: Database) -> Settings:
    """The install's settings with a starter library, over the test's database (tests/conftest.py: each backend)."""
    starter = starter_settings(database.url)
    return replace(starter, database=replace(starter.database, url=database.url))


class Api:
    """Calls with one member's API token."""

    def __init__(self, client: FlaskClient, secret: str, org_id: int) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.base = f"/api/v1/orgs/{org_id}"

    def get(self, path: str, **query: Any) -> TestResponse:
        return self.client.get(f"{self.base}{path}", headers=self.headers, query_string=query)

    def post(self, path: str, body: dict[str, Any]) -> TestResponse:
        return self.client.post(f"{self.base}{path}", headers=self.headers, json=body)

    def put(self, path: str, body: dict[str, Any]) -> TestResponse:
        return self.client.put(f"{self.base}{path}", headers=self.headers, json=body)

    def delete(self, path: str) -> TestResponse:
        return self.client.delete(f"{self.base}{path}", headers=self.headers)


@pytest.fixture
def api_for(app: Flask, store: Store, settings: Settings, make_user: Callable[..., Any]) -> Callable[..., Api]:
    def make(org_name: str = "Alpha Books", role: Role = Role.OWNER) -> Api:
        account = make_user(org_name, role)
        with store.unit_of_work() as uow:
            # as when an organization is created (sign-up, `nudge users create`, `nudge db upgrade` for older ones)
            ensure_library(uow, account.org_id, settings, utc(2026, 1, 5))
            created = tokens.create(
                uow,
                user_id=account.user_id,
                organization_id=account.org_id,
                name="t",
                role=role,
                now=utc(2026, 1, 5),
                actor="test",
            )
            uow.commit()
        api = Api(app.test_client(), created.secret, account.org_id)
        api.org_id = account.org_id  # type: ignore[attr-defined]
        return api

    return make


def _by_name(api: Api, kind: str, name: str) -> dict[str, Any]:
    listed = api.get(f"/library/{kind}", limit=200)
    assert listed.status_code == 200, listed.text
    return next(item for item in listed.get_json()["items"] if item["name"] == name)


def _problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.get_json(force=True)
    return body


def test_every_kind_lists_the_seeded_starter_library(api_for: Callable[..., Api]) -> None:
    api = api_for()
    names = {kind: {i["name"] for i in api.get(f"/library/{kind}").get_json()["items"]} for kind in KINDS}
    assert names["cadences"] == {"standard"}
    assert names["late_fees"] == {"monthly_interest", "uk_statutory"}
    assert names["discounts"] == {"two_ten"}
    assert names["payment_plans"] == {"monthly"}
    assert "firm" in names["templates"]
    page = api.get("/library/templates", limit=2).get_json()
    assert len(page["items"]) == 2
    second = api.get("/library/templates", limit=2, cursor=page["next_cursor"]).get_json()
    assert {i["id"] for i in second["items"]}.isdisjoint({i["id"] for i in page["items"]})


def test_create_update_stale_edit_and_versions(api_for: Callable[..., Api]) -> None:
    api = api_for()
    created = api.post(
        "/library/late_fees", {"name": "flat_25", "body": {"kind": "flat", "amount": 25, "grace_days": 3}}
    )
    assert created.status_code == 201, created.text
    fee = created.get_json()
    assert (fee["name"], fee["version"], fee["kind"]) == ("flat_25", 1, "late_fee")
    updated = api.put(f"/library/late_fees/{fee['id']}", {"body": {"kind": "flat", "amount": 30}, "base_version": 1})
    assert updated.status_code == 200, updated.text
    assert (updated.get_json()["version"], updated.get_json()["body"]["amount"]) == (2, 30)
    stale = _problem(
        api.put(f"/library/late_fees/{fee['id']}", {"body": {"kind": "flat", "amount": 35}, "base_version": 1}), 409
    )
    assert "someone else changed" in stale["detail"]
    assert stale["errors"] == [{"field": "base_version", "message": stale["detail"]}]
    detail = api.get(f"/library/late_fees/{fee['id']}").get_json()
    assert [v["number"] for v in detail["versions"]] == [2, 1]
    versions = api.get(f"/library/late_fees/{fee['id']}/versions").get_json()
    assert versions[1]["body"]["amount"] == 25
    restored = api.post(f"/library/late_fees/{fee['id']}/restore", {"version": 1})
    assert restored.status_code == 200, restored.text
    assert (restored.get_json()["version"], restored.get_json()["body"]["amount"]) == (3, 25)
    assert api.get(f"/library/cadences/{fee['id']}").status_code == 404  # a late fee is not a cadence


def test_a_cadence_naming_an_unknown_policy_is_refused_with_the_field(api_for: Callable[..., Api]) -> None:
    api = api_for()
    body = {"steps": [{"id": "late", "offset": 5, "remind": "firm", "late_fee": "nowhere"}]}
    refused = _problem(api.post("/library/cadences", {"name": "strict", "body": body}), 422)
    assert refused["errors"][0]["field"] == "body.late_fee"
    assert "nowhere" in refused["detail"]
    malformed = _problem(api.post("/library/cadences", {"name": "", "body": []}), 422)
    assert {e["field"] for e in malformed["errors"]} == {"name", "body"}


def test_a_template_that_does_not_render_is_refused_with_part_and_line(api_for: Callable[..., Api]) -> None:
    api = api_for()
    firm = _by_name(api, "templates", "firm")
    body = {**firm["body"], "body.txt": "Hello {{ customer_name }},\n\n{{ amount_due }}\n"}
    refused = _problem(api.put(f"/library/templates/{firm['id']}", {"body": body, "base_version": 1}), 422)
    assert refused["errors"][0]["field"] == "body.txt"
    assert refused["detail"].startswith("line 3: ")
    assert "amount_due" in refused["detail"]


def test_rename_keeps_the_id_and_delete_is_refused_while_in_use(api_for: Callable[..., Api], store: Store) -> None:
    api = api_for()
    standard = _by_name(api, "cadences", "standard")
    with store.unit_of_work() as uow:
        client = add_client(uow, api.org_id, "Acme Ltd", standard["id"])  # type: ignore[attr-defined]
        add_customer(uow, client, "Blue Harbor Cafe", standard["id"])
        uow.commit()
    renamed = api.post(f"/library/cadences/{standard['id']}/rename", {"name": "Standard 2026"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.get_json()["id"], renamed.get_json()["name"]) == (standard["id"], "Standard 2026")
    usage = api.get(f"/library/cadences/{standard['id']}/usage").get_json()
    assert usage["clients"] == [{"id": client, "name": "Acme Ltd"}]
    assert usage["in_use"] is True
    assert usage["default"] is True
    refused = _problem(api.delete(f"/library/cadences/{standard['id']}"), 409)
    assert "Acme Ltd" in refused["detail"]
    assert "Blue Harbor Cafe" in refused["detail"]
    fee = _by_name(api, "late_fees", "uk_statutory")
    assert api.delete(f"/library/late_fees/{fee['id']}").status_code == 204
    assert api.get(f"/library/late_fees/{fee['id']}").status_code == 404
    monthly = _by_name(api, "late_fees", "monthly_interest")
    in_use = _problem(api.delete(f"/library/late_fees/{monthly['id']}"), 409)
    assert "cadence 'Standard 2026'" in in_use["detail"]


def test_viewers_read_and_cannot_change(api_for: Callable[..., Api]) -> None:
    owner = api_for("Alpha Books", Role.OWNER)
    viewer = api_for("Alpha Books", Role.VIEWER)
    standard = _by_name(owner, "cadences", "standard")
    assert viewer.get(f"/library/cadences/{standard['id']}").status_code == 200
    _problem(viewer.post("/library/discounts", {"name": "d", "body": {"percent": 1, "days": 5}}), 403)
    _problem(viewer.put(f"/library/cadences/{standard['id']}", {"body": standard["body"], "base_version": 1}), 403)
    _problem(viewer.delete(f"/library/cadences/{standard['id']}"), 403)
    accountant = api_for("Alpha Books", Role.ACCOUNTANT)
    assert accountant.post("/library/discounts", {"name": "d", "body": {"percent": 1, "days": 5}}).status_code == 201


def test_another_organizations_library_and_audit_are_not_found(api_for: Callable[..., Api], store: Store) -> None:
    alpha = api_for("Alpha Books")
    beta = api_for("Beta Bakery")
    standard = _by_name(alpha, "cadences", "standard")
    with store.unit_of_work() as uow:
        alpha_client = add_client(uow, alpha.org_id, "Acme Ltd")  # type: ignore[attr-defined]
        uow.commit()
    for response in (
        beta.get(f"/library/cadences/{standard['id']}"),
        beta.put(f"/library/cadences/{standard['id']}", {"body": standard["body"], "base_version": 1}),
        beta.delete(f"/library/cadences/{standard['id']}"),
        beta.get(f"/library/cadences/{standard['id']}/versions"),
        beta.get("/audit", connection_id=alpha_client),
    ):
        _problem(response, 404)
    foreign = Api(beta.client, beta.headers["Authorization"].removeprefix("Bearer "), alpha.org_id)  # type: ignore[attr-defined]
    _problem(foreign.get("/library/cadences"), 404)
    _problem(foreign.get("/audit"), 404)
    assert standard["id"] not in {i["id"] for i in beta.get("/library/cadences").get_json()["items"]}


def test_the_audit_log_lists_changes_newest_first_with_filters_and_cursor(api_for: Callable[..., Api]) -> None:
    api = api_for()
    discount = _by_name(api, "discounts", "two_ten")
    for percent in (3, 4):
        body = {**discount["body"], "percent": percent}
        response = api.put(f"/library/discounts/{discount['id']}", {"body": body, "base_version": percent - 2})
        assert response.status_code == 200, response.text
    first = api.get("/audit", entity="discount", entity_id=str(discount["id"]), limit=1).get_json()
    (newest,) = first["items"]
    assert (newest["change"], newest["before"]["body"]["percent"], newest["after"]["body"]["percent"]) == (
        "update",
        3,
        4,
    )
    assert (
        newest["actor"].endswith("(API token " + api.headers["Authorization"][7:15] + ")")
        or "API token" in newest["actor"]
    )
    rest = api.get("/audit", entity="discount", entity_id=str(discount["id"]), cursor=first["next_cursor"]).get_json()
    assert [e["change"] for e in rest["items"]] == ["update", "create"]
    assert rest["next_cursor"] is None
    for field, value in (("entity", "dis count"), ("entity_id", "1\x00")):
        assert _problem(api.get("/audit", **{field: value}), 422)["errors"][0]["field"] == field
    tampered = _problem(api.get("/audit", cursor=first["next_cursor"] + "x"), 422)
    assert tampered["errors"][0]["field"] == "cursor"


def test_the_openapi_document_covers_the_library_and_audit(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for kind in KINDS:
        assert {"get", "post"} <= set(paths[f"/api/v1/orgs/{{org_id}}/library/{kind}"])
        assert {"get", "put", "delete"} <= set(paths[f"/api/v1/orgs/{{org_id}}/library/{kind}/{{item_id}}"])
        put = paths[f"/api/v1/orgs/{{org_id}}/library/{kind}/{{item_id}}"]["put"]
        assert {"200", "404", "409", "422"} <= set(put["responses"])
    assert "get" in paths["/api/v1/orgs/{org_id}/audit"]


def test_the_app_runs_on_the_backend_asked_for(store: Store, database: Database) -> None:
    expected = "postgresql" if database.url.startswith("postgresql") else "sqlite"
    assert store.dialect == expected


def test_ids_beyond_the_database_range_are_not_found(api_for: Callable[..., Api]) -> None:
    api = api_for()
    huge = 2**63 + 5
    _problem(api.get(f"/library/cadences/{huge}"), 404)
    _problem(api.post(f"/library/cadences/{huge}/restore", {"version": 1}), 404)
    _problem(api.get("/audit", connection_id=2**31 - 1), 404)
    assert _problem(api.get("/audit", connection_id=2**40), 422)["errors"][0]["field"] == "connection_id"


def test_a_client_limited_member_reads_the_library_changes_nothing_and_audits_only_their_clients(
    api_for: Callable[..., Api], store: Store
) -> None:
    owner = api_for("Alpha Books", Role.OWNER)
    limited = api_for("Alpha Books", Role.ACCOUNTANT)
    org_id: int = owner.org_id  # type: ignore[attr-defined]
    standard = _by_name(owner, "cadences", "standard")
    with store.unit_of_work() as uow:
        mine = add_client(uow, org_id, "Acme Ltd")
        theirs = add_client(uow, org_id, "Bolt Inc")
        membership = uow.session.scalars(
            select(Membership).where(Membership.organization_id == org_id, Membership.role == "accountant")
        ).one()
        membership.client_limited = True
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=mine))
        for connection_id in (mine, theirs):
            audit.record(
                uow,
                organization_id=org_id,
                actor="owner",
                at=utc(2026, 1, 6),
                entity="client_settings",
                entity_id=connection_id,
                change="update",
                before={"a": 1},
                after={"a": 2},
                connection_id=connection_id,
            )
        uow.commit()
    assert limited.get(f"/library/cadences/{standard['id']}").status_code == 200
    _problem(limited.post("/library/discounts", {"name": "d", "body": {"percent": 1, "days": 5}}), 403)
    seen = limited.get("/audit").get_json()["items"]
    assert [entry["connection_id"] for entry in seen] == [mine]
    _problem(limited.get("/audit", connection_id=theirs), 404)
    everything = owner.get("/audit", entity="client_settings").get_json()["items"]
    assert {entry["connection_id"] for entry in everything} == {mine, theirs}
