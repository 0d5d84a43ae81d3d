"""Connecting files through the web app: the whole OAuth round trip against the QuickBooks and Xero emulators.

The test client plays the browser on Nudge's side; `consent` plays it on the emulator's authorize page
(approve or cancel), and the redirect it gets back is followed into Nudge's callback. Both providers
are configured, as in production; the routes are the same code for each.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from connector.config import Settings, settings_for_tests
from connector.domain.model import Role
from connector.ports import ProviderSettings, TokenSet
from connector.storage import Store
from connector.storage.tables import Membership, OAuthPending
from connector.vault.tokens import open_tokens
from web import create_app
from web.extensions import SERVICES_KEY
from web.oauth_flow import BROWSER_KEY

CALLBACK = "/oauth/quickbooks/callback"


@pytest.fixture
def settings(database_url: str, qbo_settings: ProviderSettings, xero_settings: ProviderSettings) -> Settings:
    return settings_for_tests(database_url, providers={"quickbooks": qbo_settings, "xero": xero_settings})


def new_company(qbo_emulator: Any, name: str) -> str:
    """A fresh company in the shared emulator; its realmId."""
    return str(qbo_emulator.store.add_company(name).realm)


def start_connect(
    client: FlaskClient, token_of: Callable[[str], str], org_id: int, provider: str = "quickbooks"
) -> str:
    """Press "Connect <provider>" on the dashboard; the authorize URL Nudge redirects to."""
    page = client.get(f"/orgs/{org_id}/")
    assert page.status_code == 200
    assert f'action="/orgs/{org_id}/connect/{provider}"' in page.text
    label = {"quickbooks": "QuickBooks Online", "xero": "Xero"}[provider]
    assert f"Connect {label}</button>" in page.text
    response = client.post(f"/orgs/{org_id}/connect/{provider}", data={"csrf_token": token_of(page.text)})
    return authorize_url_of(response)


def authorize_url_of(response: TestResponse) -> str:
    """Where the page answering "Connect" sends the browser (meta refresh and link agree)."""
    assert response.status_code == 200, response.text
    link = re.search(r'<a class="authorize" href="([^"]+)"', response.text)
    refresh = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', response.text)
    assert link
    assert refresh
    assert link.group(1) == refresh.group(1)
    return html.unescape(link.group(1))


def connect(
    client: FlaskClient, token_of: Callable[[str], str], consent: Callable[..., dict[str, str]], org_id: int, realm: str
) -> TestResponse:
    """The whole round trip: dashboard button, the emulator's consent page (approve), the callback."""
    params = consent(start_connect(client, token_of, org_id), realm)
    return client.get(CALLBACK, query_string=params)


def connections(store: Store, org_id: int) -> list[Any]:
    with store.unit_of_work() as uow:
        rows = uow.connections.for_organization(org_id)
        uow.session.expunge_all()
        return rows


def tokens_of(app: Flask, store: Store, org_id: int, connection_id: int) -> TokenSet:
    vault = app.extensions[SERVICES_KEY].vault
    with store.unit_of_work() as uow:
        row = uow.connections.get(org_id, connection_id)
        assert row is not None
        return open_tokens(vault, row)


def company_info_status(qbo_emulator: Any, realm: str, access_token: str) -> int:
    url = f"{qbo_emulator.api_base}/company/{realm}/companyinfo/{realm}"
    return requests.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10).status_code


def pending_rows(store: Store) -> list[OAuthPending]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.query(OAuthPending).order_by(OAuthPending.id))
        uow.session.expunge_all()
        return rows


def database_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(tmp_path.glob("web.sqlite3*")))


def test_connect_round_trip_stores_an_encrypted_connection(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    realm = new_company(qbo_emulator, "Round Trip Books LLC")

    authorize_url = start_connect(client, token_of, signed_in.org_id)
    assert authorize_url.startswith(f"{qbo_emulator.url}/connect/oauth2?")
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["redirect_uri"] == ["http://localhost/oauth/quickbooks/callback"]
    [pending] = pending_rows(store)
    assert len(query["state"][0]) >= 32
    assert query["state"][0] not in str(vars(pending))  # only its hash is kept
    assert pending.organization_id == signed_in.org_id
    assert pending.user_id == signed_in.user_id
    assert pending.used_at is None

    params = consent(authorize_url, realm)
    assert params["realmId"] == realm
    assert params["state"] == query["state"][0]
    assert params["code"]
    response = client.get(CALLBACK, query_string=params)
    assert response.status_code == 303
    assert response.location == f"/orgs/{signed_in.org_id}/"
    [used] = pending_rows(store)
    assert used.used_at is not None  # single use

    dashboard = client.get(response.location)
    assert "Connected Round Trip Books LLC" in dashboard.text
    # careful by default: a new client waits for its first plan's review, and the user is told so
    assert "nothing is sent or written to the ledger until you have reviewed" in dashboard.text
    assert "Waiting for your review" in dashboard.text
    assert '<span class="muted small provider">QuickBooks Online</span>' in dashboard.text
    assert ">Round Trip Books LLC</a>" in dashboard.text  # the client's name links to its page
    assert "Reconnect needed" not in dashboard.text

    [row] = connections(store, signed_in.org_id)
    assert (row.provider, row.tenant_id, row.name, row.status) == (
        "quickbooks",
        realm,
        "Round Trip Books LLC",
        "active",
    )
    assert row.next_run_at is not None  # the first sync is due at once
    tokens = tokens_of(app, store, signed_in.org_id, row.id)
    assert company_info_status(qbo_emulator, realm, tokens.access_token) == 200  # the stored tokens work
    raw = database_bytes(tmp_path)
    assert row.tokens_sealed
    assert tokens.access_token.encode() not in raw
    assert tokens.refresh_token.encode() not in raw
    for secret in (params["code"], tokens.access_token, tokens.refresh_token):
        assert secret not in caplog.text
        assert secret not in dashboard.text


def test_a_ledger_another_organization_chases_is_connected_without_a_second_chaser(
    app: Flask,
    store: Store,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    realm = new_company(qbo_emulator, "Shared Books Ltd")
    practice, owner = make_user("Smith & Co Accountants"), make_user("Shared Books Ltd")
    first, second = app.test_client(), app.test_client()
    assert login(first, practice.email, practice.password).status_code == 302
    assert login(second, owner.email, owner.password).status_code == 302
    assert connect(first, token_of, consent, practice.org_id, realm).status_code == 303
    response = connect(second, token_of, consent, owner.org_id, realm)
    assert response.status_code == 303
    dashboard = second.get(response.location).text
    assert (
        "Smith &amp; Co Accountants already chases this ledger in Nudge, so nothing will be sent from here" in dashboard
    )
    assert "Chased by Smith &amp; Co Accountants" in dashboard
    [mine] = connections(store, owner.org_id)
    assert mine.chasing == "managed_elsewhere"
    assert mine.managed_by_organization_id == practice.org_id
    [theirs] = connections(store, practice.org_id)
    assert theirs.chasing == "review"


def test_denied_consent_shows_an_error_and_stores_nothing(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    realm = new_company(qbo_emulator, "Denied Co")
    params = consent(start_connect(client, token_of, signed_in.org_id), realm, approve=False)
    assert params["error"] == "access_denied"
    page = client.get(CALLBACK, query_string=params)
    assert page.status_code == 400
    assert "QuickBooks Online was not connected" in page.text
    assert "did not grant access (access_denied)" in page.text
    assert connections(store, signed_in.org_id) == []
    again = client.get(CALLBACK, query_string=params)  # the pending state was used up
    assert again.status_code == 400
    assert "already used" in again.text


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda p: {**p, "state": p["state"][:-2] + "xx"}, "no QuickBooks Online connection in progress"),
        (lambda p: {k: v for k, v in p.items() if k != "realmId"}, "realmId"),
        (lambda p: {**p, "realmId": "12a"}, "realmId"),
        (lambda p: {**p, "code": "AB-not-a-code-the-emulator-issued"}, "no longer accepts"),  # failed exchange
        (lambda p: {k: v for k, v in p.items() if k != "code"}, "no authorization code"),
    ],
    ids=["state-mismatch", "missing-realm", "bad-realm", "failed-exchange", "missing-code"],
)
def test_bad_callbacks_show_what_happened_and_store_nothing(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
    caplog: pytest.LogCaptureFixture,
    tamper: Callable[[dict[str, str]], dict[str, str]],
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    realm = new_company(qbo_emulator, "Tampered Co")
    params = consent(start_connect(client, token_of, signed_in.org_id), realm)
    page = client.get(CALLBACK, query_string=tamper(params))
    assert page.status_code == 400
    assert "QuickBooks Online was not connected" in page.text
    assert expected in page.text
    assert params["code"] not in page.text
    assert params["code"] not in caplog.text
    assert params["state"] not in page.text
    assert connections(store, signed_in.org_id) == []


def test_callback_without_a_started_connection(client: FlaskClient, signed_in: Any) -> None:
    page = client.get(CALLBACK, query_string={"code": "AB123", "state": "x", "realmId": "1"})
    assert page.status_code == 400
    assert "no QuickBooks Online connection in progress" in page.text
    assert "AB123" not in page.text


def test_reconnecting_the_same_company_updates_the_row(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    realm = new_company(qbo_emulator, "Reconnect Ltd")
    assert connect(client, token_of, consent, signed_in.org_id, realm).status_code == 303
    [row] = connections(store, signed_in.org_id)
    with store.unit_of_work() as uow:
        stored = uow.connections.get(signed_in.org_id, row.id)
        assert stored is not None
        stored.status, stored.last_error = (
            "needs_reauth",
            "QuickBooks no longer accepts this connection's authorization",
        )
        uow.commit()

    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert "Reconnect needed" in page.text
    assert "QuickBooks no longer accepts this connection&#39;s authorization" in page.text
    reconnect_action = f'action="/orgs/{signed_in.org_id}/connections/{row.id}/reconnect"'
    assert reconnect_action in page.text
    assert ">Reconnect</button>" in page.text
    response = client.post(
        f"/orgs/{signed_in.org_id}/connections/{row.id}/reconnect", data={"csrf_token": token_of(page.text)}
    )
    authorize_url = authorize_url_of(response)
    assert authorize_url.startswith(f"{qbo_emulator.url}/connect/oauth2?")
    done = client.get(CALLBACK, query_string=consent(authorize_url, realm))
    assert done.status_code == 303
    assert "Reconnected Reconnect Ltd" in client.get(done.location).text

    [again] = connections(store, signed_in.org_id)  # no duplicate
    assert again.id == row.id
    assert again.status == "active"
    assert again.last_error == ""
    assert again.tokens_sealed != row.tokens_sealed


def test_a_disconnected_company_comes_back_only_through_its_own_reconnect_button(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    """Issue 10 item 4: a plain Connect never revives a disconnected ledger; its Reconnect button does."""
    realm = new_company(qbo_emulator, "Back Again Ltd")
    assert connect(client, token_of, consent, signed_in.org_id, realm).status_code == 303
    [row] = connections(store, signed_in.org_id)
    page = client.get(f"/orgs/{signed_in.org_id}/connections/{row.id}/disconnect")
    gone = client.post(
        f"/orgs/{signed_in.org_id}/connections/{row.id}/disconnect", data={"csrf_token": token_of(page.text)}
    )
    assert gone.status_code == 303
    assert [r.status for r in connections(store, signed_in.org_id)] == ["disconnected"]

    done = connect(client, token_of, consent, signed_in.org_id, realm)  # the dashboard's Connect, same company
    assert done.status_code == 303
    assert "Back Again Ltd stays disconnected" in client.get(done.location).text
    [kept] = connections(store, signed_in.org_id)
    assert kept.status == "disconnected"
    assert not kept.tokens_sealed

    dashboard = client.get(f"/orgs/{signed_in.org_id}/")
    response = client.post(
        f"/orgs/{signed_in.org_id}/connections/{row.id}/reconnect", data={"csrf_token": token_of(dashboard.text)}
    )
    back = client.get(CALLBACK, query_string=consent(authorize_url_of(response), realm))
    assert back.status_code == 303
    assert "Reconnected Back Again Ltd" in client.get(back.location).text
    [revived] = connections(store, signed_in.org_id)
    assert revived.id == row.id
    assert revived.status == "active"


def test_disconnect_revokes_the_grant_and_marks_the_connection(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    realm = new_company(qbo_emulator, "Leaving Co")
    assert connect(client, token_of, consent, signed_in.org_id, realm).status_code == 303
    [row] = connections(store, signed_in.org_id)
    tokens = tokens_of(app, store, signed_in.org_id, row.id)
    assert company_info_status(qbo_emulator, realm, tokens.access_token) == 200

    client_page = client.get(f"/orgs/{signed_in.org_id}/clients/{row.id}/")  # Disconnect… is on the client's page
    assert f'href="/orgs/{signed_in.org_id}/connections/{row.id}/disconnect"' in client_page.text  # asks first
    page = client.get(f"/orgs/{signed_in.org_id}/connections/{row.id}/disconnect")
    assert page.status_code == 200
    assert "Disconnect Leaving Co?" in page.text
    assert [r.status for r in connections(store, signed_in.org_id)] == ["active"]  # the GET changed nothing
    assert f'action="/orgs/{signed_in.org_id}/connections/{row.id}/disconnect"' in page.text
    response = client.post(
        f"/orgs/{signed_in.org_id}/connections/{row.id}/disconnect", data={"csrf_token": token_of(page.text)}
    )
    assert response.status_code == 303
    assert response.location == f"/orgs/{signed_in.org_id}/"
    dashboard = client.get(response.location)
    assert "Disconnected Leaving Co" in dashboard.text
    assert f'action="/orgs/{signed_in.org_id}/connections/{row.id}/reconnect"' in dashboard.text

    [after] = connections(store, signed_in.org_id)
    assert after.status == "disconnected"
    assert after.tokens_sealed == ""
    assert after.next_run_at is None
    # The emulator revoked the grant: the old access token is refused, the refresh token is dead.
    assert company_info_status(qbo_emulator, realm, tokens.access_token) == 401
    token_endpoint = f"{qbo_emulator.url}/oauth2/v1/tokens/bearer"
    refresh = requests.post(
        token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        auth=("emulator-client-id", "emulator-client-secret"),
        timeout=10,
    )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"


def test_disconnect_needs_membership_and_the_owner_role(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    with store.unit_of_work() as uow:
        connection_id = uow.connections.add(signed_in.org_id, "quickbooks", "4620816365", "Acme Books").id
        uow.commit()
    outsider = make_user("Other Org", Role.OWNER)
    accountant = make_user("Acme Ltd", Role.ACCOUNTANT)

    other = app.test_client()
    assert login(other, outsider.email, outsider.password).status_code == 302
    token = token_of(other.get(f"/orgs/{outsider.org_id}/").text)
    path = f"/orgs/{signed_in.org_id}/connections/{connection_id}/disconnect"
    assert other.post(path, data={"csrf_token": token}).status_code == 404
    own_org_path = f"/orgs/{outsider.org_id}/connections/{connection_id}/disconnect"  # not that org's connection
    assert other.post(own_org_path, data={"csrf_token": token}).status_code == 404
    assert (
        other.post(
            f"/orgs/{signed_in.org_id}/connections/{connection_id}/reconnect", data={"csrf_token": token}
        ).status_code
        == 404
    )

    helper = app.test_client()
    assert login(helper, accountant.email, accountant.password).status_code == 302
    page = helper.get(f"/orgs/{signed_in.org_id}/")
    assert "/disconnect" not in page.text  # only owners see the button
    assert "/disconnect" not in helper.get(f"/orgs/{signed_in.org_id}/clients/{connection_id}/").text
    assert helper.get(path).status_code == 403
    assert helper.post(path, data={"csrf_token": token_of(page.text)}).status_code == 403
    assert other.get(path).status_code == 404
    assert client.post(path).status_code == 400  # the owner, but without a CSRF token
    [row] = connections(store, signed_in.org_id)
    assert row.status == "active"


def test_viewers_cannot_connect(
    app: Flask,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    viewer = make_user("Viewing Co", Role.VIEWER)
    client = app.test_client()
    assert login(client, viewer.email, viewer.password).status_code == 302
    page = client.get(f"/orgs/{viewer.org_id}/")
    assert "Connect QuickBooks" not in page.text
    response = client.post(f"/orgs/{viewer.org_id}/connect/quickbooks", data={"csrf_token": token_of(page.text)})
    assert response.status_code == 403


def test_a_callback_meant_for_another_organization_cannot_be_completed(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    """User B starts connecting org B; user A (org A) gets hold of B's callback URL and opens it."""
    user_b = make_user("Org B", Role.OWNER)
    client_b = app.test_client()
    assert login(client_b, user_b.email, user_b.password).status_code == 302
    realm = new_company(qbo_emulator, "B's Books")
    params_b = consent(start_connect(client_b, token_of, user_b.org_id), realm)

    # A has nothing pending: refused.
    assert client.get(CALLBACK, query_string=params_b).status_code == 400
    # A has a connection of its own in progress: B's state does not match A's session.
    start_connect(client, token_of, signed_in.org_id)
    page = client.get(CALLBACK, query_string=params_b)
    assert page.status_code == 400
    assert "state mismatch" in page.text
    assert connections(store, signed_in.org_id) == []
    assert connections(store, user_b.org_id) == []


def test_the_pending_state_is_bound_to_the_user_and_their_membership(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    realm = new_company(qbo_emulator, "Bound Co")
    # A pending entry naming another user (as if planted in this session) is refused.
    params = consent(start_connect(client, token_of, signed_in.org_id), realm)
    other = make_user("Another Org", Role.OWNER)  # as if another user of this browser had started it
    with store.unit_of_work() as uow:
        for row in uow.session.query(OAuthPending):
            row.user_id = other.user_id
        uow.commit()
    page = client.get(CALLBACK, query_string=params)
    assert page.status_code == 400
    assert "no longer signed in as the user who started" in page.text

    # Membership is checked again at the callback: removed meanwhile → 404, nothing stored.
    params = consent(start_connect(client, token_of, signed_in.org_id), realm)
    with store.unit_of_work() as uow:
        uow.session.execute(
            delete(Membership).where(
                Membership.user_id == signed_in.user_id, Membership.organization_id == signed_in.org_id
            )
        )
        uow.commit()
    assert client.get(CALLBACK, query_string=params).status_code == 404
    assert connections(store, signed_in.org_id) == []


def test_unknown_or_unconfigured_providers_are_404(
    client: FlaskClient, signed_in: Any, token_of: Callable[[str], str]
) -> None:
    token = token_of(client.get(f"/orgs/{signed_in.org_id}/").text)
    for provider in ("freshbooks", "_emulator", "Xero"):  # not configured; shared machinery; keys are exact
        assert (
            client.post(f"/orgs/{signed_in.org_id}/connect/{provider}", data={"csrf_token": token}).status_code == 404
        )
        assert client.get(f"/oauth/{provider}/callback?code=a&state=b").status_code == 404
        assert client.get(f"/launch/{provider}").status_code == 404
        assert client.get(f"/marketplace/{provider}/disconnected").status_code == 404


def test_launch_url_signed_out_and_in(
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    response = client.get("/launch/quickbooks")
    assert response.status_code == 302
    assert response.location == "/signup/quickbooks?launched=1"  # "Sign in with Intuit" (docs/signin.md)
    offer = client.get(response.location)
    assert 'href="/login?next=/launch/quickbooks"' in offer.text  # a password account signs in instead
    account = make_user("Launch Co", Role.ACCOUNTANT)
    signed = login(client, account.email, account.password, next="/launch/quickbooks")
    assert signed.location == "/launch/quickbooks"
    response = client.get("/launch/quickbooks")
    assert response.status_code == 302
    assert response.location == f"/orgs/{account.org_id}/connect/quickbooks"
    page = client.get(response.location)
    assert page.status_code == 200
    assert f'action="/orgs/{account.org_id}/connect/quickbooks"' in page.text
    started = client.post(response.location, data={"csrf_token": token_of(page.text)})
    assert authorize_url_of(started).startswith("http://127.0.0.1:")


def test_marketplace_disconnect_url_changes_nothing_until_the_provider_confirms(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    qbo_emulator: Any,
) -> None:
    """Issue 10 item 5: the GET is a confirmation page; the POST checks with QuickBooks and never revokes."""
    realm = new_company(qbo_emulator, "Marketplace Co")
    assert connect(client, token_of, consent, signed_in.org_id, realm).status_code == 303
    [row] = connections(store, signed_in.org_id)
    tokens = tokens_of(app, store, signed_in.org_id, row.id)
    stranger = make_user("Stranger Org", Role.OWNER)
    with store.unit_of_work() as uow:
        uow.connections.add(stranger.org_id, "quickbooks", realm, "Same company, other org")
        uow.commit()
    url = f"/marketplace/quickbooks/disconnected?realmId={realm}"

    anonymous = client.application.test_client()
    page = anonymous.get(url)
    assert page.status_code == 200
    assert "QuickBooks Online disconnected?" in page.text
    assert "Sign in to check your connections" in page.text
    assert anonymous.post("/marketplace/quickbooks/disconnected", data={"tenant_id": realm}).status_code == 400

    page = client.get(url)  # a link is not enough: nothing changes on a GET
    assert page.status_code == 200
    assert 'action="/marketplace/quickbooks/disconnected"' in page.text
    assert "<strong>Marketplace Co</strong>" in page.text
    assert [r.status for r in connections(store, signed_in.org_id)] == ["active"]
    assert client.post("/marketplace/quickbooks/disconnected", data={"tenant_id": realm}).status_code == 400  # CSRF

    # QuickBooks still accepts the grant: the connection stays active, the page says so, nothing is revoked.
    checked = client.post(
        "/marketplace/quickbooks/disconnected", data={"csrf_token": token_of(page.text), "tenant_id": realm}
    )
    assert checked.status_code == 200
    assert "still accepts Nudge's access to <strong>Marketplace Co</strong>" in checked.text
    assert [r.status for r in connections(store, signed_in.org_id)] == ["active"]
    assert company_info_status(qbo_emulator, realm, tokens.access_token) == 200

    # Disconnected at Intuit (the grant revoked there): the check proves it and only the user's row is marked.
    services = app.extensions[SERVICES_KEY]
    services.registry.spec("quickbooks").revoke(services.registry.settings("quickbooks"), tokens)
    checked = client.post(
        "/marketplace/quickbooks/disconnected", data={"csrf_token": token_of(page.text), "tenant_id": realm}
    )
    assert checked.status_code == 200
    assert "Marked as disconnected: <strong>Marketplace Co</strong>" in checked.text
    assert f'href="/orgs/{signed_in.org_id}/connect/quickbooks"' in checked.text  # the way back
    [after] = connections(store, signed_in.org_id)
    assert after.status == "disconnected"
    assert after.tokens_sealed == ""
    assert after.next_run_at is None
    assert [r.status for r in connections(store, stranger.org_id)] == ["active"]


# --- Xero: one consent can cover several organisations (PKCE on) ---


def xero_token_works(xero_emulator: Any, access_token: str) -> bool:
    response = requests.get(
        f"{xero_emulator.url}/connections", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    return response.status_code == 200


def test_xero_consent_for_several_organisations_makes_several_connections(
    app: Flask,
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    xero_emulator: Any,
    tmp_path: Path,
) -> None:
    first = xero_emulator.add_tenant("Kiwi Traders Ltd")
    second = xero_emulator.add_tenant("Tasman Holdings")
    authorize_url = start_connect(client, token_of, signed_in.org_id, "xero")
    assert authorize_url.startswith(f"{xero_emulator.url}/connect/authorize?")
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["redirect_uri"] == ["http://localhost/oauth/xero/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0]
    with client.session_transaction() as session:
        assert session[BROWSER_KEY]  # the session holds only a random browser id
    [pending] = pending_rows(store)
    assert pending.provider == "xero"
    assert pending.secrets_sealed  # PKCE: the verifier waits server-side, sealed

    params = consent(authorize_url, [first, second], field="tenant")
    response = client.get("/oauth/xero/callback", query_string=params)
    assert response.status_code == 303, response.text
    dashboard = client.get(response.location).text
    assert "Connected Kiwi Traders Ltd" in dashboard
    assert "Connected Tasman Holdings" in dashboard
    assert dashboard.count('<span class="muted small provider">Xero</span>') == 2

    rows = connections(store, signed_in.org_id)
    assert sorted((row.provider, row.tenant_id, row.name, row.status) for row in rows) == sorted(
        [("xero", first, "Kiwi Traders Ltd", "active"), ("xero", second, "Tasman Holdings", "active")]
    )
    tokens = [tokens_of(app, store, signed_in.org_id, row.id) for row in rows]
    assert tokens[0].refresh_token == tokens[1].refresh_token  # one grant covers both
    raw = database_bytes(tmp_path)
    assert tokens[0].access_token.encode() not in raw
    assert tokens[0].refresh_token.encode() not in raw

    # Disconnecting one organisation keeps the grant the other still uses; the last one revokes it.
    page = client.get(f"/orgs/{signed_in.org_id}/")
    client.post(
        f"/orgs/{signed_in.org_id}/connections/{rows[0].id}/disconnect", data={"csrf_token": token_of(page.text)}
    )
    assert xero_token_works(xero_emulator, tokens[0].access_token)
    client.post(
        f"/orgs/{signed_in.org_id}/connections/{rows[1].id}/disconnect", data={"csrf_token": token_of(page.text)}
    )
    assert not xero_token_works(xero_emulator, tokens[0].access_token)
    assert [row.status for row in connections(store, signed_in.org_id)] == ["disconnected", "disconnected"]


def test_xero_callback_is_not_the_quickbooks_callback(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    token_of: Callable[[str], str],
    consent: Callable[..., dict[str, str]],
    xero_emulator: Any,
) -> None:
    """OAuth mix-up: an answer from Xero delivered to QuickBooks' callback finds no QuickBooks round trip."""
    tenant = xero_emulator.add_tenant("Mixed Up Ltd")
    params = consent(start_connect(client, token_of, signed_in.org_id, "xero"), [tenant], field="tenant")
    page = client.get(CALLBACK, query_string=params)
    assert page.status_code == 400
    assert "OAuth mix-up refused" in page.text
    assert connections(store, signed_in.org_id) == []
    assert client.get("/oauth/xero/callback", query_string=params).status_code == 303  # its own path still works


# --- A real browser: the dashboard button, the emulator's consent page, back on the dashboard ---


@pytest.mark.browser
def test_connect_quickbooks_in_a_real_browser(
    chromium_launch: dict[str, Any],
    settings: Settings,
    app: Flask,
    store: Store,
    make_user: Callable[..., Any],
    qbo_settings: ProviderSettings,
    qbo_emulator: Any,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    live: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: live["app"](environ, start), threaded=True)
    live_url = f"http://127.0.0.1:{server.server_port}"
    # The same database, vault key and session secret as `app`; QuickBooks calls back to the live server.
    quickbooks = replace(qbo_settings, redirect_uri=f"{live_url}/oauth/quickbooks/callback")
    live["app"] = create_app(replace(settings, providers={**settings.providers, "quickbooks": quickbooks}))
    thread = threading.Thread(target=server.serve_forever, name="nudge-live-server", daemon=True)
    thread.start()

    account = make_user("Browser Connect Ltd", Role.OWNER)
    realm = new_company(qbo_emulator, "Browser Books Inc")
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**chromium_launch)
            try:
                page = browser.new_page()
                page.set_default_timeout(15_000)
                ours = lambda url: url.startswith(live_url)  # noqa: E731 - the emulator's page is not ours
                page.on(
                    "console",
                    lambda m: (
                        problems.append(m.text) if m.type == "error" and ours(m.location.get("url", "")) else None
                    ),
                )
                page.on("pageerror", lambda error: problems.append(str(error)))

                page.goto(f"{live_url}/login")
                page.get_by_label("Email").fill(account.email)
                page.get_by_label("Password").fill(account.password)
                page.get_by_role("button", name="Sign in", exact=True).click()
                expect(page).to_have_url(f"{live_url}/orgs/{account.org_id}/")
                expect(page.get_by_text("No clients connected yet")).to_be_visible()

                page.get_by_role("button", name="Connect QuickBooks").click()
                expect(page.get_by_role("heading", name="Connect your QuickBooks company")).to_be_visible()
                assert page.url.startswith(f"{qbo_emulator.url}/connect/oauth2?")
                page.get_by_role("radio", name=f"Browser Books Inc ({realm})").check()
                page.get_by_role("button", name="Connect", exact=True).click()

                expect(page).to_have_url(f"{live_url}/orgs/{account.org_id}/")
                expect(page.get_by_role("status").filter(has_text="Connected Browser Books Inc")).to_be_visible()
                row = page.locator("tbody tr", has_text="Browser Books Inc")
                expect(row.locator(".provider")).to_have_text("QuickBooks Online")
                expect(row.locator(".badge", has_text="Waiting for your review")).to_be_visible()
                row.get_by_role("link", name="Browser Books Inc").click()  # the client's page
                expect(page.get_by_role("heading", name="Browser Books Inc", level=1)).to_be_visible()
                page.get_by_role("button", name="Disconnect…").click()  # asks for confirmation first
                expect(page.get_by_role("heading", name="Disconnect Browser Books Inc?")).to_be_visible()
                page.get_by_role("link", name="Cancel").click()
                expect(page).to_have_url(f"{live_url}/orgs/{account.org_id}/")
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
        live["app"].extensions[SERVICES_KEY].store.dispose()
    assert problems == []
    [connection] = connections(store, account.org_id)
    assert (connection.tenant_id, connection.status) == (realm, "active")
