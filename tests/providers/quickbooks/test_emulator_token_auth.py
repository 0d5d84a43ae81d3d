"""The emulator's token endpoint authenticates the client both ways its discovery document advertises, as Intuit
does: `client_secret_basic` (intuit-oauth) and `client_secret_post` (requests-oauthlib, as tap-quickbooks uses it);
neither, or a wrong secret either way, is 401 invalid_client. Also: tap-quickbooks' session, redirected to the
emulator by the bench's wrapper, refreshes its token and reads the company."""

from __future__ import annotations

import base64
import types
from typing import Any

import pytest
import requests
from requests_oauthlib import OAuth2Session

from bench.taps.run_tap_quickbooks import redirect
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle

INVALID_CLIENT = {"error_description": "Client authentication failed", "error": "invalid_client"}


def _grant(qbo: EmulatorHandle) -> tuple[str, dict[str, Any]]:
    realm = qbo.store.add_company("Token Auth Co").realm
    return realm, requests.post(f"{qbo.url}/__admin/companies/{realm}/tokens", timeout=5).json()


def _token_endpoint(qbo: EmulatorHandle) -> str:
    return str(requests.get(f"{qbo.url}/.well-known/openid_configuration", timeout=5).json()["token_endpoint"])


def _post(qbo: EmulatorHandle, method: str, form: dict[str, str], secret: str = DEFAULT_CLIENT_SECRET) -> Any:
    """A token request authenticating the client by `method` (a discovery document name)."""
    if method == "client_secret_basic":
        return requests.post(_token_endpoint(qbo), auth=(DEFAULT_CLIENT_ID, secret), data=form, timeout=5)
    credentials = {"client_id": DEFAULT_CLIENT_ID, "client_secret": secret}
    return requests.post(_token_endpoint(qbo), data={**form, **credentials}, timeout=5)


def test_discovery_advertises_both_client_authentication_methods(qbo: EmulatorHandle) -> None:
    document = requests.get(f"{qbo.url}/.well-known/openid_configuration", timeout=5).json()
    assert sorted(document["token_endpoint_auth_methods_supported"]) == ["client_secret_basic", "client_secret_post"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_refresh_with_either_method_rotates_the_tokens(qbo: EmulatorHandle, method: str) -> None:
    realm, grant = _grant(qbo)
    answer = _post(qbo, method, {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["refresh_token"] != grant["refresh_token"]
    assert qbo.emulator.oauth.authorize(body["access_token"], realm) == ""


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_code_exchange_with_either_method(qbo: EmulatorHandle, method: str) -> None:
    realm = qbo.store.add_company("Code Co").realm
    redirect_uri = "http://127.0.0.1:9/callback"
    code = qbo.emulator.oauth.issue_code(realm, DEFAULT_CLIENT_ID, ("com.intuit.quickbooks.accounting",), redirect_uri)
    answer = _post(qbo, method, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})
    assert answer.status_code == 200, answer.text
    assert qbo.emulator.oauth.authorize(answer.json()["access_token"], realm) == ""


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_wrong_secret_is_invalid_client_either_way(qbo: EmulatorHandle, method: str) -> None:
    _, grant = _grant(qbo)
    form = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    answer = _post(qbo, method, form, secret="not-the-secret")
    assert (answer.status_code, answer.json()) == (401, INVALID_CLIENT)
    assert _post(qbo, method, form).status_code == 200  # the rejected request spent nothing


@pytest.mark.parametrize(
    ("headers", "credentials"),
    [
        ({}, {}),  # no client authentication at all
        ({}, {"client_id": DEFAULT_CLIENT_ID}),  # an id without its secret
        ({}, {"client_id": "unknown-app", "client_secret": DEFAULT_CLIENT_SECRET}),
        ({"Authorization": "Basic !!not-base64!!"}, {}),
        ({"Authorization": "Bearer some-token"}, {}),  # a header that is not Basic does not fall back to the form
    ],
)
def test_missing_or_malformed_client_credentials_are_invalid_client(
    qbo: EmulatorHandle, headers: dict[str, str], credentials: dict[str, str]
) -> None:
    _, grant = _grant(qbo)
    form = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"], **credentials}
    answer = requests.post(_token_endpoint(qbo), headers=headers, data=form, timeout=5)
    assert (answer.status_code, answer.json()) == (401, INVALID_CLIENT)


def test_basic_header_wins_over_form_credentials(qbo: EmulatorHandle) -> None:
    """Two methods at once (RFC 6749 §2.3 allows one): the emulator judges the header; Intuit's way is unverified."""
    _, grant = _grant(qbo)
    basic = base64.b64encode(f"{DEFAULT_CLIENT_ID}:wrong".encode()).decode()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": grant["refresh_token"],
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    answer = requests.post(_token_endpoint(qbo), headers={"Authorization": f"Basic {basic}"}, data=form, timeout=5)
    assert (answer.status_code, answer.json()) == (401, INVALID_CLIENT)


def test_tap_quickbooks_session_redirected_by_the_wrapper_refreshes_and_reads(
    qbo: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tap-quickbooks' own session set-up (QuickbooksClient.create_session, not dev mode), pointed at the emulator
    through `tap_quickbooks.client`'s globals the way bench/taps/run_tap_quickbooks.py sets them."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http to the loopback emulator
    realm, grant = _grant(qbo)
    client_module = types.SimpleNamespace(
        PROD_ENDPOINT_BASE="https://quickbooks.api.intuit.com",
        SANDBOX_ENDPOINT_BASE="https://sandbox-quickbooks.api.intuit.com",
        TOKEN_REFRESH_URL="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    )
    redirect(client_module, qbo.url)
    refreshed: list[dict[str, Any]] = []
    session = OAuth2Session(
        DEFAULT_CLIENT_ID,
        token={
            "refresh_token": grant["refresh_token"],
            "token_type": "Bearer",
            "access_token": "wrong",
            "expires_in": "-30",
        },
        auto_refresh_url=client_module.TOKEN_REFRESH_URL,
        auto_refresh_kwargs={"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET},
        token_updater=refreshed.append,
    )
    qbo.core.clear_calls()
    answer = session.get(f"{client_module.PROD_ENDPOINT_BASE}/v3/company/{realm}/companyinfo/{realm}", timeout=5)
    assert answer.status_code == 200, answer.text
    assert len(refreshed) == 1
    assert [(call.category, call.status) for call in qbo.core.calls()] == [("oauth", 200), ("data", 200)]
