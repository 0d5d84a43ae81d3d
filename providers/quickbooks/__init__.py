"""QuickBooks Online provider: OAuth via intuit-oauth, the v3 API via python-quickbooks.

Modules, the same in every provider folder: constants (the provider's facts: key, hosts, limits,
lengths), oauth (tokens), client (HTTP with limits, retries, errors), mapping (JSON → snapshots),
adapter (AccountingAdapter, `build_adapter`, `connect`), webhooks (signature and payloads), links (pages
in the provider's own web app).
Settings read (ProviderSettings): client_id, client_secret, redirect_uri, webhook_key (the app's
Verifier Token), environment (production | sandbox | a discovery-document URL), api_base (default
constants.API_BASE), scopes, and options — see adapter.DEFAULT_OPTIONS and client.QboClient
(home_currency, late_fee_item_name, late_fee_income_account, late_fee_tax_code,
fee_doc_number_prefix, credit_item_name, credit_income_account, credit_doc_number_prefix,
rate_per_minute, max_concurrent, max_retries, retry_base_s, max_retry_after_s, timeout_s).
Importing this package does no IO.
"""

from connector.ports import ProviderSpec
from providers.quickbooks import links, oauth, openid, webhooks
from providers.quickbooks.adapter import build_adapter, connect
from providers.quickbooks.constants import DISPLAY_NAME, PROVIDER_KEY

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
    identity_name="Intuit",  # Intuit's button wording: "Sign in with Intuit" (docs/signin.md)
)

__all__ = ["PROVIDER"]
