"""Xero facts in one place: key, hosts, scopes, limits, page sizes and field lengths.

Sources: docs/provider-api-facts.md §2; `[unverified]` marks a value that page does not confirm.
"""

from __future__ import annotations

from datetime import timedelta

PROVIDER_KEY = "xero"
DISPLAY_NAME = "Xero"

# Hosts. The identity host and the API host are overridable (ProviderSettings: the emulator).
AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"
REVOKE_URL = "https://identity.xero.com/connect/revocation"
CONNECTIONS_BASE = "https://api.xero.com"
API_BASE = "https://api.xero.com/api.xro/2.0"
DEFAULT_SCOPES = (
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.transactions",
    "accounting.contacts",
    "accounting.settings.read",
)

# OpenID Connect. Issuer and JWKS location of real Xero [unverified: not in docs/provider-api-facts.md; the
# discovery document at https://identity.xero.com/.well-known/openid-configuration names them].
ISSUER = "https://identity.xero.com"
JWKS_PATH = "/.well-known/openid-configuration/jwks"
JWKS_URL = f"{ISSUER}{JWKS_PATH}"
ID_TOKEN_LEEWAY = 120  # seconds of clock skew tolerated on exp / iat / nbf
REFRESH_TOKEN_LIFETIME = timedelta(days=60)  # docs/provider-api-facts.md §2.1: unused, it dies after 60 days

# Timeouts as (connect, read) seconds: identity calls are small, API reads can be large pages.
IDENTITY_TIMEOUT = (5, 30)
API_TIMEOUT = (5, 60)

# Limits per organisation (docs/provider-api-facts.md §2.4): 60 calls a minute, 5 at once, 5000 a day.
RATE_PER_MINUTE = 60
MAX_CONCURRENT = 5
MAX_LIMIT_WAIT_S = 5.0  # longer waits are handed back to the scheduler as RateLimited (option `max_wait_s`)
MAX_LIMIT_RETRIES = 4
MAX_TRANSIENT_RETRIES = 3

# Paging and length limits.
PAGE_SIZE = 1000  # docs/provider-api-facts.md §2.2: pageSize maximum 1000 [3p]
CONTACT_IDS_PER_CALL = 100  # keeps the query string short (Xero's URL limit is not documented)
HISTORY_DETAILS_MAX = 250  # [unverified] Xero "History and Notes": Details is at most 250 characters
IDEMPOTENCY_KEY_MAX = 128  # docs/provider-api-facts.md §2.4
REFERENCE_MAX = 255  # [unverified] an invoice's Reference (docs/provider-api-facts.md §2.2)
NOTE_RECORDS_MAX = 4  # history records one note may take; a longer note is truncated, never refused

# Nudge's own marks in an organisation's books. FEE_MARKER ends the Reference of every late-fee invoice Nudge
# writes: any Nudge installation or organization syncing the same organisation recognises it (the reference
# prefix is configurable per installation, so it cannot). NOTE_MARKER starts the per-key marker of a note.
FEE_MARKER = "[nudge:late-fee]"
NOTE_MARKER = "[nudge "

# Webhooks (docs/provider-api-facts.md §2.6).
SIGNATURE_HEADER = "x-xero-signature"
