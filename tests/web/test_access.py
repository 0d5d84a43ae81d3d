"""The membership check: every organization-scoped route answers 404 to anyone outside the organization.

The routes are read from `app.url_map`, so a route added later is covered without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter
from werkzeug.test import TestResponse

from connector.config import Settings
from connector.domain.model import Role
from tests.web.harness import SAFE, org_rules, rule_url, send
from web import access, create_app
from web.extensions import SERVICES_KEY, csrf


def test_every_org_route_uses_the_int_converter(app: Flask) -> None:
    for rule in org_rules(app):
        assert isinstance(rule._converters["org_id"], IntegerConverter), rule.rule


def test_every_org_route_is_404_for_members_of_another_organization(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    alice = make_user("Alpha Books", Role.OWNER)
    bob = make_user("Beta Bakery", Role.OWNER)
    assert login(client, alice.email, alice.password).status_code == 302
    # A valid token for Alice's session, so a POST is refused by the membership check, not by CSRF.
    token = token_of(client.get(f"/orgs/{alice.org_id}/").text)

    not_found = client.get("/orgs/999999/")
    assert not_found.status_code == 404
    api_not_found = client.get("/api/v1/orgs/999999")
    assert api_not_found.status_code == 404
    assert api_not_found.content_type == "application/problem+json"
    assert any(rule.rule.startswith("/api/v1/") for rule in org_rules(app)), "the API's org routes are not covered"
    failures = []
    for rule in org_rules(app):
        for method in sorted((rule.methods or set()) - SAFE):
            for org_id in (bob.org_id, 999999):
                response = send(client, method, rule_url(app, rule, org_id), token)
                if response.status_code != 404:
                    failures.append(f"{method} {rule.rule} org {org_id}: {response.status_code}")
                elif rule.rule.startswith("/api/"):
                    if _problem(response) != _problem(api_not_found):
                        failures.append(f"{method} {rule.rule} org {org_id}: a 404 that differs from a missing org's")
                elif _without_csrf(response.text) != _without_csrf(not_found.text):
                    failures.append(f"{method} {rule.rule} org {org_id}: a 404 that differs from a missing org's")
    assert failures == []


@pytest.mark.parametrize("huge", [2**31, 10**30])
def test_ids_beyond_any_row_are_404_on_every_route_never_a_database_error(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    huge: int,
) -> None:
    alice = make_user("Alpha Books", Role.OWNER)
    assert login(client, alice.email, alice.password).status_code == 302
    token = token_of(client.get(f"/orgs/{alice.org_id}/").text)
    failures = []
    for rule in org_rules(app):
        for method in sorted(rule.methods or set()):
            for org_id, other_id in ((huge, 1), (alice.org_id, huge)):
                if other_id == huge and not any(
                    isinstance(rule._converters.get(n), IntegerConverter) for n in rule.arguments if n != "org_id"
                ):
                    continue
                response = send(client, method, rule_url(app, rule, org_id, other_id=other_id), token)
                if response.status_code != 404:
                    failures.append(f"{method} {rule.rule} ({org_id}, {other_id}): {response.status_code}")
    assert failures == []


def _problem(response: TestResponse) -> tuple[str, dict[str, Any]]:
    """An API error as (content type, body without `instance`, which is the request's own path)."""
    body = dict(response.get_json(force=True))
    body.pop("instance", None)
    return response.content_type, body


def _without_csrf(page: str) -> str:
    """The page with its CSRF tokens blanked (form fields and htmx's X-CSRFToken header): a token embeds the second
    it was made, so two pages rendered a second apart differ there and only there."""
    page = re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', page)
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', page)


def test_every_org_route_sends_anonymous_visitors_to_sign_in_or_answers_401_under_the_api(
    app: Flask, client: FlaskClient
) -> None:
    failures = []
    for rule in org_rules(app):
        for method in sorted((rule.methods or set()) - SAFE):
            response = send(client, method, rule_url(app, rule, 1), "")
            if rule.rule.startswith("/api/"):  # an API client is told to authenticate, not sent to a form
                if response.status_code != 401 or response.content_type != "application/problem+json":
                    failures.append(f"{method} {rule.rule}: {response.status_code} {response.content_type}")
                elif not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                    failures.append(f"{method} {rule.rule}: 401 without a Bearer challenge")
            elif response.status_code != 302 or not response.location.startswith("/login"):
                failures.append(f"{method} {rule.rule}: {response.status_code} {response.location}")
    assert failures == []


def test_members_get_through_on_every_org_page_without_other_arguments(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
) -> None:
    pages = [rule for rule in org_rules(app) if set(rule.arguments) == {"org_id"} and "GET" in (rule.methods or ())]
    assert pages
    for rule in pages:
        response = client.get(rule_url(app, rule, signed_in.org_id))
        assert response.status_code == 200, rule.rule


def test_membership_check_runs_before_csrf(app: Flask) -> None:
    hooks = app.before_request_funcs[None]
    assert access.enforce_membership in hooks
    csrf_hooks = [i for i, hook in enumerate(hooks) if hook.__module__.startswith("flask_wtf")]
    assert csrf_hooks, "CSRFProtect is not installed"
    assert hooks.index(access.enforce_membership) < min(csrf_hooks)


@pytest.fixture
def fresh_app(app: Flask, settings: Settings) -> Flask:
    """A second app over the same services (same database), to which tests may still add routes."""
    return create_app(settings, app.extensions[SERVICES_KEY])


def test_a_new_org_route_is_guarded_without_opting_in(
    fresh_app: Flask,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    @fresh_app.route("/orgs/<int:org_id>/probe", methods=["GET", "POST"])
    def probe(org_id: int) -> str:
        return f"{g.organization.name}:{g.role.value}"

    member = make_user("Gamma Garden", Role.ACCOUNTANT)
    outsider = make_user("Delta Dairy", Role.OWNER)
    client = fresh_app.test_client()
    assert login(client, outsider.email, outsider.password).status_code == 302
    url = f"/orgs/{member.org_id}/probe"
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404  # no token needed to be told nothing
    token = token_of(client.get(f"/orgs/{outsider.org_id}/").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    assert login(client, member.email, member.password).status_code == 302
    page = client.get(url)
    assert (page.status_code, page.text) == (200, "Gamma Garden:accountant")
    assert client.post(url).status_code == 400  # members still need the CSRF token
    token = token_of(client.get(f"/orgs/{member.org_id}/").text)
    assert client.post(url, data={"csrf_token": token}).status_code == 200


def test_require_role(
    fresh_app: Flask,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    @fresh_app.get("/orgs/<int:org_id>/owners-only")
    @access.require_role(Role.OWNER)
    def owners_only(org_id: int) -> str:
        return "owner page"

    @fresh_app.get("/orgs/<int:org_id>/staff")
    @access.require_role(Role.OWNER, "accountant")
    def staff(org_id: int) -> str:
        return "staff page"

    expected = {
        Role.OWNER: (200, 200),
        Role.ACCOUNTANT: (403, 200),
        Role.VIEWER: (403, 403),
    }
    for role, (owners_status, staff_status) in expected.items():
        account = make_user("Epsilon Electric", role)
        client = fresh_app.test_client()
        assert login(client, account.email, account.password).status_code == 302
        assert client.get(f"/orgs/{account.org_id}/owners-only").status_code == owners_status, role
        assert client.get(f"/orgs/{account.org_id}/staff").status_code == staff_status, role


def test_require_role_refuses_routes_without_an_organization(fresh_app: Flask, signed_in: Any) -> None:
    @fresh_app.get("/not-scoped")
    @access.require_role(Role.OWNER)
    def not_scoped() -> str:
        return "never"

    fresh_app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError, match="not an organization-scoped route"):
        fresh_app.test_client().get("/not-scoped")
    with pytest.raises(ValueError, match="at least one role"):
        access.require_role()


def test_org_id_without_int_converter_is_refused_at_start_up_and_at_run_time(
    fresh_app: Flask,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    @fresh_app.get("/orgs/<org_id>/loose")
    def loose(org_id: str) -> str:
        return "should never render"

    with pytest.raises(RuntimeError, match="/orgs/<org_id>/loose"):
        access.check_rules(fresh_app)
    # Should such a rule slip through anyway, the request-time check still refuses it.
    member = make_user("Zeta Zinc", Role.OWNER)
    client = fresh_app.test_client()
    assert login(client, member.email, member.password).status_code == 302
    assert client.get(f"/orgs/{member.org_id}/loose").status_code == 404


def test_csrf_protect_is_global(app: Flask) -> None:
    assert app.extensions["csrf"] is csrf
    assert app.config["WTF_CSRF_ENABLED"] is True


def test_the_organization_under_another_name_is_refused_at_start_up(fresh_app: Flask) -> None:
    @fresh_app.get("/organizations/<int:organization_id>/settings")
    def renamed(organization_id: int) -> str:
        return "would skip the membership check"

    with pytest.raises(RuntimeError, match="organization_id"):
        access.check_rules(fresh_app)


def test_every_api_org_route_is_404_for_a_token_of_another_organization(
    app: Flask, store: Any, make_user: Callable[..., Any]
) -> None:
    from connector.accounts import tokens
    from tests.support.domain import utc

    alice = make_user("Alpha Books", Role.OWNER)
    bob = make_user("Beta Bakery", Role.OWNER)
    with store.unit_of_work() as uow:
        secret = tokens.create(
            uow,
            user_id=alice.user_id,
            organization_id=alice.org_id,
            name="t",
            role="owner",
            now=utc(2026, 1, 1),
            actor="a",
        ).secret
        uow.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    rules = [rule for rule in org_rules(app) if rule.rule.startswith("/api/v1/")]
    assert rules
    failures = []
    for rule in rules:
        for method in sorted((rule.methods or set()) - SAFE):
            for org_id in (bob.org_id, 999999):
                response = client.open(rule_url(app, rule, org_id), method=method, headers=headers, json={})
                if (response.status_code, response.content_type) != (404, "application/problem+json"):
                    failures.append(f"{method} {rule.rule} org {org_id}: {response.status_code}")
    assert failures == []


def _client_rules(app: Flask) -> list[Any]:
    return [rule for rule in org_rules(app) if "connection_id" in rule.arguments]


def test_a_client_limited_member_gets_404_on_every_route_of_other_clients(
    fresh_app: Flask,
    store: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    from connector.accounts import members
    from tests.support.domain import utc

    app = fresh_app

    @app.get("/orgs/<int:org_id>/connections/<int:connection_id>/probe")
    def probe(org_id: int, connection_id: int) -> str:
        return f"client {connection_id} as {g.role.value}"

    owner = make_user("Alpha Books", Role.OWNER)
    limited = make_user("Alpha Books", Role.ACCOUNTANT)
    other = make_user("Beta Bakery", Role.OWNER)
    with store.unit_of_work() as uow:
        mine, theirs = (uow.connections.add(owner.org_id, "quickbooks", f"realm-{n}", f"Client {n}").id for n in (1, 2))
        foreign = uow.connections.add(other.org_id, "quickbooks", "realm-9", "Elsewhere").id
        membership = next(m.id for m in members.members_of(uow, owner.org_id) if m.user_id == limited.user_id)
        members.update_member(
            uow,
            organization_id=owner.org_id,
            member_id=membership,
            acting_user_id=owner.user_id,
            now=utc(2026, 1, 1),
            actor=owner.email,
            client_limited=True,
            connection_ids=[mine],
        )
        uow.commit()
    rules = _client_rules(app)
    assert rules, "no client-scoped routes found"
    failures = []
    for account, hidden in ((limited, (theirs, foreign, 999999)), (owner, (foreign, 999999))):
        client = app.test_client()
        assert login(client, account.email, account.password).status_code == 302
        seen = client.get(f"/orgs/{owner.org_id}/connections/{mine}/probe")
        if (seen.status_code, seen.text) != (200, f"client {mine} as {account.role.value}"):
            failures.append(f"{account.role}: the probe of a client they may see answered {seen.status_code}")
        for rule in rules:
            for method in sorted((rule.methods or set()) - SAFE):
                for connection_id in hidden:
                    url = rule_url(app, rule, owner.org_id, other_id=connection_id)
                    response = client.open(url, method=method)
                    if response.status_code != 404:
                        failures.append(
                            f"{account.role} {method} {rule.rule} client {connection_id}: {response.status_code}"
                        )
    assert failures == []


def test_a_client_under_another_name_or_outside_an_organization_is_refused_at_start_up(fresh_app: Flask) -> None:
    @fresh_app.get("/orgs/<int:org_id>/clients/<int:client_id>/settings")
    def renamed(org_id: int, client_id: int) -> str:
        return "would skip the client check"

    with pytest.raises(RuntimeError, match="client_id"):
        access.check_rules(fresh_app)


def test_a_client_route_needs_its_organization_and_the_int_converter(settings: Settings, app: Flask) -> None:
    for rule in ("/connections/<int:connection_id>/peek", "/orgs/<int:org_id>/connections/<connection_id>/peek"):
        fresh = create_app(settings, app.extensions[SERVICES_KEY])
        fresh.add_url_rule(rule, "peek", lambda **_: "never")
        with pytest.raises(RuntimeError, match="connection_id"):
            access.check_rules(fresh)
