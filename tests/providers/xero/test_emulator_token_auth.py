"""tap-xero's token refresh against the emulator: Basic client credentials and a form-encoded refresh_token grant
posted to Xero's identity host, which the bench's wrapper (bench/taps/run_tap_xero.py) sends to the emulator;
then an API read at the redirected BASE_URL. The emulator takes the client credentials either way its discovery
document advertises, and answers Xero's 400 invalid_client to a wrong secret."""

from __future__ import annotations

import types
from base64 import b64encode
from os.path import join
from typing import Any

import pytest
import requests

from bench.taps.run_tap_xero import XERO_IDENTITY, redirect
from providers.xero.emulator import XeroEmulator
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.support.xero import seed_basic


class _XeroClient:
    """tap-xero 2.6.0's XeroClient.__init__, whose session the wrapper redirects."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.session = requests.Session()


def _tap_refresh(session: requests.Session, refresh_token: str, secret: str = DEFAULT_CLIENT_SECRET) -> Any:
    """tap-xero's XeroClient.refresh_credentials request, as it builds it."""
    header_token = b64encode((DEFAULT_CLIENT_ID + ":" + secret).encode("utf-8"))
    headers = {
        "Authorization": "Basic " + header_token.decode("utf-8"),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    post_body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return session.post(f"{XERO_IDENTITY}connect/token", headers=headers, data=post_body, timeout=5)


@pytest.fixture
def tap_client(xero: XeroEmulator) -> types.SimpleNamespace:
    module = types.SimpleNamespace(BASE_URL="https://api.xero.com/api.xro/2.0", XeroClient=_XeroClient)
    redirect(module, xero.url)
    return module


def test_tap_xero_refresh_reaches_the_emulator_and_reads_invoices(
    xero: XeroEmulator, tap_client: types.SimpleNamespace
) -> None:
    tenant = seed_basic(xero)["tenantId"]
    grant = xero.grant([tenant])
    client = tap_client.XeroClient({})
    refreshed = _tap_refresh(client.session, grant["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != grant["refresh_token"]
    headers = {"Accept": "application/json", "Authorization": "Bearer " + refreshed.json()["access_token"]}
    request = requests.Request(
        "GET", join(tap_client.BASE_URL, "Invoices"), headers={**headers, "Xero-tenant-id": tenant}
    )
    answer = client.session.send(request.prepare(), timeout=5)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["Invoices"]) == 4
    assert [call.category for call in xero.core.calls()][-1] == "data"


def test_a_wrong_secret_is_xeros_invalid_client(xero: XeroEmulator, tap_client: types.SimpleNamespace) -> None:
    grant = xero.grant([seed_basic(xero)["tenantId"]])
    refused = _tap_refresh(tap_client.XeroClient({}).session, grant["refresh_token"], secret="not-the-secret")
    assert (refused.status_code, refused.json()) == (400, {"error": "invalid_client"})


def test_form_body_credentials_are_accepted_too(xero: XeroEmulator) -> None:
    document = requests.get(f"{xero.url}/.well-known/openid-configuration", timeout=5).json()
    assert "client_secret_post" in document["token_endpoint_auth_methods_supported"]
    grant = xero.grant([seed_basic(xero)["tenantId"]])
    form = {
        "grant_type": "refresh_token",
        "refresh_token": grant["refresh_token"],
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    answer = requests.post(document["token_endpoint"], data=form, timeout=5)
    assert answer.status_code == 200, answer.text
