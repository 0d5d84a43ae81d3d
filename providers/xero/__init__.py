"""Xero: Nudge's second provider (OAuth 2 + /connections, Accounting API through xero-python).

Modules, the same in every provider folder: constants (the provider's facts: key, hosts, limits,
lengths), oauth (tokens), client (HTTP with limits, retries, errors), mapping (JSON → snapshots),
adapter (AccountingAdapter, `build_adapter`, `connect`), webhooks (signature and payloads), links (pages
in the provider's own web app); and
openid (Sign in / up with Xero: ID-token verification).
Importing this package does no network and starts nothing; `PROVIDER` is read by connector.registry.
"""

from connector.ports import ProviderSpec
from providers.xero import links, oauth, openid, webhooks
from providers.xero.adapter import build_adapter, connect, disconnect_tenants
from providers.xero.constants import DISPLAY_NAME, PROVIDER_KEY

PROVIDER = ProviderSpec(
    key=PROVIDER_KEY,
    display_name=DISPLAY_NAME,
    authorization_url=oauth.authorization_url,
    exchange_code=oauth.exchange_code,
    refresh=oauth.refresh,
    revoke=oauth.revoke,
    connect=connect,
    verify_webhook=webhooks.verify,
    parse_webhook=webhooks.parse,
    adapter=build_adapter,
    webhook_signature_header=webhooks.SIGNATURE_HEADER,
    ledger_url=links.ledger_url,
    supports_pkce=True,
    identify=openid.identify,
    disconnect_tenants=disconnect_tenants,
)

__all__ = ["PROVIDER"]
