"""RS-36 — SSRF: redirects from a provider's API, discovery or token endpoint to another host; a signed Xero
webhook whose `resourceUrl` points at `http://169.254.169.254/` or another host.

"Another host" is a second loopback name (`localhost` for a service configured as `127.0.0.1`) behind a small
redirecting server, so every hop is real HTTP and whether it was followed is visible in the emulator's log.
Production-mode allow-listing of configured base URLs is the configuration's part (not tested here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, Response, redirect, request

from connector.errors import ConfigError, Rejected
from connector.ports import ProviderSettings, TokenSet
from providers._emulator import serve
from providers.quickbooks import oauth
from providers.quickbooks.client import QboClient
from providers.quickbooks.emulator import EmulatorHandle
from providers.xero import webhooks as xero_webhooks
from providers.xero.adapter import XeroAdapter
from providers.xero.emulator.kit import XeroKit
from providers.xero.oauth import LocalTokenSource, tokens_from_response
from tests.support.quickbooks import Company, emulator_settings

XERO_KEY = "rs36-webhook-key"


@pytest.fixture
def redirector(qbo: EmulatorHandle) -> Iterator[tuple[str, list[str]]]:
    """A server that answers every request with a 307 to the same path on the emulator under `localhost`, and
    serves a discovery document whose endpoints are its own (so token calls meet the redirect too)."""
    other = qbo.url.replace("127.0.0.1", "localhost")
    hits: list[str] = []
    app = Flask("redirector")

    @app.get("/.well-known/rs36-discovery")
    def discovery() -> Response:
        base = request.host_url.rstrip("/")
        doc = {
            "issuer": base,
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
        }
        return Response(json.dumps(doc), mimetype="application/json")

    @app.route("/<path:path>", methods=["GET", "POST"])
    def elsewhere(path: str) -> Any:
        hits.append(path)
        query = f"?{request.query_string.decode()}" if request.query_string else ""
        return redirect(f"{other}/{path}{query}", code=307)

    with serve(app) as server:
        yield server.url, hits


def _settings(qbo: EmulatorHandle, **overrides: str) -> ProviderSettings:
    return replace(emulator_settings(qbo, retry_base_s=0.01, timeout_s=10, max_retries=1), **overrides)


def test_rs36_api_redirect_to_another_host_is_not_followed(
    qbo: EmulatorHandle, redirector: tuple[str, list[str]]
) -> None:
    """Redirects are not followed: a 307 from the API base gives a clear error; nothing reaches the other host."""
    url, hits = redirector
    company = Company(qbo, _settings(qbo))
    raw = company.invoice(company.customer("Redirect Ltd"), "10.00")
    adapter = company.adapter(client=QboClient(company.realm, company.tokens, _settings(qbo, api_base=f"{url}/v3")))
    with pytest.raises(Rejected, match="redirect to localhost") as info:
        adapter.get_invoice(raw["Id"])
    assert "does not follow redirects" in info.value.user_message
    assert len(hits) == 1
    assert company.data_calls() == 0


def test_rs36_discovery_redirect_is_not_followed(qbo: EmulatorHandle, redirector: tuple[str, list[str]]) -> None:
    """Redirects are not followed: the discovery document's 307 is an error; the other host is never asked."""
    url, hits = redirector
    before = len(qbo.core.calls())
    with pytest.raises(Rejected, match="redirect to localhost"):
        oauth.discovery_document(f"{url}/.well-known/openid_configuration")
    assert hits == [".well-known/openid_configuration"]
    assert len(qbo.core.calls()) == before


def test_rs36_token_endpoint_redirect_is_not_followed(qbo: EmulatorHandle, redirector: tuple[str, list[str]]) -> None:
    """Redirects are not followed: a 307 from the token endpoint (which would re-post the refresh token) fails."""
    url, hits = redirector
    settings = _settings(qbo, environment=f"{url}/.well-known/rs36-discovery")
    tokens = TokenSet("access", "refresh-token-value", datetime.now(UTC) + timedelta(hours=1))
    before = len(qbo.core.calls("oauth"))
    with pytest.raises(Rejected, match="redirect to localhost") as info:
        oauth.refresh(settings, tokens, datetime.now(UTC))
    assert "refresh-token-value" not in info.value.user_message
    assert hits == ["oauth2/v1/tokens/bearer"]
    assert len(qbo.core.calls("oauth")) == before


def test_rs36_no_process_wide_insecure_transport(qbo: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """No process-wide OAUTHLIB_INSECURE_TRANSPORT: plain http only for a loopback emulator, for that client."""
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    company = Company(qbo, _settings(qbo))
    raw = company.invoice(company.customer("Loopback Ltd"), "10.00")
    assert company.adapter().get_invoice(raw["Id"]) is not None
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    remote = QboClient(company.realm, company.tokens, _settings(qbo, api_base="http://qbo.example.com/v3"))
    with pytest.raises(ConfigError, match="https"):
        remote.company_info()
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


@pytest.fixture(scope="module")
def xero() -> Iterator[XeroKit]:
    with XeroKit(rate_limits=False) as kit:
        yield kit


@pytest.fixture
def trap() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    app = Flask("trap")

    @app.route("/<path:path>", methods=["GET", "POST", "PUT"])
    def caught(path: str) -> str:
        hits.append(path)
        return "{}"

    with serve(app) as server:
        yield server.url, hits


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "trap"])
def test_rs36_xero_webhook_resource_url_is_never_fetched(
    xero: XeroKit, trap: tuple[str, list[str]], target: str
) -> None:
    """No outbound request to that host; fetches are built from ids against the configured API host."""
    trap_url, hits = trap
    resource_url = f"{trap_url}/api.xro/2.0/Invoices" if target == "trap" else target
    tenant = xero.add_company("SSRF Org")
    customer = xero.add_customer(tenant, "SSRF Ltd", "ap@ssrf.example")
    invoice = xero.add_invoice(tenant, customer, "INV-36", Decimal("50.00"), "", date(2026, 1, 1), date(2026, 1, 31))
    event = {
        "resourceUrl": resource_url,
        "resourceId": invoice,
        "eventDateUtc": "2026-01-02T00:00:00.000",
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }
    body = json.dumps({"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}).encode()
    assert xero_webhooks.verify(body, xero.sign_webhook(body, XERO_KEY), XERO_KEY)
    [notice] = xero_webhooks.parse(body)
    assert notice.entity_id == invoice
    assert all(resource_url not in str(value) for value in (notice.tenant_id, notice.entity_id, notice.entity))
    settings = xero.settings("http://127.0.0.1:5000/oauth/xero/callback", retry_base_s=0.01)
    tokens = LocalTokenSource(settings, tokens_from_response(xero.grant(tenant), datetime.now(UTC)))
    fetched = XeroAdapter(tenant, tokens, settings).get_invoice(notice.entity_id)
    assert fetched is not None
    assert fetched.external_id == invoice
    assert hits == []
    assert any(invoice in call.path for call in xero.core.calls("data"))
