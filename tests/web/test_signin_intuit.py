""" "Sign in with Intuit" for QuickBooks through the web app against the QuickBooks emulator (OpenID Connect):
the app-store launch, one consent creating user + organization + connection, landing on the same organization
again, explicit linking of a verified email, invitations' sign-in, and the re-launch after a disconnect."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from connector.config import Settings, settings_for_tests
from connector.domain.model import ConnectionStatus, Role
from connector.ports import ProviderSettings
from connector.storage import Store
from connector.storage.tables import Connection, Organization, User

Consent = Callable[..., dict[str, str]]


@pytest.fixture
def settings(database_url: str, qbo_settings: ProviderSettings) -> Settings:
    return settings_for_tests(database_url, providers={"quickbooks": qbo_settings})


@pytest.fixture
def intuit_user(qbo_emulator: Any) -> Any:
    """A fresh Intuit user at the (shared) QuickBooks emulator, with a verified email."""
    return qbo_emulator.emulator.oauth.add_user(f"iu-{uuid.uuid4().hex[:8]}@example.com", "Ida", "Intuit")


@pytest.fixture
def realm(qbo_emulator: Any) -> str:
    return str(qbo_emulator.store.add_company(f"Pohutukawa Plumbing {uuid.uuid4().hex[:4]}").realm)


def redirect_target(response: TestResponse) -> str:
    assert response.status_code == 200, response.text
    link = re.search(r'<a class="authorize" href="([^"]+)"', response.text)
    assert link
    return html.unescape(link.group(1))


def launch_signed_out(client: FlaskClient, token_of: Callable[[str], str]) -> str:
    """/launch/quickbooks signed out: the "Sign in with Intuit" page, its button pressed; the authorize URL."""
    response = client.get("/launch/quickbooks")
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Sign in with Intuit</button>" in page.text
    return redirect_target(client.post("/signup/quickbooks", data={"csrf_token": token_of(page.text)}))


def sign_in_with_intuit(client: FlaskClient, token_of: Callable[[str], str]) -> str:
    page = client.get("/login")
    assert 'action="/signin/quickbooks"' in page.text
    assert "Sign in with Intuit</button>" in page.text
    return redirect_target(client.post("/signin/quickbooks", data={"csrf_token": token_of(page.text)}))


def counts(store: Store) -> tuple[int, int, int]:
    with store.unit_of_work() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(t)) for t in (User, Organization, Connection)
        )


def signed_in_user(client: FlaskClient) -> str | None:
    with client.session_transaction() as session:
        user_id = session.get("_user_id")  # "<user id>:<session version>"
    return str(user_id).partition(":")[0] if user_id else None


def sign_out(client: FlaskClient, token_of: Callable[[str], str]) -> None:
    page = client.get("/", follow_redirects=True)
    client.post("/logout", data={"csrf_token": token_of(page.text)})
    assert signed_in_user(client) is None


def test_launch_signs_up_with_one_consent_then_lands_on_the_same_organization(
    client: FlaskClient,
    store: Store,
    token_of: Callable[[str], str],
    consent: Consent,
    intuit_user: Any,
    realm: str,
    qbo_emulator: Any,
) -> None:
    url = launch_signed_out(client, token_of)
    assert "redirect_uri=http%3A%2F%2Flocalhost%2Fsignup%2Fquickbooks%2Fcallback" in url
    assert "nonce=" in url
    assert "code_challenge_method=S256" in url
    assert {"openid", "email", "profile", "com.intuit.quickbooks.accounting"} <= set(
        re.search(r"scope=([^&]+)", url).group(1).replace("%20", "+").replace("%2B", "+").split("+")  # type: ignore[union-attr]
    )
    response = client.get(
        "/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", intuit_user.sub)])
    )
    assert response.status_code == 303, response.text
    dashboard = client.get("/", follow_redirects=True)
    name = qbo_emulator.store.companies[realm].name
    assert "Welcome to Nudge" in dashboard.text
    assert name in dashboard.text
    with store.unit_of_work() as uow:
        user = uow.users.by_identity("quickbooks", intuit_user.sub)
        assert user is not None
        assert user.email == intuit_user.email
        ((org, role),) = uow.organizations.for_user(user.id)
        assert role is Role.OWNER
        (connection,) = uow.connections.for_organization(org.id)
        assert (connection.tenant_id, connection.status) == (realm, ConnectionStatus.ACTIVE.value)
        org_id, user_id = org.id, user.id
    assert signed_in_user(client) == str(user_id)
    assert counts(store) == (1, 1, 1)

    # The same person launches again from the app store: signed in on the same organization, nothing created,
    # and the connection keeps working (the repeated consent's grant is not revoked while Nudge uses the company).
    sign_out(client, token_of)
    url = launch_signed_out(client, token_of)
    response = client.get(
        "/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", intuit_user.sub)])
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/orgs/{org_id}/"
    assert signed_in_user(client) == str(user_id)
    assert counts(store) == (1, 1, 1)
    with store.unit_of_work() as uow:
        assert uow.connections.for_organization(org_id)[0].status == ConnectionStatus.ACTIVE.value

    # Sign in with Intuit from the login page: identity scopes only, no company picked.
    sign_out(client, token_of)
    url = sign_in_with_intuit(client, token_of)
    assert "com.intuit.quickbooks.accounting" not in url
    params = consent(url, [], extra=[("user", intuit_user.sub)])
    assert "realmId" not in params
    assert client.get("/signup/quickbooks/callback", query_string=params).status_code == 303
    assert signed_in_user(client) == str(user_id)
    assert counts(store) == (1, 1, 1)


def test_relaunch_after_a_disconnect_offers_reconnect(
    client: FlaskClient, store: Store, token_of: Callable[[str], str], consent: Consent, intuit_user: Any, realm: str
) -> None:
    url = launch_signed_out(client, token_of)
    client.get("/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", intuit_user.sub)]))
    with store.unit_of_work() as uow:
        (connection,) = uow.session.scalars(select(Connection)).all()
        org_id, connection_id = connection.organization_id, connection.id
    confirm = client.get(f"/orgs/{org_id}/connections/{connection_id}/disconnect")
    assert confirm.status_code == 200
    done = client.post(
        f"/orgs/{org_id}/connections/{connection_id}/disconnect", data={"csrf_token": token_of(confirm.text)}
    )
    assert done.status_code == 303
    relaunch = client.get(f"/launch/quickbooks?realmId={realm}")
    assert relaunch.status_code == 302
    assert relaunch.headers["Location"] == f"/orgs/{org_id}/"
    page = client.get(relaunch.headers["Location"], follow_redirects=True)
    assert "is disconnected: use its Reconnect button" in html.unescape(page.text)
    assert "Reconnect</button>" in page.text
    # Signed out, the same Intuit user launching again lands on that organization too (nothing created).
    sign_out(client, token_of)
    url = launch_signed_out(client, token_of)
    response = client.get(
        "/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", intuit_user.sub)])
    )
    assert response.headers["Location"] == f"/orgs/{org_id}/"
    assert counts(store) == (1, 1, 1)


def test_a_verified_email_of_a_password_account_is_linked_after_its_password(
    client: FlaskClient,
    store: Store,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Consent,
    intuit_user: Any,
    realm: str,
) -> None:
    account = make_user("Existing Ltd", Role.OWNER, email=intuit_user.email.upper())
    url = launch_signed_out(client, token_of)
    response = client.get(
        "/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", intuit_user.sub)])
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/signup/link"
    page = client.get("/signup/link")
    assert "Link this Intuit identity to your Nudge account" in page.text
    assert signed_in_user(client) is None
    assert counts(store) == (1, 1, 0)  # nothing created, nothing linked yet
    wrong = client.post("/signup/link", data={"csrf_token": token_of(page.text), "password": "not the password"})
    assert wrong.status_code == 400
    assert "not right" in wrong.text
    assert signed_in_user(client) is None
    right = client.post("/signup/link", data={"csrf_token": token_of(wrong.text), "password": account.password})
    assert right.status_code == 303
    assert right.headers["Location"] == "/launch/quickbooks"  # on to connecting the company
    assert signed_in_user(client) == str(account.user_id)
    assert client.get("/signup/link").status_code == 400  # used up
    # From now on "Sign in with Intuit" signs in to that account.
    sign_out(client, token_of)
    params = consent(sign_in_with_intuit(client, token_of), [], extra=[("user", intuit_user.sub)])
    assert client.get("/signup/quickbooks/callback", query_string=params).status_code == 303
    assert signed_in_user(client) == str(account.user_id)
    assert counts(store) == (1, 1, 0)


def test_an_unverified_email_is_never_linked(
    client: FlaskClient,
    store: Store,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Consent,
    qbo_emulator: Any,
    realm: str,
) -> None:
    victim = make_user("Victim Ltd", Role.OWNER, email=f"victim-{uuid.uuid4().hex[:6]}@example.com")
    attacker = qbo_emulator.emulator.oauth.add_user(victim.email, "Mal", "Lory", email_verified=False)
    url = launch_signed_out(client, token_of)
    response = client.get(
        "/signup/quickbooks/callback", query_string=consent(url, realm, extra=[("user", attacker.sub)])
    )
    assert response.status_code == 400
    assert "already exists" in html.unescape(response.text)
    assert signed_in_user(client) is None
    assert counts(store) == (1, 1, 0)
    assert client.get("/signup/link").status_code == 400


def test_an_invited_intuit_user_signs_in_with_intuit_and_joins_as_accountant(
    client: FlaskClient,
    store: Store,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Consent,
    intuit_user: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    from connector.accounts import invitations

    owner = make_user("Practice Ltd", Role.OWNER)
    with store.unit_of_work() as uow:
        issued = invitations.invite(
            uow,
            organization_id=owner.org_id,
            acting_user_id=owner.user_id,
            email=intuit_user.email,
            role=Role.ACCOUNTANT,
            now=datetime.now(UTC),
            valid_for=timedelta(days=7),
            actor=owner.email,
        )
        uow.commit()
    assert client.get(f"/invitations/{issued.token}").status_code == 200
    url = sign_in_with_intuit(client, token_of)
    assert "com.intuit.quickbooks.accounting" not in url  # identity scopes only
    params = consent(url, [], extra=[("user", intuit_user.sub)])
    response = client.get("/signup/quickbooks/callback", query_string=params)
    assert response.status_code == 303
    assert response.headers["Location"] == "/invitations/accept"
    with client.session_transaction() as session:
        assert session.get("pending_invitation") == issued.token  # the invitations view pops it
    assert counts(store) == (2, 1, 0)  # the invitee's user, and no organization of their own
    page = client.get("/invitations/accept")
    assert "Join Practice Ltd as accountant" in page.text
    joined = client.post("/invitations/accept", data={"csrf_token": token_of(page.text)})
    assert joined.status_code == 303
    with store.unit_of_work() as uow:
        user = uow.users.by_identity("quickbooks", intuit_user.sub)
        assert user is not None
        assert signed_in_user(client) == str(user.id)
        assert [(org.id, role) for org, role in uow.organizations.for_user(user.id)] == [
            (owner.org_id, Role.ACCOUNTANT)
        ]
