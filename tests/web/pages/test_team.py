"""The team screen in a real browser on the demo's data, at 1440 and 390 px, axe clean: change a member's role,
then create a personal API token (shown once, copied) and revoke it, each checked on the page and in the
database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from connector.accounts import members
from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.storage.tables import ApiToken, Membership
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

ORG = 1


def submit(page: Any, button: Any) -> None:
    """Press a button that posts a form and wait for the page it leads to (stylesheets loaded)."""
    with page.expect_navigation(wait_until="load"):
        button.click()


def add_member(world: World) -> int:
    """The demo has one owner: a second person, an accountant, made through the account services."""
    with world.services.store.unit_of_work() as uow:
        user = create_user(uow, "ann@practice.example", "a long enough password 123", display_name="Ann Lee")
        membership = uow.memberships.add(user.id, ORG, Role.ACCOUNTANT)
        uow.commit()
        return membership.id


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_team_change_a_role_and_create_and_revoke_a_token(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    member_id = add_member(world)
    store = world.services.store
    page = browse(width)
    page.goto(f"/orgs/{ORG}/team")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    ann = page.get_by_test_id(f"member-{member_id}")
    expect(ann).to_contain_text("Ann Lee")
    expect(ann).to_contain_text("Accountant")
    check(page, "team")

    # Change Ann's role.
    ann.get_by_text("Change role or clients").click()
    ann.get_by_label("Role").select_option("viewer")
    submit(page, ann.get_by_role("button", name="Save changes"))
    expect(page.get_by_role("status").filter(has_text="Ann Lee is now a viewer.")).to_be_visible()
    expect(page.get_by_test_id(f"member-{member_id}")).to_contain_text("Viewer")
    with store.unit_of_work() as uow:
        role = uow.session.scalars(select(Membership.role).where(Membership.id == member_id)).one()
        assert role == "viewer"
        user_id = uow.session.scalars(select(Membership.user_id).where(Membership.id == member_id)).one()
        assert members.scope(uow, user_id, ORG) is not None

    # Create a token: shown once, with a Copy button.
    tokens = page.locator("#tokens")
    tokens.get_by_label("Name").fill("Month-end export")
    tokens.get_by_label("Role").select_option("viewer")
    submit(page, tokens.get_by_role("button", name="Create token"))
    created = page.get_by_test_id("new-token")
    expect(created).to_contain_text("Copy it now: it is shown only this once.")
    secret = created.get_by_label("Token", exact=True).input_value()
    assert secret.startswith("nudge_")
    created.get_by_role("button", name="Copy").click()
    expect(created.get_by_role("button", name="Copied")).to_be_visible()
    check(page, "team-token-created")
    with store.unit_of_work() as uow:
        token = uow.session.scalars(select(ApiToken)).one()
        assert (token.name, token.role, token.revoked_at) == ("Month-end export", "viewer", None)
        token_id = token.id
    answer = page.request.get(f"/api/v1/orgs/{ORG}/members", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200

    # Revoke it (the confirmation is accepted by the harness).
    page.goto(f"/orgs/{ORG}/team")
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)  # never shown again
    row = page.get_by_test_id(f"token-{token_id}")
    expect(row).to_contain_text("Month-end export")
    submit(page, row.get_by_role("button", name="Revoke"))
    expect(page.get_by_role("status").filter(has_text="Revoked the token “Month-end export”")).to_be_visible()
    expect(page.get_by_test_id(f"token-{token_id}")).to_have_count(0)
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(ApiToken.revoked_at)).one() is not None
    answer = page.request.get(f"/api/v1/orgs/{ORG}/members", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 401
