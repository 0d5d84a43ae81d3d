"""Xero: Nudge's second provider (OAuth 2 + /connections, Accounting API through xero-python).

Importing this package does no network and starts nothing; `PROVIDER` is read by connector.registry.
"""

from connector.ports import ProviderSpec
from providers.xero import oauth, webhooks
from providers.xero.adapter import make_adapter

PROVIDER = ProviderSpec(
    key="xero",
    display_name="Xero",
    authorization_url=oauth.authorization_url,
    exchange_code=oauth.exchange_code,
    refresh=oauth.refresh,
    revoke=oauth.revoke,
    connect=oauth.connect,
    verify_webhook=webhooks.verify,
    parse_webhook=webhooks.parse,
    adapter=make_adapter,
    webhook_signature_header=webhooks.SIGNATURE_HEADER,
    supports_pkce=True,
    identify=oauth.identify,
)

__all__ = ["PROVIDER"]
