"""The team screen through the Flask test client: members and roles (owners change roles and client limits and
remove members; the last owner stays), personal API tokens (created with a role no higher than yours, shown
once, listed with their last use, revoked), and the error paths: viewers and accountants cannot change members
(403), another organization gets 404, hostile input is refused in words."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.accounts import members
from connector.accounts.tokens import authenticate
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import ApiToken, Membership, MembershipClient
from tests.support.statements import counting_statements
from tests.web.conftest import Account, csrf_token

pytestmark = pytest.mark.web


class Team:
    """An organization with an owner, an accountant, a viewer and two clients; and another organization."""

    def __init__(self, store: Store, make_user: Callable[..., Account]) -> None:
        self.owner = make_user("Acme Practice", Role.OWNER, email="owner@acme.example", display_name="Olive Owner")
        self.accountant = make_user("Acme Practice", Role.ACCOUNTANT, email="ann@acme.example")
        self.viewer = make_user("Acme Practice", Role.VIEWER, email="vic@acme.example")
        self.stranger = make_user("Other Practice", Role.OWNER, email="owner@other.example")
        self.org = self.owner.org_id
        with store.unit_of_work() as uow:
            self.alpha = uow.connections.add(self.org, "fake", "t-a", "Alpha").id
            self.beta = uow.connections.add(self.org, "fake", "t-b", "Beta <b>").id
            self.ids = {
                account.email: uow.session.scalars(
                    select(Membership.id).where(Membership.user_id == account.user_id)
                ).one()
                for account in (self.owner, self.accountant, self.viewer)
            }
            uow.commit()

    @property
    def url(self) -> str:
        return f"/orgs/{self.org}/team"

    def member_url(self, account: Account, action: str = "") -> str:
        return f"{self.url}/members/{self.ids[account.email]}{action}"


@pytest.fixture
def team(store: Store, make_user: Callable[..., Account]) -> Team:
    return Team(store, make_user)


@pytest.fixture
def as_user(client: FlaskClient, login: Callable[..., TestResponse]) -> Callable[[Account], FlaskClient]:
    def sign_in(account: Account) -> FlaskClient:
        assert login(client, account.email, account.password).status_code == 302
        return client

    return sign_in


def _post(browser: FlaskClient, url: str, page_url: str, /, **data: object) -> TestResponse:
    return browser.post(url, data={"csrf_token": csrf_token(browser.get(page_url).text), **data})


def _flashes(browser: FlaskClient, url: str) -> list[str]:
    text = browser.get(url).text
    return [" ".join(html.unescape(m).split()) for m in re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', text, re.S)]


def _role(store: Store, account: Account) -> str | None:
    with store.unit_of_work() as uow:
        scope = members.scope(uow, account.user_id, account.org_id)
        return scope.role.value if scope is not None else None


def test_the_owner_sees_members_and_changes_a_role(
    team: Team, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(team.owner)
    page = browser.get(team.url)
    assert page.status_code == 200
    for email in ("ann@acme.example", "vic@acme.example"):
        assert email in page.text
    assert "Olive Owner" in page.text
    assert "Change role or clients" in page.text
    answer = _post(browser, team.member_url(team.accountant), team.url, role="viewer")
    assert answer.status_code == 303
    assert _role(store, team.accountant) == "viewer"
    assert _flashes(browser, team.url) == ["ann@acme.example is now a viewer."]
    _post(browser, team.member_url(team.accountant), team.url, role="viewer")
    assert _flashes(browser, team.url) == ["Nothing changed for ann@acme.example."]


def test_limit_a_member_to_some_clients(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(team.owner)
    _post(
        browser,
        team.member_url(team.accountant),
        team.url,
        role="accountant",
        client_limited="on",
        connection_ids=[str(team.beta)],
    )
    assert _flashes(browser, team.url) == ["ann@acme.example sees only 1 client."]
    with store.unit_of_work() as uow:
        scope = members.scope(uow, team.accountant.user_id, team.org)
        assert scope is not None
        assert scope.visible_connection_ids() == frozenset({team.beta})
    page = browser.get(team.url).text
    assert "Sees only Beta &lt;b&gt;" in page
    _post(browser, team.member_url(team.accountant), team.url, role="accountant", client_limited="on")
    assert _flashes(browser, team.url) == ["Tick the clients this member may see, or untick “Only some clients”."]
    _post(browser, team.member_url(team.accountant), team.url, role="owner", client_limited="on", connection_ids="1")
    assert _flashes(browser, team.url) == ["An owner sees every client: change the role before limiting the member."]
    _post(
        browser, team.member_url(team.accountant), team.url, role="accountant", client_limited="on", connection_ids="x"
    )
    assert _flashes(browser, team.url) == ["Those clients are not this organization's."]
    _post(
        browser,
        team.member_url(team.accountant),
        team.url,
        role="accountant",
        client_limited="on",
        connection_ids="424242",
    )
    assert _flashes(browser, team.url) == ["No such client in this organization: 424242."]
    _post(browser, team.member_url(team.accountant), team.url, role="accountant")
    assert _flashes(browser, team.url) == ["ann@acme.example sees every client."]


def test_the_last_owner_stays(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(team.owner)
    page = browser.get(team.url).text
    assert "The only owner stays an owner" in page
    _post(browser, team.member_url(team.owner), team.url, role="viewer")
    assert _flashes(browser, team.url) == ["The organization needs an owner: make another member owner first."]
    assert _role(store, team.owner) == "owner"
    _post(browser, team.member_url(team.owner, "/remove"), team.url)
    assert _flashes(browser, team.url) == ["The organization needs an owner: make another member owner first."]
    _post(browser, team.member_url(team.accountant), team.url, role="superuser")
    assert _flashes(browser, team.url) == ["Role must be one of owner, accountant, viewer."]


def test_remove_a_member(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(team.owner)
    page = browser.get(team.url).text
    assert 'data-confirm="Remove vic@acme.example from Acme Practice?' in page
    answer = _post(browser, team.member_url(team.viewer, "/remove"), team.url)
    assert answer.status_code == 303
    assert _role(store, team.viewer) is None
    assert _flashes(browser, team.url) == [
        "Removed vic@acme.example: they no longer see Acme Practice, they were signed out everywhere, "
        "and their API tokens stopped working."
    ]
    token = csrf_token(browser.get(team.url).text)
    assert browser.post(f"{team.url}/members/424242/remove", data={"csrf_token": token}).status_code == 404


def test_only_owners_change_members(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    for account in (team.accountant, team.viewer):
        browser = as_user(account)
        page = browser.get(team.url)
        assert page.status_code == 200
        assert "Change role or clients" not in page.text
        assert ">Remove<" not in page.text
        token = csrf_token(page.text)
        assert (
            browser.post(team.member_url(team.owner), data={"csrf_token": token, "role": "viewer"}).status_code == 403
        )
        assert browser.post(team.member_url(team.owner, "/remove"), data={"csrf_token": token}).status_code == 403
        browser.post("/logout", data={"csrf_token": token})
    assert _role(store, team.owner) == "owner"


def test_another_organization_gets_404(team: Team, as_user: Callable[[Account], FlaskClient]) -> None:
    browser = as_user(team.stranger)
    other = f"/orgs/{team.stranger.org_id}/team"
    token = csrf_token(browser.get(other).text)
    assert browser.get(team.url).status_code == 404
    assert (
        browser.post(team.member_url(team.accountant), data={"csrf_token": token, "role": "owner"}).status_code == 404
    )
    # Their own team's URL with our member's id: not theirs either.
    answer = browser.post(
        f"{other}/members/{team.ids[team.accountant.email]}", data={"csrf_token": token, "role": "owner"}
    )
    assert answer.status_code == 404
    answer = browser.post(f"{other}/members/{team.ids[team.accountant.email]}/remove", data={"csrf_token": token})
    assert answer.status_code == 404


def test_create_list_and_revoke_a_token(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(team.accountant)
    page = browser.get(team.url).text
    assert "You have no tokens here yet." in page
    assert '<option value="owner"' not in page.split('id="token-role"')[1]  # no more than an accountant
    answer = _post(browser, f"{team.url}/tokens", team.url, name="Month-end <export>", role="viewer")
    assert answer.status_code == 200
    secret = re.search(r'id="new-token-secret" value="([^"]+)"', answer.text)
    assert secret is not None
    assert "it is shown only this once" in answer.text
    assert "Month-end &lt;export&gt;" in answer.text
    with store.unit_of_work() as uow:
        identity = authenticate(uow, secret.group(1), datetime.now(UTC))
        assert identity is not None
        assert identity.role is Role.VIEWER
        assert identity.organization_id == team.org
        uow.commit()
    again = browser.get(team.url).text
    assert secret.group(1) not in again  # shown once
    assert "Month-end &lt;export&gt;" in again
    with store.unit_of_work() as uow:
        token_id = uow.session.scalars(select(ApiToken.id)).one()
    answer = _post(browser, f"{team.url}/tokens/{token_id}/revoke", team.url)
    assert answer.status_code == 303
    assert _flashes(browser, team.url)[0].startswith("Revoked the token “Month-end <export>”")
    with store.unit_of_work() as uow:
        assert authenticate(uow, secret.group(1), datetime.now(UTC)) is None
    # Revoking again, or someone else's token, is 404.
    assert _post(browser, f"{team.url}/tokens/{token_id}/revoke", team.url).status_code == 404


def test_token_input_is_checked(team: Team, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(team.viewer)
    answer = _post(browser, f"{team.url}/tokens", team.url, name="cli", role="owner")
    assert answer.status_code == 200
    assert "A token cannot have more than your role (viewer)." in answer.text
    answer = _post(browser, f"{team.url}/tokens", team.url, name="   ", role="viewer")
    assert "Give the token a name of 1 to 100 printable characters." in answer.text
    answer = _post(browser, f"{team.url}/tokens", team.url, name="x\x00y", role="viewer")
    assert "Give the token a name" in answer.text
    answer = _post(browser, f"{team.url}/tokens", team.url, name="n" * 500, role="viewer")
    assert "Give the token a name" in answer.text
    answer = _post(browser, f"{team.url}/tokens", team.url, name="cli", role="god")
    assert "Role must be one of owner, accountant, viewer." in answer.text
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(ApiToken.id)).first() is None
    # A viewer may make a viewer token.
    answer = _post(browser, f"{team.url}/tokens", team.url, name="read-only export", role="viewer")
    assert 'id="new-token-secret"' in answer.text


def test_someone_elses_token_cannot_be_revoked(
    team: Team, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(team.accountant)
    _post(browser, f"{team.url}/tokens", team.url, name="ann's", role="accountant")
    with store.unit_of_work() as uow:
        token_id = uow.session.scalars(select(ApiToken.id)).one()
    browser.post("/logout", data={"csrf_token": csrf_token(browser.get(team.url).text)})
    browser = as_user(team.owner)
    assert "ann&#39;s" not in browser.get(team.url).text  # tokens are personal
    assert _post(browser, f"{team.url}/tokens/{token_id}/revoke", team.url).status_code == 404
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(ApiToken.revoked_at)).one() is None


def test_a_client_limited_member_sees_only_their_clients_names(
    team: Team, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    with store.unit_of_work() as uow:
        for email, ids in (("ann@acme.example", [team.alpha]), ("vic@acme.example", [team.beta])):
            membership = uow.session.get(Membership, team.ids[email])
            assert membership is not None
            membership.client_limited = True
            for cid in ids:
                uow.session.add(MembershipClient(membership_id=membership.id, connection_id=cid))
        uow.commit()
    browser = as_user(team.viewer)
    page = browser.get(team.url).text
    assert "Sees only Beta &lt;b&gt;" in page
    assert "Sees only clients you do not see" in page  # ann's Alpha is not named to vic
    assert "Alpha" not in page


def test_the_page_reads_in_a_fixed_number_of_statements(
    team: Team, as_user: Callable[[Account], FlaskClient], store: Store, make_user: Callable[..., Account]
) -> None:
    browser = as_user(team.owner)
    browser.get(team.url)
    with counting_statements(store.engine) as few:
        browser.get(team.url)
    for index in range(12):
        person = make_user("Acme Practice", Role.ACCOUNTANT, email=f"extra{index}@acme.example")
        with store.unit_of_work() as uow:
            membership = uow.session.scalars(select(Membership).where(Membership.user_id == person.user_id)).one()
            membership.client_limited = True
            uow.session.add(MembershipClient(membership_id=membership.id, connection_id=team.alpha))
            uow.commit()
    with counting_statements(store.engine) as many:
        page = browser.get(team.url)
    assert "extra11@acme.example" in page.text
    assert many.count == few.count, many.report()
