"""QuickBooks Online facts in one place: key, hosts, limits, page sizes and field lengths.

Sources: docs/provider-api-facts.md §1; `[unverified]` marks a value that page does not confirm.
"""

from __future__ import annotations

from datetime import timedelta

PROVIDER_KEY = "quickbooks"
DISPLAY_NAME = "QuickBooks Online"

# Hosts. The API host is overridable per deployment (ProviderSettings.api_base: the emulator).
API_BASE = "https://quickbooks.api.intuit.com/v3"
MINOR_VERSION = 75  # anything lower is served as 75 since 2025-08-01 (docs/provider-api-facts.md §1.2)

# Limits per realm (docs/provider-api-facts.md §1.6): 500 requests a minute, 10 at once.
RATE_PER_MINUTE = 500
MAX_CONCURRENT = 10
MAX_RETRIES = 3
RETRY_BASE_S = 0.5
MAX_RETRY_AFTER_S = 60.0
TIMEOUT_S = 60.0
BATCH_MAX_ITEMS = 30  # items per batch call (docs/provider-api-facts.md §1.6)

# Paging and change data capture (docs/provider-api-facts.md §1.3, §1.4).
PAGE_SIZE = 1000  # MAXRESULTS maximum
CDC_WINDOW = timedelta(days=30)  # CDC looks back at most 30 days
CDC_MAX_OBJECTS = 1000  # per entity per CDC response

# Length limits.
REQUEST_ID_MAX = 50  # requestid ≤ 50 characters (docs/provider-api-facts.md §1.2)
PRIVATE_NOTE_MAX = 4000  # PrivateNote [unverified, docs/provider-api-facts.md §1.7]
DOC_NUMBER_MAX = 21
QBO_ID_MAX_DIGITS = 20

# Nudge's own marks in a company's books. FEE_MARKER sits in the PrivateNote of every late-fee invoice Nudge
# writes: any Nudge installation or organization syncing the same company recognises it (the DocNumber prefix
# is configurable per installation, so it cannot). NOTE_MARKER starts the per-key marker of an appended note.
FEE_MARKER = "[nudge:late-fee]"
NOTE_MARKER = "[nudge "

# Webhooks (docs/provider-api-facts.md §1.9).
SIGNATURE_HEADER = "intuit-signature"
