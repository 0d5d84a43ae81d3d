""" "Sign up with Xero" / "Sign in with Xero" through the web app against the Xero emulator (OpenID Connect)."""

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
from connector.domain.model import Role
from connector.ports import ProviderSettings
from connector.storage import Store
from connector.storage.tables import Connection, Organization, User

Consent = Callable[..., dict[str, str]]


@pytest.fixture
def settings(database_url: str, xero_settings: ProviderSettings) -> Settings:
    return settings_for_tests(database_url, providers={"xero": xero_settings})


@pytest.fixture
def xero_user(xero_emulator: Any) -> Any:
    """A fresh user at the (shared) Xero emulator."""
    with xero_emulator.state.lock:
        return xero_emulator.state.add_user(f"xu-{uuid.uuid4().hex[:8]}@example.com", "Xena", "Xero")


def redirect_target(response: TestResponse) -> str:
    assert response.status_code == 200, response.text
    link = re.search(r'<a class="authorize" href="([^"]+)"', response.text)
    assert link
    return html.unescape(link.group(1))


def start_signup(client: FlaskClient, token_of: Callable[[str], str]) -> str:
    page = client.get("/signup/xero")
    assert page.status_code == 200
    assert "Sign up with Xero" in page.text
    return redirect_target(client.post("/signup/xero", data={"csrf_token": token_of(page.text)}))


def start_signin(client: FlaskClient, token_of: Callable[[str], str]) -> str:
    page = client.get("/login")
    assert 'action="/signin/xero"' in page.text
    assert "Sign in with Xero</button>" in page.text
    assert client.get("/signin/xero").status_code == 405  # a GET never starts a round trip
    return redirect_target(client.post("/signin/xero", data={"csrf_token": token_of(page.text)}))


def counts(store: Store) -> tuple[int, int, int]:
    with store.unit_of_work() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(t)) for t in (User, Organization, Connection)
        )


def signed_in_email(client: FlaskClient) -> str | None:
    with client.session_transaction() as session:
        user_id = session.get("_user_id")  # "<user id>:<session version>"
    return str(user_id).partition(":")[0] if user_id else None


def test_signup_round_trip_then_sign_in_with_xero(
    client: FlaskClient,
    store: Store,
    token_of: Callable[[str], str],
    consent: Consent,
    xero_emulator: Any,
    xero_user: Any,
) -> None:
    first = xero_emulator.add_tenant(f"Kauri Plumbing {uuid.uuid4().hex[:4]}")
    second = xero_emulator.add_tenant(f"Rimu Holdings {uuid.uuid4().hex[:4]}")
    names = {t: xero_emulator.state.ledgers[t].name for t in (first, second)}
    url = start_signup(client, token_of)
    assert "redirect_uri=http%3A%2F%2Flocalhost%2Fsignup%2Fxero%2Fcallback" in url
    assert "nonce=" in url
    assert "code_challenge_method=S256" in url
    assert "openid" in url
    params = consent(url, [first, second], field="tenant", extra=[("user", xero_user.user_id)])
    response = client.get("/signup/xero/callback", query_string=params)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    dashboard = client.get("/", follow_redirects=True)
    assert dashboard.status_code == 200
    assert names[first] in dashboard.text
    assert names[second] in dashboard.text
    assert "Welcome to Nudge" in dashboard.text
    with store.unit_of_work() as uow:
        user = uow.users.by_identity("xero", xero_user.user_id)
        assert user is not None
        assert user.email == xero_user.email
        assert user.password_hash == ""
        ((org, role),) = uow.organizations.for_user(user.id)
        assert org.name == names[first]
        assert role is Role.OWNER
        assert {c.tenant_id for c in uow.connections.for_organization(org.id)} == {first, second}
        user_id = user.id
    assert signed_in_email(client) == str(user_id)
    assert counts(store) == (1, 1, 2)

    # Sign out, then "Sign in with Xero": the same user, nothing created (identity scopes, no organisation).
    page = client.get("/")
    page = client.get(page.headers.get("Location", "/"), follow_redirects=True)
    client.post("/logout", data={"csrf_token": token_of(page.text)})
    assert signed_in_email(client) is None
    url = start_signin(client, token_of)
    assert "scope=openid+profile+email&" in url
    params = consent(url, [], field="tenant", extra=[("user", xero_user.user_id)])
    response = client.get("/signup/xero/callback", query_string=params)
    assert response.status_code == 303
    assert signed_in_email(client) == str(user_id)
    assert counts(store) == (1, 1, 2)


def test_password_login_never_works_for_an_external_identity(
    client: FlaskClient,
    store: Store,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    consent: Consent,
    xero_emulator: Any,
    xero_user: Any,
) -> None:
    tenant = xero_emulator.add_tenant("Totara Ltd")
    params = consent(start_signup(client, token_of), tenant, field="tenant", extra=[("user", xero_user.user_id)])
    assert client.get("/signup/xero/callback", query_string=params).status_code == 303
    other = client.application.test_client()
    for password in ("", " ", "x"):
        response = login(other, xero_user.email, password)
        assert response.status_code == 200


def test_an_email_with_a_local_account_is_refused(
    client: FlaskClient,
    store: Store,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Consent,
    xero_emulator: Any,
    xero_user: Any,
) -> None:
    make_user("Existing Ltd", Role.OWNER, email=xero_user.email.upper())
    tenant = xero_emulator.add_tenant("Matai Ltd")
    params = consent(start_signup(client, token_of), tenant, field="tenant", extra=[("user", xero_user.user_id)])
    response = client.get("/signup/xero/callback", query_string=params)
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "already exists" in text
    assert "Sign in to it with your password first" in text
    assert "connect Xero from your dashboard" in text
    assert signed_in_email(client) is None
    assert counts(store) == (1, 1, 0)
    with store.unit_of_work() as uow:
        assert uow.users.by_identity("xero", xero_user.user_id) is None


def test_state_mismatch_and_denial(
    client: FlaskClient, store: Store, token_of: Callable[[str], str], consent: Consent, xero_emulator: Any
) -> None:
    tenant = xero_emulator.add_tenant("Kowhai Ltd")
    denied_params = consent(start_signup(client, token_of), tenant, field="tenant", approve=False)
    denied = client.get("/signup/xero/callback", query_string=denied_params)
    assert denied.status_code == 400
    assert "did not grant access" in denied.text
    assert denied_params.get("code") is None
    assert "code=" not in denied.text
    assert counts(store) == (0, 0, 0)
    assert signed_in_email(client) is None

    params = consent(start_signup(client, token_of), tenant, field="tenant")
    response = client.get("/signup/xero/callback", query_string={**params, "state": "forged"})
    assert response.status_code == 400
    assert "no Xero sign-in in progress" in response.text
    assert counts(store) == (0, 0, 0)
    # A forged state does not cancel the sign-up in progress: the genuine callback still completes, once.
    with client.session_transaction() as session:
        browser = dict(session)  # the session as it was before the callback, replayed below
    assert client.get("/signup/xero/callback", query_string=params).status_code == 303
    assert signed_in_email(client) is not None
    created = counts(store)
    replay = client.application.test_client()
    with replay.session_transaction() as session:
        session.update({key: value for key, value in browser.items() if key == "nudge.oauth_browser"})
    again = replay.get("/signup/xero/callback", query_string=params)
    assert again.status_code == 400
    assert "already used" in again.text
    assert counts(store) == created


def test_sign_in_with_xero_without_an_account_creates_nothing(
    client: FlaskClient, store: Store, token_of: Callable[[str], str], consent: Consent, xero_user: Any
) -> None:
    params = consent(start_signin(client, token_of), [], field="tenant", extra=[("user", xero_user.user_id)])
    response = client.get("/signup/xero/callback", query_string=params)
    assert response.status_code == 400
    assert "Sign up with Xero first" in response.text
    assert counts(store) == (0, 0, 0)
    assert signed_in_email(client) is None


def test_signed_in_users_are_sent_to_the_connect_flow(client: FlaskClient, signed_in: Any) -> None:
    response = client.get("/signup/xero")
    assert response.status_code == 302
    assert response.headers["Location"] == "/launch/xero"
    launched = client.get("/launch/xero")
    assert launched.headers["Location"] == f"/orgs/{signed_in.org_id}/connect/xero"


def test_marketplace_launch_offers_signup_to_signed_out_visitors(client: FlaskClient) -> None:
    response = client.get("/launch/xero")
    assert response.status_code == 302
    assert response.headers["Location"] == "/signup/xero?launched=1"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Welcome from the Xero app store" in page.text
    assert 'action="/signup/xero"' in page.text
    assert "Sign in with Xero</button>" in page.text


def test_xero_launch_lands_on_the_organization_of_the_tenant_and_offers_reconnect_after_a_disconnect(
    client: FlaskClient,
    store: Store,
    token_of: Callable[[str], str],
    consent: Consent,
    xero_emulator: Any,
    xero_user: Any,
) -> None:
    tenant = xero_emulator.add_tenant(f"Launch Ltd {uuid.uuid4().hex[:4]}")
    params = consent(start_signup(client, token_of), tenant, field="tenant", extra=[("user", xero_user.user_id)])
    assert client.get("/signup/xero/callback", query_string=params).status_code == 303
    with store.unit_of_work() as uow:
        (connection,) = uow.session.scalars(select(Connection)).all()
        org_id, connection_id = connection.organization_id, connection.id
    launched = client.get(f"/launch/xero?tenantId={tenant}")
    assert launched.status_code == 302
    assert launched.headers["Location"] == f"/orgs/{org_id}/"
    confirm = client.get(f"/orgs/{org_id}/connections/{connection_id}/disconnect")
    done = client.post(
        f"/orgs/{org_id}/connections/{connection_id}/disconnect", data={"csrf_token": token_of(confirm.text)}
    )
    assert done.status_code == 303
    relaunched = client.get(f"/launch/xero?tenantId={tenant}")
    assert relaunched.headers["Location"] == f"/orgs/{org_id}/"
    page = client.get(relaunched.headers["Location"], follow_redirects=True)
    assert "is disconnected: use its Reconnect button" in html.unescape(page.text)
    assert "Reconnect</button>" in page.text
