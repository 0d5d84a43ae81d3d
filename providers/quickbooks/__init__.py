"""QuickBooks Online provider: OAuth via intuit-oauth, the v3 API via python-quickbooks.

Settings read (ProviderSettings): client_id, client_secret, redirect_uri, webhook_key (the app's
Verifier Token), environment (production | sandbox | a discovery-document URL), api_base (default
https://quickbooks.api.intuit.com/v3), scopes, and options — see adapter.DEFAULT_OPTIONS and
client.QboClient (home_currency, late_fee_item_name, late_fee_income_account, late_fee_tax_code,
fee_doc_number_prefix, credit_item_name, credit_income_account, credit_doc_number_prefix,
rate_per_minute, max_concurrent, max_retries, retry_base_s, max_retry_after_s, timeout_s).
Importing this package does no IO.
"""

from connector.ports import ProviderSpec
from providers.quickbooks import oauth, webhooks
from providers.quickbooks.adapter import build_adapter

PROVIDER = ProviderSpec(
    key="quickbooks",
    display_name="QuickBooks Online",
    authorization_url=oauth.authorization_url,
    exchange_code=oauth.exchange_code,
    refresh=oauth.refresh,
    revoke=oauth.revoke,
    connect=oauth.connect,
    verify_webhook=webhooks.verify,
    parse_webhook=webhooks.parse,
    adapter=build_adapter,
    webhook_signature_header=webhooks.SIGNATURE_HEADER,
    supports_pkce=False,
)

__all__ = ["PROVIDER"]
