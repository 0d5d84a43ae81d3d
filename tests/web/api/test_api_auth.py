"""API authentication: the session (with CSRF for writes) or a personal API token (one organization, capped role)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import delete, select

from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import ApiToken, AuditEntry, Membership
from tests.support.clock import FakeClock
from tests.web.api.conftest import PROBLEM, Caller

Make = Callable[..., Any]


def test_a_token_works_only_in_its_own_organization(
    make_user: Make, mint: Make, bearer: Callable[[str], Caller]
) -> None:
    alice = make_user("Alpha Books", Role.OWNER)
    # Alice is also an owner of Beta Bakery, but her Alpha token knows nothing of it.
    beta = make_user("Beta Bakery", Role.OWNER)
    with_beta = make_user("Beta Bakery", Role.VIEWER, email=alice.email.replace("@", "+beta@"))
    caller = bearer(mint(alice))
    assert caller.get(f"/api/v1/orgs/{alice.org_id}").status_code == 200
    for url in (f"/api/v1/orgs/{beta.org_id}", f"/api/v1/orgs/{beta.org_id}/members", "/api/v1/orgs/999999"):
        answer = caller.get(url)
        assert (answer.status_code, answer.content_type) == (404, PROBLEM), url
    other = bearer(mint(with_beta))
    assert other.get(f"/api/v1/orgs/{alice.org_id}").status_code == 404
    assert [org["id"] for org in other.get("/api/v1/me").get_json()["organizations"]] == [beta.org_id]


def test_a_token_acts_with_its_role_capped_by_the_members_current_role(
    make_user: Make, mint: Make, bearer: Callable[[str], Caller], store: Store
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    second = make_user("Alpha Books", Role.OWNER)
    viewer = make_user("Alpha Books", Role.VIEWER)
    members = bearer(mint(owner)).get(f"/api/v1/orgs/{owner.org_id}/members").get_json()["items"]
    viewer_member = next(m["id"] for m in members if m["user_id"] == viewer.user_id)
    url = f"/api/v1/orgs/{owner.org_id}/members/{viewer_member}"

    accountant_token = bearer(mint(owner, Role.ACCOUNTANT))  # an owner's token with less than the owner's role
    refused = accountant_token.patch(url, json={"role": "accountant"})
    assert (refused.status_code, refused.content_type) == (403, PROBLEM)
    owner_token = bearer(mint(second, Role.OWNER))
    assert owner_token.patch(url, json={"role": "accountant"}).get_json()["role"] == "accountant"

    with store.unit_of_work() as uow:  # `second` is demoted to viewer: the owner token now acts as a viewer
        uow.session.scalars(select(Membership).where(Membership.user_id == second.user_id)).one().role = "viewer"
        uow.commit()
    assert owner_token.get(f"/api/v1/orgs/{owner.org_id}").get_json()["role"] == "viewer"
    assert owner_token.patch(url, json={"role": "viewer"}).status_code == 403


def test_revoked_tokens_and_tokens_of_removed_members_stop_working(
    make_user: Make, mint: Make, bearer: Callable[[str], Caller], store: Store
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    leaver = make_user("Alpha Books", Role.ACCOUNTANT)
    first, second = bearer(mint(owner, name="first")), bearer(mint(owner, name="second"))
    listed = first.get(f"/api/v1/orgs/{owner.org_id}/tokens").get_json()["items"]
    second_id = next(t["id"] for t in listed if t["name"] == "second")
    assert first.delete(f"/api/v1/orgs/{owner.org_id}/tokens/{second_id}").status_code == 204  # no CSRF for tokens
    gone = second.get("/api/v1/me")
    assert (gone.status_code, gone.content_type) == (401, PROBLEM)
    assert gone.headers["WWW-Authenticate"].startswith("Bearer")
    assert first.delete(f"/api/v1/orgs/{owner.org_id}/tokens/{second_id}").status_code == 404  # already revoked

    leaving = bearer(mint(leaver))
    assert leaving.get("/api/v1/me").status_code == 200
    with store.unit_of_work() as uow:
        uow.session.execute(delete(Membership).where(Membership.user_id == leaver.user_id))
        uow.commit()
    assert leaving.get("/api/v1/me").status_code == 401
    assert leaving.get(f"/api/v1/orgs/{owner.org_id}").status_code == 401


def test_session_writes_need_the_csrf_token_and_token_writes_do_not(
    make_user: Make, session_caller: Callable[[Any], Caller], bearer: Callable[[str], Caller], store: Store
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    signed_in = session_caller(owner)
    url = f"/api/v1/orgs/{owner.org_id}/tokens"
    without = signed_in.post(url, json={"name": "ci"}, headers={"X-CSRFToken": ""})
    assert (without.status_code, without.content_type) == (400, PROBLEM)
    assert without.get_json()["type"] == "urn:nudge:problem:csrf"
    forged = signed_in.post(url, json={"name": "ci"}, headers={"X-CSRFToken": "forged"})
    assert forged.status_code == 400
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(ApiToken)).all() == []

    created = signed_in.post(url, json={"name": "ci", "role": "viewer"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["secret"].startswith("nudge_")
    assert (body["role"], body["name"], body["last_used_at"]) == ("viewer", "ci", None)
    listed = signed_in.get(url).get_json()["items"]
    assert [t["prefix"] for t in listed] == [body["prefix"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in signed_in.get(url).text

    token = bearer(body["secret"])
    refused = token.post(url, json={"name": "minted by a token"})  # a token cannot mint tokens
    assert (refused.status_code, refused.content_type) == (403, PROBLEM)
    assert token.delete(f"{url}/{body['id']}").status_code == 204  # but may revoke itself, without CSRF
    with store.unit_of_work() as uow:
        changes = [
            (e.entity, e.change, e.actor) for e in uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert changes == [
        ("api_token", "create", owner.email),
        ("api_token", "delete", f"{owner.email} (API token {body['prefix']})"),
    ]


def test_a_token_is_used_even_when_a_session_cookie_comes_along(
    make_user: Make, mint: Make, session_caller: Callable[[Any], Caller]
) -> None:
    owner = make_user("Alpha Books", Role.OWNER)
    viewer = make_user("Beta Bakery", Role.VIEWER)
    signed_in = session_caller(owner)  # a browser signed in as the owner ...
    answer = signed_in.get("/api/v1/me", headers={"Authorization": f"Bearer {mint(viewer)}"})
    assert answer.get_json()["email"] == viewer.email  # ... sending someone else's token acts as that token
    assert (
        signed_in.get(f"/api/v1/orgs/{owner.org_id}", headers={"Authorization": "Bearer nudge_bad"}).status_code == 401
    )
    assert signed_in.get("/api/v1/me").get_json()["email"] == owner.email


def test_last_used_at_is_shown_and_a_viewer_manages_their_own_tokens(
    make_user: Make,
    mint: Make,
    bearer: Callable[[str], Caller],
    session_caller: Callable[[Any], Caller],
    clock: FakeClock,
) -> None:
    viewer = make_user("Alpha Books", Role.VIEWER)
    signed_in = session_caller(viewer)
    url = f"/api/v1/orgs/{viewer.org_id}/tokens"
    too_high = signed_in.post(url, json={"name": "ci", "role": "owner"})
    assert (too_high.status_code, too_high.content_type) == (403, PROBLEM)
    assert too_high.get_json()["errors"] == [
        {"field": "role", "message": "a token cannot have more than your role (viewer)"}
    ]
    secret = signed_in.post(url, json={"name": "ci"}).get_json()["secret"]  # default: the member's role
    assert signed_in.get(url).get_json()["items"][0]["last_used_at"] is None
    assert bearer(secret).get("/api/v1/me").status_code == 200
    [listed] = signed_in.get(url).get_json()["items"]
    assert listed["role"] == "viewer"
    assert listed["last_used_at"] == clock.now().isoformat()


def test_the_membership_check_sees_the_token(app: Flask) -> None:
    from web import access
    from web.api import auth

    hooks = app.before_request_funcs[None]
    assert hooks.index(auth.authenticate) < hooks.index(access.enforce_membership) < hooks.index(auth.after_membership)
