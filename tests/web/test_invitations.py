"""Teams through the Flask test client: invitations sent from the team page (email read from the outbox folder)
and accepted by a new password account or an existing account of another organization (one person, many
organizations: the switcher shows both); refused links (tampered, revoked, used, expired) and members; a
client-limited member sees only their client (pages and API); a removed member's old cookie is refused;
ownership transfer with its confirmation; request access between two organizations sharing a ledger."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.config import Settings, settings_for_tests
from connector.connections.connect import MANAGED_ELSEWHERE
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Invitation, Membership
from tests.web.conftest import PASSWORD, Account, csrf_token

pytestmark = pytest.mark.web

LINK = re.compile(r"http://127\.0\.0\.1:5000(/invitations/[A-Za-z0-9_\-]+)")


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def settings(database_url: str, outbox: Path) -> Settings:
    base = settings_for_tests(database_url)
    return replace(base, mail=replace(base.mail, backend="maildir", outbox_path=str(outbox)))


def mails(outbox: Path) -> list[email.message.EmailMessage]:
    """Every email written to the outbox folder, oldest first."""
    found = sorted(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns) if outbox.exists() else []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in found]  # type: ignore[misc]


def body(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, object]) -> TestResponse:
    page = client.get(page_url)
    assert page.status_code == 200, page.text
    return client.post(action, data={"csrf_token": csrf_token(page.text), **data})


class Practice:
    """Acme Practice: an owner signed in on `client`, two clients; and Bright Shop, another organization."""

    def __init__(
        self, store: Store, make_user: Callable[..., Account], client: FlaskClient, login: Callable[..., TestResponse]
    ) -> None:
        self.owner = make_user("Acme Practice", Role.OWNER, email="olive@acme.example", display_name="Olive Owner")
        self.shop_owner = make_user("Bright Shop", Role.OWNER, email="bob@bright.example")
        self.org = self.owner.org_id
        with store.unit_of_work() as uow:
            self.alpha = uow.connections.add(self.org, "fake", "t-a", "Alpha Ltd").id
            self.beta = uow.connections.add(self.org, "fake", "t-b", "Beta Ltd").id
            uow.commit()
        assert login(client, self.owner.email, self.owner.password).status_code == 302
        self.client = client

    @property
    def team(self) -> str:
        return f"/orgs/{self.org}/team"

    def invite(self, address: str, role: str = "viewer", clients: list[int] | None = None) -> TestResponse:
        data: dict[str, object] = {"email": address, "role": role}
        if clients:
            data["client_limited"] = "on"
            data["connection_ids"] = [str(cid) for cid in clients]
        return post_form(self.client, self.team, f"{self.team}/invitations", data)


@pytest.fixture
def practice(
    store: Store, make_user: Callable[..., Account], client: FlaskClient, login: Callable[..., TestResponse]
) -> Practice:
    return Practice(store, make_user, client, login)


def _link(outbox: Path, to: str) -> str:
    [message] = [m for m in mails(outbox) if m["To"] == to][-1:]
    match = LINK.search(body(message))
    assert match, body(message)
    return match.group(1)


def test_a_new_person_accepts_with_a_password_account_limited_to_one_client(
    practice: Practice, app: Flask, outbox: Path, store: Store
) -> None:
    answer = practice.invite("Cleo@Client.example", clients=[practice.alpha])
    assert answer.status_code == 303
    page = practice.client.get(practice.team)
    assert "cleo@client.example" in page.text
    assert "Pending" in page.text
    [message] = mails(outbox)
    assert message["To"] == "cleo@client.example"
    assert "Olive Owner invited you to Acme Practice" in message["Subject"]
    assert "as a viewer" in body(message)
    assert "Alpha Ltd" in body(message)
    assert "Beta Ltd" not in body(message)
    link = _link(outbox, "cleo@client.example")

    invitee = app.test_client()
    shown = invitee.get(link)
    assert shown.status_code == 200
    assert "Olive Owner" in shown.text
    assert "Acme Practice" in shown.text
    assert "a viewer" in shown.text
    assert "/login?next=" in shown.text  # sign in with a password, coming back here
    weak = invitee.post(
        "/invitations/register", data={"csrf_token": csrf_token(shown.text), "password": "short", "confirm": "short"}
    )
    assert weak.status_code == 200
    assert "at least 10 characters" in weak.text
    made = invitee.post(
        "/invitations/register",
        data={"csrf_token": csrf_token(shown.text), "display_name": "Cleo", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert made.status_code == 303
    assert made.headers["Location"].endswith("/invitations/accept")
    confirm = invitee.get("/invitations/accept")
    assert confirm.status_code == 200
    assert "Join Acme Practice" in confirm.text
    assert "the invitation was sent to" not in confirm.text  # same address
    joined = invitee.post("/invitations/accept", data={"csrf_token": csrf_token(confirm.text)})
    assert joined.status_code == 303
    assert joined.headers["Location"].endswith(f"/orgs/{practice.org}/")

    # A client-limited member sees only their client: other clients are 404 on pages and the API.
    assert invitee.get(f"/orgs/{practice.org}/clients/{practice.alpha}/").status_code == 200
    assert invitee.get(f"/orgs/{practice.org}/clients/{practice.beta}/").status_code == 404
    assert invitee.get(f"/api/v1/orgs/{practice.org}/clients/{practice.alpha}/customers").status_code == 200
    assert invitee.get(f"/api/v1/orgs/{practice.org}/clients/{practice.beta}/customers").status_code == 404
    # The link was used up.
    again = app.test_client().get(link)
    assert again.status_code == 410
    assert "already used" in again.text


def test_an_existing_member_of_another_organization_joins_and_switches(
    practice: Practice, app: Flask, outbox: Path, login: Callable[..., TestResponse]
) -> None:
    practice.invite("bob.work@bright.example", role="accountant")
    link = _link(outbox, "bob.work@bright.example")
    bob = app.test_client()
    shown = bob.get(link)
    assert shown.status_code == 200
    signed_in = login(bob, practice.shop_owner.email, PASSWORD, next=link)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == link
    back = bob.get(link)  # signing in cleared the session: the page keeps the token again
    assert back.status_code == 302
    assert back.headers["Location"].endswith("/invitations/accept")
    confirm = bob.get("/invitations/accept")
    assert "You are signed in as <strong>bob@bright.example</strong>; the invitation was sent to" in confirm.text
    joined = bob.post("/invitations/accept", data={"csrf_token": csrf_token(confirm.text)})
    assert joined.status_code == 303
    page = bob.get(f"/orgs/{practice.org}/team")
    assert page.status_code == 200
    switcher = page.text[page.text.index("org-switcher") :]
    assert "Acme Practice" in switcher
    assert "Bright Shop" in switcher
    assert bob.get(f"/orgs/{practice.shop_owner.org_id}/team").status_code == 200


def test_refused_links_and_members(practice: Practice, app: Flask, outbox: Path, store: Store) -> None:
    already = practice.invite(practice.owner.email)
    assert already.status_code == 200
    assert "already a member" in already.text
    assert practice.invite("not an email").status_code == 200
    practice.invite("rae@example.com")
    practice.invite("exp@example.com")
    revoked_link, expired_link = _link(outbox, "rae@example.com"), _link(outbox, "exp@example.com")
    visitor = app.test_client()
    tampered = visitor.get(revoked_link[:-2] + "zz")
    assert tampered.status_code == 404
    assert "not valid" in tampered.text
    assert visitor.get("/invitations/" + "x" * 5000).status_code == 404
    with store.unit_of_work() as uow:
        rae = uow.session.scalars(select(Invitation).where(Invitation.email == "rae@example.com")).one().id
        expiring = uow.session.scalars(select(Invitation).where(Invitation.email == "exp@example.com")).one()
        expiring.expires_at = expiring.created_at - timedelta(days=1)
        uow.commit()
    revoke = post_form(practice.client, practice.team, f"{practice.team}/invitations/{rae}/revoke", {})
    assert revoke.status_code == 303
    refused = visitor.get(revoked_link)
    assert refused.status_code == 410
    assert "withdrawn" in refused.text
    expired = visitor.get(expired_link)
    assert expired.status_code == 410
    assert "expired" in expired.text
    # Nothing pending: accept says so instead of failing.
    assert app.test_client().get("/invitations/accept").status_code == 404
    # Resending an expired invitation sends a new link that works.
    with store.unit_of_work() as uow:
        exp = uow.session.scalars(select(Invitation).where(Invitation.email == "exp@example.com")).one().id
    resent = post_form(practice.client, practice.team, f"{practice.team}/invitations/{exp}/resend", {})
    assert resent.status_code == 303
    assert app.test_client().get(_link(outbox, "exp@example.com")).status_code == 200


def test_viewers_cannot_invite_and_accountants_only_to_their_clients(
    practice: Practice, app: Flask, make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> None:
    viewer = make_user("Acme Practice", Role.VIEWER, email="vic@acme.example")
    accountant = make_user("Acme Practice", Role.ACCOUNTANT, email="ann@acme.example")
    vic = app.test_client()
    login(vic, viewer.email, PASSWORD)
    page = vic.get(practice.team)
    assert "Invite someone" not in page.text
    assert (
        vic.post(
            f"{practice.team}/invitations", data={"csrf_token": csrf_token(page.text), "email": "x@example.com"}
        ).status_code
        == 403
    )
    ann = app.test_client()
    login(ann, accountant.email, PASSWORD)
    unlimited = post_form(
        ann, practice.team, f"{practice.team}/invitations", {"email": "x@example.com", "role": "viewer"}
    )
    assert unlimited.status_code == 200
    assert "some clients only" in unlimited.text
    limited = post_form(
        ann,
        practice.team,
        f"{practice.team}/invitations",
        {"email": "x@example.com", "role": "viewer", "client_limited": "on", "connection_ids": [str(practice.alpha)]},
    )
    assert limited.status_code == 303


def test_a_removed_member_s_old_cookie_is_refused(
    practice: Practice, app: Flask, make_user: Callable[..., Account], login: Callable[..., TestResponse], store: Store
) -> None:
    viewer = make_user("Acme Practice", Role.VIEWER, email="vic@acme.example")
    make_user("Other Org", Role.OWNER, email="vic2@acme.example")
    vic = app.test_client()
    login(vic, viewer.email, PASSWORD)
    assert vic.get(practice.team).status_code == 200
    with store.unit_of_work() as uow:
        member_id = uow.session.scalars(select(Membership.id).where(Membership.user_id == viewer.user_id)).one()
    removed = post_form(practice.client, practice.team, f"{practice.team}/members/{member_id}/remove", {})
    assert removed.status_code == 303
    after = vic.get(practice.team)
    assert after.status_code == 302
    assert "/login" in after.headers["Location"]
    assert vic.get("/").status_code == 302  # signed out everywhere, not only in this organization


def test_ownership_transfer_asks_first_then_hands_over(
    practice: Practice, make_user: Callable[..., Account], store: Store
) -> None:
    accountant = make_user("Acme Practice", Role.ACCOUNTANT, email="ann@acme.example")
    with store.unit_of_work() as uow:
        member_id = uow.session.scalars(select(Membership.id).where(Membership.user_id == accountant.user_id)).one()
    url = f"{practice.team}/members/{member_id}/transfer"
    confirm = practice.client.get(url)
    assert confirm.status_code == 200
    assert "Make ann@acme.example an owner" in confirm.text
    done = practice.client.post(url, data={"csrf_token": csrf_token(confirm.text), "keep_owner": "no"})
    assert done.status_code == 303
    with store.unit_of_work() as uow:
        assert uow.memberships.role(accountant.user_id, practice.org) is Role.OWNER
        assert uow.memberships.role(practice.owner.user_id, practice.org) is Role.ACCOUNTANT
    # No longer an owner: the transfer page is refused.
    assert practice.client.get(url).status_code == 403


def test_request_access_is_emailed_approved_and_lands_a_limited_membership(
    practice: Practice, app: Flask, outbox: Path, store: Store, login: Callable[..., TestResponse]
) -> None:
    shop = practice.shop_owner
    with store.unit_of_work() as uow:
        uow.connections.add(practice.org, "fake", "shared", "Bright Shop Ltd")
        chased = uow.connections.by_tenant(practice.org, "fake", "shared")
        assert chased is not None
        chased_id = chased.id
        elsewhere = uow.connections.add(shop.org_id, "fake", "shared", "Bright Shop Ltd", chasing=MANAGED_ELSEWHERE).id
        uow.commit()
    bob = app.test_client()
    login(bob, shop.email, PASSWORD)
    team = f"/orgs/{shop.org_id}/team"
    page = bob.get(team)
    assert "managed by Acme Practice" in page.text
    asked = post_form(bob, team, f"{team}/clients/{elsewhere}/request-access", {})
    assert asked.status_code == 303
    again = post_form(bob, team, f"{team}/clients/{elsewhere}/request-access", {})
    assert again.status_code == 303
    to_owner = [m for m in mails(outbox) if m["To"] == practice.owner.email]
    assert len(to_owner) == 1
    assert "bob@bright.example" in body(to_owner[0])
    owner_page = practice.client.get(practice.team)
    request_id = int(re.search(r'data-testid="access-request-(\d+)"', owner_page.text).group(1))  # type: ignore[union-attr]
    approved = practice.client.post(
        f"{practice.team}/access-requests/{request_id}/approve", data={"csrf_token": csrf_token(owner_page.text)}
    )
    assert approved.status_code == 303
    [outcome] = [m for m in mails(outbox) if m["To"] == shop.email]
    assert "approved" in outcome["Subject"]
    assert bob.get(f"/orgs/{practice.org}/clients/{chased_id}/").status_code == 200
    assert bob.get(f"/orgs/{practice.org}/clients/{practice.alpha}/").status_code == 404
    # Not an owner there: deciding is refused.
    assert bob.post(
        f"/orgs/{practice.org}/team/access-requests/{request_id}/decline",
        data={"csrf_token": csrf_token(owner_page.text)},
    ).status_code in (400, 403)
