"""The /api/v1 framework: the generated OpenAPI 3.1 document, the docs page, auth by session or token, problems."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts import tokens
from connector.domain.model import Role
from connector.storage import Store
from tests.support.domain import utc
from web.api import RESOURCES

PROBLEM = "application/problem+json"


def _token(store: Store, user_id: int, org_id: int, role: Role = Role.OWNER) -> str:
    with store.unit_of_work() as uow:
        created = tokens.create(
            uow, user_id=user_id, organization_id=org_id, name="ci", role=role, now=utc(2026, 1, 5), actor="test"
        )
        uow.commit()
    return created.secret


def test_the_openapi_document_is_3_1_and_public(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert {"/api/v1/me", "/api/v1/orgs/{org_id}"} <= set(document["paths"])
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "sessionCookie"}
    default = document["components"]["responses"]["DEFAULT_ERROR"]
    assert list(default["content"]) == [PROBLEM]
    assert RESOURCES[:2] == ("me", "organizations")


def test_the_docs_page_loads_vendored_swagger_ui_under_the_csp(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert 'data-spec-url="/api/v1/openapi.json"' in page.text
    assert "http" not in page.text.replace('meta name="viewport"', "")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    for asset in ("vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css", "api-docs.js"):
        with client.get(f"/static/{asset}") as response:  # static files stream: close them
            assert response.status_code == 200, asset


def test_without_credentials_every_call_is_a_401_problem(client: FlaskClient) -> None:
    for url in ("/api/v1/me", "/api/v1/orgs/1"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.content_type == PROBLEM
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = response.get_json(force=True)
        assert {"type", "title", "status", "detail", "instance"} <= set(body)
        assert (body["status"], body["instance"]) == (401, url)


def test_a_bad_or_malformed_token_is_401(client: FlaskClient) -> None:
    for header in ("Bearer nudge_not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "nudge_x"):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.content_type == PROBLEM


def test_session_and_token_reach_me_and_the_organization(
    client: FlaskClient, app: Flask, store: Store, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    make_user("Beta Bakery", Role.VIEWER, email=owner.email.replace("@", "+b@"))
    assert login(client, owner.email, owner.password).status_code == 302
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert (me.get_json()["email"], me.get_json()["token"]) == (owner.email, None)
    org = client.get(f"/api/v1/orgs/{owner.org_id}")
    assert org.get_json() == {"id": owner.org_id, "name": "Alpha Books", "role": "owner"}

    secret = _token(store, owner.user_id, owner.org_id, Role.VIEWER)
    bearer = app.test_client()
    answer = bearer.get(f"/api/v1/orgs/{owner.org_id}", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    assert answer.get_json()["role"] == "viewer"  # the token's role, not the member's
    me = bearer.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert me["token"] == secret[: tokens.PREFIX_LENGTH]
    assert [o["id"] for o in me["organizations"]] == [owner.org_id]


def test_unknown_api_urls_and_methods_are_problems(client: FlaskClient) -> None:
    missing = client.get("/api/v1/no-such-thing")
    assert (missing.status_code, missing.content_type) == (404, PROBLEM)
    wrong = client.delete("/api/v1/openapi.json")
    assert (wrong.status_code, wrong.content_type) == (405, PROBLEM)
    assert "GET" in wrong.headers["Allow"]
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.content_type.startswith("text/html")  # the HTML side keeps its pages
