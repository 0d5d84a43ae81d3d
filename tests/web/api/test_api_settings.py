"""The settings, customer-override, invoice-override and payment-plan endpoints (issue 14): members read,
owners and accountants change, other organizations' clients, customers and invoices are 404, wrong input is
a 422 problem naming the field, and the OpenAPI document describes every route."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.accounts import tokens
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Activity, AuditEntry, Membership, MembershipClient
from tests.support.clients import cadence_body, customer, invoice, library_item
from tests.support.clock import FakeClock
from web.extensions import SERVICES_KEY

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


class Api:
    """Calls with one member's API token, under /api/v1/orgs/<org>."""

    def __init__(self, client: FlaskClient, secret: str, org_id: int) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.org_id = org_id

    def __call__(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        url = f"/api/v1/orgs/{self.org_id}{path}"
        return self.client.open(url, method=method, json=body, query_string=query or None, headers=self.headers)


@pytest.fixture
def world(app: Flask, store: Store, make_user: Callable[..., Any]) -> dict[str, Any]:
    """Two organizations, each with one London client, a customer, an invoice of 500.00 GBP and a library."""
    app.extensions[SERVICES_KEY].clock = FakeClock(NOW)
    found: dict[str, Any] = {}
    for org_name in ("Alpha Practice", "Beta Practice"):
        owner = make_user(org_name, Role.OWNER)
        viewer = make_user(org_name, Role.VIEWER)
        with store.unit_of_work() as uow:
            connection = uow.connections.add(
                owner.org_id, "fake", f"t-{org_name}", f"{org_name} client", time_zone="Europe/London"
            )
            uow.commit()
            cid = connection.id
        secrets = {}
        for account in (owner, viewer):
            with store.unit_of_work() as uow:
                created = tokens.create(
                    uow,
                    user_id=account.user_id,
                    organization_id=owner.org_id,
                    name="ci",
                    role=account.role,
                    now=NOW,
                    actor="test",
                )
                uow.commit()
            secrets[account.role.value] = created.secret
        found[org_name] = {
            "org_id": owner.org_id,
            "connection_id": cid,
            "owner": secrets["owner"],
            "viewer": secrets["viewer"],
            "cadence": library_item(store, owner.org_id, "cadence", "standard", cadence_body()),
            "policy": library_item(store, owner.org_id, "payment_plan", "monthly", {"grace_days": 5}),
            "customer": customer(store, cid, "c1", "Cust One", emails=["ap@cust.example"]),
            "invoice": invoice(store, cid, "1"),
        }
    return found


def _api(client: FlaskClient, world: dict[str, Any], role: str = "owner", org: str = "Alpha Practice") -> Api:
    return Api(client, world[org][role], world[org]["org_id"])


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    return [entry["field"] for entry in response.get_json()["errors"]]


def test_client_settings_are_read_by_viewers_and_changed_by_owners(client: FlaskClient, world: dict[str, Any]) -> None:
    a = world["Alpha Practice"]
    owner, viewer = _api(client, world), _api(client, world, "viewer")
    path = f"/clients/{a['connection_id']}/settings"
    read = viewer("GET", path)
    assert read.status_code == 200
    body = read.get_json()
    assert body["effective"]["time_zone"] == {"value": "Europe/London", "source": "ledger", "inherited": True}
    assert body["stored"]["cadence_id"] is None
    refused = viewer("PATCH", path, {"locale": "fr_FR"})
    assert refused.status_code == 403
    assert refused.content_type == PROBLEM
    changed = owner(
        "PATCH",
        path,
        {"cadence_id": a["cadence"], "send_window": {"days": [0, 1], "start": "09:00", "end": "17:00"}, "locale": None},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["effective"]["cadence_id"]["value"] == {"id": a["cadence"], "name": "standard"}
    assert changed.get_json()["stored"]["send_window"] == {"days": [0, 1], "start": "09:00", "end": "17:00"}
    assert "cadence_id" not in changed.get_json()["inherited"]


def test_wrong_settings_are_422_problems_naming_the_field(client: FlaskClient, world: dict[str, Any]) -> None:
    a, b = world["Alpha Practice"], world["Beta Practice"]
    owner = _api(client, world)
    path = f"/clients/{a['connection_id']}/settings"
    assert _fields(owner("PATCH", path, {"send_window": {"days": [1], "start": "18:00", "end": "08:00"}})) == [
        "send_window.end"
    ]
    assert _fields(owner("PATCH", path, {"cadence_id": b["cadence"]})) == ["cadence_id"]
    assert _fields(owner("PATCH", path, {"reply_to": "x@y.example\r\nBcc: z@evil.example"})) == ["reply_to"]
    assert _fields(owner("PATCH", path, {"cadence_id": "one"})) == ["cadence_id"]
    assert _fields(owner("PATCH", path, {"colour": "blue"})) == ["colour"]


def test_another_organizations_client_customer_and_invoice_are_404(client: FlaskClient, world: dict[str, Any]) -> None:
    b = world["Beta Practice"]
    owner = _api(client, world)
    theirs = f"/clients/{b['connection_id']}"
    for method, path, body in (
        ("GET", f"{theirs}/settings", None),
        ("PATCH", f"{theirs}/settings", {"locale": "fr_FR"}),
        ("GET", f"{theirs}/customers", None),
        ("PATCH", f"{theirs}/customers/{b['customer']}/overrides", {"excluded": True}),
        ("PUT", f"{theirs}/invoices/{b['invoice']}/override", {"excluded": True}),
        ("GET", f"{theirs}/invoices/{b['invoice']}/payment-plans", None),
    ):
        response = owner(method, path, body)
        assert response.status_code == 404, (method, path)
        assert response.content_type == PROBLEM
    a = world["Alpha Practice"]
    ours = f"/clients/{a['connection_id']}"
    # Our client, their customer / invoice row ids: unknown here as well.
    assert owner("PATCH", f"{ours}/customers/{b['customer']}/overrides", {"excluded": True}).status_code == 404
    assert owner("GET", f"{ours}/invoices/{b['invoice']}/override").status_code == 404


def test_organization_settings(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    a = world["Alpha Practice"]
    owner, viewer = _api(client, world), _api(client, world, "viewer")
    assert viewer("GET", "/settings").get_json()["default_cadence_id"] is None
    assert viewer("PATCH", "/settings", {"default_cadence_id": a["cadence"]}).status_code == 403
    changed = owner("PATCH", "/settings", {"default_cadence_id": a["cadence"]})
    assert changed.status_code == 200
    assert changed.get_json()["default_cadence_name"] == "standard"
    assert _fields(owner("PATCH", "/settings", {"default_cadence_id": world["Beta Practice"]["cadence"]})) == [
        "default_cadence_id"
    ]
    with store.unit_of_work() as uow:
        entry = uow.session.scalars(select(AuditEntry).where(AuditEntry.entity == "organization_settings")).one()
    assert entry.actor.endswith(")")
    assert "API token" in entry.actor


def test_customers_list_pages_and_overrides(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    a = world["Alpha Practice"]
    for i, name in enumerate(("Delta", "Echo", "Foxtrot", "Echo Two")):
        customer(store, a["connection_id"], f"x{i}", name)
    owner, viewer = _api(client, world), _api(client, world, "viewer")
    base = f"/clients/{a['connection_id']}/customers"
    first = viewer("GET", base, limit=2)
    assert first.status_code == 200
    names = [c["name"] for c in first.get_json()["items"]]
    cursor = first.get_json()["next_cursor"]
    while cursor:
        page = viewer("GET", base, limit=2, cursor=cursor).get_json()
        names += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(names) == ["Cust One", "Delta", "Echo", "Echo Two", "Foxtrot"]
    assert len(names) == 5
    found = viewer("GET", base, search="echo").get_json()["items"]
    assert sorted(c["name"] for c in found) == ["Echo", "Echo Two"]
    assert _fields(viewer("GET", base, cursor="tampered")) == ["cursor"]
    path = f"{base}/{a['customer']}/overrides"
    assert viewer("GET", path).get_json()["external_id"] == "c1"
    assert viewer("PATCH", path, {"excluded": True}).status_code == 403
    changed = owner(
        "PATCH",
        path,
        {"dispute": True, "dispute_reason": "damaged goods", "recipients_to": ["boss@cust.example"], "locale": "de-DE"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    overrides = changed.get_json()["overrides"]
    assert (overrides["dispute_reason"], overrides["recipients_to"], overrides["locale"]) == (
        "damaged goods",
        ["boss@cust.example"],
        "de_DE",
    )
    assert _fields(owner("PATCH", path, {"dispute": True, "dispute_reason": ""})) == ["dispute_reason"]
    assert _fields(owner("PATCH", path, {"promise_grace_days": 45, "promise_to_pay_until": "2026-12-01"})) == [
        "promise_grace_days"
    ]


def test_invoice_override_put_get_delete(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    a = world["Alpha Practice"]
    owner, viewer = _api(client, world), _api(client, world, "viewer")
    path = f"/clients/{a['connection_id']}/invoices/{a['invoice']}/override"
    assert viewer("GET", path).get_json()["exists"] is False
    assert viewer("PUT", path, {"excluded": True}).status_code == 403
    put = owner("PUT", path, {"agreed_due_date": "2026-12-20", "dispute": True, "dispute_reason": "no PO number"})
    assert put.status_code == 200, put.get_data(as_text=True)
    body = put.get_json()
    assert (body["exists"], body["agreed_due_date"], body["due_date"], body["invoice_external_id"]) == (
        True,
        "2026-12-20",
        "2026-11-02",
        "1",
    )
    replaced = owner("PUT", path, {"excluded": True}).get_json()
    assert (replaced["agreed_due_date"], replaced["dispute"], replaced["excluded"]) == (None, False, True)
    assert _fields(owner("PUT", path, {"paused_until": "2020-01-01"})) == ["paused_until"]
    assert _fields(owner("PUT", path, {"paused_until": "soon"})) == ["paused_until"]
    assert viewer("DELETE", path).status_code == 403
    assert owner("DELETE", path).get_json()["exists"] is False
    with store.unit_of_work() as uow:
        kinds = list(uow.session.scalars(select(Activity.kind).where(Activity.kind.startswith("invoice."))))
    assert kinds == ["invoice.override_set", "invoice.override_updated", "invoice.override_cleared"]


def test_payment_plans_propose_create_list_cancel(client: FlaskClient, world: dict[str, Any]) -> None:
    a = world["Alpha Practice"]
    owner, viewer = _api(client, world), _api(client, world, "viewer")
    base = f"/clients/{a['connection_id']}/invoices/{a['invoice']}/payment-plans"
    proposal = viewer("GET", f"{base}/proposal", count=3, first="2026-12-01")
    assert proposal.status_code == 200, proposal.get_data(as_text=True)
    items = proposal.get_json()["installments"]
    assert [i["amount"] for i in items] == ["166.66", "166.66", "166.68"]
    assert [i["due_date"] for i in items] == ["2026-12-01", "2027-01-01", "2027-02-01"]
    body = {"policy": "monthly", "installments": [{"due_date": i["due_date"], "amount": i["amount"]} for i in items]}
    assert viewer("POST", base, body).status_code == 403
    short = owner("POST", base, {**body, "installments": body["installments"][:2]})
    assert _fields(short) == ["installments"]
    assert "166.68 GBP short of" in short.get_json()["detail"]
    created = owner("POST", base, body)
    assert created.status_code == 201, created.get_data(as_text=True)
    plan = created.get_json()
    assert (plan["state"], plan["total"], plan["grace_days"], plan["invoice_id"]) == (
        "active",
        "500.00",
        5,
        a["invoice"],
    )
    again = owner("POST", base, body)
    assert again.status_code == 409
    assert again.content_type == PROBLEM
    assert [p["id"] for p in viewer("GET", base).get_json()["items"]] == [plan["id"]]
    assert viewer("POST", f"{base}/{plan['id']}/cancel").status_code == 403
    cancelled = owner("POST", f"{base}/{plan['id']}/cancel")
    assert cancelled.get_json()["state"] == "cancelled"
    assert owner("POST", f"{base}/999999/cancel").status_code == 404
    assert _fields(owner("POST", base, {"policy": "weekly", "installments": body["installments"]})) == ["policy"]
    assert _fields(owner("POST", base, {"policy": "monthly", "installments": [{"due_date": "x", "amount": "1"}]})) == [
        "installments.0.due_date"
    ]


def test_the_openapi_document_describes_every_route(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    client_path = "/api/v1/orgs/{org_id}/clients/{connection_id}"
    invoice_path = f"{client_path}/invoices/{{invoice_id}}"
    expected = {
        f"{client_path}/settings": {"get", "patch"},
        "/api/v1/orgs/{org_id}/settings": {"get", "patch"},
        f"{client_path}/customers": {"get"},
        f"{client_path}/customers/{{customer_id}}/overrides": {"get", "patch"},
        f"{invoice_path}/override": {"get", "put", "delete"},
        f"{invoice_path}/payment-plans": {"get", "post"},
        f"{invoice_path}/payment-plans/proposal": {"get"},
        f"{invoice_path}/payment-plans/{{plan_id}}/cancel": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            assert "200" in paths[path][method]["responses"] or "201" in paths[path][method]["responses"]


def test_a_client_limited_member_reaches_only_their_clients(
    client: FlaskClient, world: dict[str, Any], store: Store, make_user: Callable[..., Any]
) -> None:
    a = world["Alpha Practice"]
    member = make_user("Alpha Practice", Role.ACCOUNTANT)
    with store.unit_of_work() as uow:
        own = uow.connections.add(a["org_id"], "fake", "t-own", "Their own books", time_zone="Europe/London")
        uow.flush()
        membership = uow.session.scalars(
            select(Membership).where(Membership.user_id == member.user_id, Membership.organization_id == a["org_id"])
        ).one()
        membership.client_limited = True
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=own.id))
        created = tokens.create(
            uow,
            user_id=member.user_id,
            organization_id=a["org_id"],
            name="ci",
            role=Role.ACCOUNTANT,
            now=NOW,
            actor="t",
        )
        uow.commit()
        own_id = own.id
    limited = Api(client, created.secret, a["org_id"])
    assert limited("GET", f"/clients/{own_id}/settings").status_code == 200
    assert limited("PATCH", f"/clients/{own_id}/settings", {"from_name": "Own books"}).status_code == 200
    other = f"/clients/{a['connection_id']}"
    for method, path, body in (
        ("GET", f"{other}/settings", None),
        ("PATCH", f"{other}/settings", {"from_name": "x"}),
        ("GET", f"{other}/customers", None),
        ("PATCH", f"{other}/customers/{a['customer']}/overrides", {"excluded": True}),
        ("PUT", f"{other}/invoices/{a['invoice']}/override", {"excluded": True}),
        ("POST", f"{other}/invoices/{a['invoice']}/payment-plans", {"policy": "monthly", "installments": []}),
    ):
        assert limited(method, path, body).status_code == 404, (method, path)
