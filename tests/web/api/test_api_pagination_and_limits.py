"""List endpoints page with an opaque, tamper-evident cursor; every caller has a rate limit (429 problem)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import Flask

from connector.config import ApiSettings
from connector.domain.model import Role
from connector.storage import Store
from tests.web.api.conftest import PROBLEM, Caller
from web import create_app
from web.extensions import SERVICES_KEY

Make = Callable[..., Any]


def _walk(caller: Caller, url: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = caller.get(f"{url}?{query}").get_json()
        pages.append([item["name"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_a_cursor_walks_the_list_once(make_user: Make, mint: Make, bearer: Callable[[str], Caller]) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    for number in range(5):
        mint(owner, name=f"t{number}")
    caller = bearer(mint(owner, name="t5"))
    url = f"/api/v1/orgs/{owner.org_id}/tokens"
    assert _walk(caller, url, 2) == [["t0", "t1"], ["t2", "t3"], ["t4", "t5"]]
    assert _walk(caller, url, 6) == [["t0", "t1", "t2", "t3", "t4", "t5"]]
    assert _walk(caller, url, 200) == [["t0", "t1", "t2", "t3", "t4", "t5"]]
    assert len(caller.get(url).get_json()["items"]) == 6  # default limit 50


def _tampered(cursor: str) -> list[str]:
    """Variants of a cursor a client might forge: another position with the same signature, flipped characters."""
    payload, _, signature = cursor.rpartition(".")
    forged_payload = base64.urlsafe_b64encode(b'{"s":"x","p":0}').decode().rstrip("=")
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    return [f"{forged_payload}.{signature}", flipped, payload, "not-a-cursor", "." * 10, "%00"]


def test_a_tampered_or_foreign_cursor_is_a_422_naming_cursor(
    make_user: Make,
    mint: Make,
    bearer: Callable[[str], Caller],
    session_caller: Callable[[Any], Caller],
    store: Store,
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    for number in range(3):
        mint(owner, name=f"t{number}")
    caller = bearer(mint(owner))
    url = f"/api/v1/orgs/{owner.org_id}/tokens"
    cursor = caller.get(f"{url}?limit=1").get_json()["next_cursor"]
    assert cursor
    for forged in _tampered(cursor):
        answer = (
            caller.get(url, query_string={"cursor": forged})
            if False
            else caller.client.get(
                url, query_string={"cursor": forged}, headers={"Authorization": f"Bearer {caller.secret}"}
            )
        )
        assert (answer.status_code, answer.content_type) == (422, PROBLEM), forged
        assert [e["field"] for e in answer.get_json()["errors"]] == ["cursor"]
    # A genuine cursor of another list (members) or of another organization is refused too.
    members = caller.get(f"/api/v1/orgs/{owner.org_id}/members?limit=1&cursor={cursor}")
    assert members.status_code == 422
    # The same member in two organizations: a cursor of one organization's list does not page the other's.
    beta = make_user("Beta Bakery", Role.OWNER)
    make_user("Alpha Books", Role.VIEWER)
    with store.unit_of_work() as uow:
        uow.memberships.add(owner.user_id, beta.org_id, Role.ACCOUNTANT)
        uow.commit()
    browser = session_caller(owner)
    alpha_cursor = browser.get(f"/api/v1/orgs/{owner.org_id}/members?limit=1").get_json()["next_cursor"]
    assert alpha_cursor
    assert browser.get(f"/api/v1/orgs/{owner.org_id}/members?limit=1&cursor={alpha_cursor}").status_code == 200
    foreign = browser.get(f"/api/v1/orgs/{beta.org_id}/members?limit=1&cursor={alpha_cursor}")
    assert (foreign.status_code, foreign.get_json()["errors"][0]["field"]) == (422, "cursor")


def test_each_caller_has_its_rate_limit(app: Flask, make_user: Make, mint: Make, login: Callable[..., Any]) -> None:
    services = app.extensions[SERVICES_KEY]
    limited = create_app(replace(services.settings, api=ApiSettings(rate_limit="3 per minute")), services)
    owner = make_user("Alpha Books", Role.OWNER)
    first, second = mint(owner), mint(owner)
    client = limited.test_client()

    def call(secret: str) -> Any:
        return client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})

    answers = [call(first) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"3"}
    over = call(first)
    assert (over.status_code, over.content_type) == (429, PROBLEM)
    assert int(over.headers["Retry-After"]) >= 1
    assert over.headers["RateLimit-Remaining"] == "0"
    assert over.get_json()["status"] == 429
    assert call(second).status_code == 200  # another token has its own allowance

    browser = limited.test_client()  # session calls count per user
    assert login(browser, owner.email, owner.password).status_code == 302
    assert [browser.get("/api/v1/me").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert browser.get("/api/v1/openapi.json").status_code == 200  # the public document is not counted
