"""Nudge's settings for the webhook tests: both providers configured, only their webhook keys matter."""

from __future__ import annotations

from connector.config import Settings, settings_for_tests
from connector.ports import ProviderSettings


def webhook_settings(database_url: str, *, quickbooks_key: str, xero_key: str) -> Settings:
    """Test settings over `database_url` with QuickBooks and Xero verifying webhooks by these keys; their
    endpoints are unused ports (a webhook never calls the provider)."""
    quickbooks = ProviderSettings(
        key="quickbooks",
        client_id="client",
        client_secret="secret",
        redirect_uri="http://localhost/oauth/quickbooks/callback",
        webhook_key=quickbooks_key,
        environment="http://127.0.0.1:9/unused-discovery",
    )
    xero = ProviderSettings(
        key="xero",
        client_id="client",
        client_secret="secret",
        redirect_uri="http://localhost/oauth/xero/callback",
        webhook_key=xero_key,
        identity_base="http://127.0.0.1:9",
        api_base="http://127.0.0.1:9/api.xro/2.0",
    )
    return settings_for_tests(database_url, providers={"quickbooks": quickbooks, "xero": xero})
