"""Where a person opens a QuickBooks record in QuickBooks Online itself (the ledger links on Nudge's pages).

`https://app.qbo.intuit.com/app/invoice?txnId=<Id>` opens an invoice, `/app/creditmemo?txnId=<Id>` a credit
memo, in the company the browser is signed in to; a sandbox company lives on `app.sandbox.qbo.intuit.com`.
Intuit documents no deep-link format; these are the URLs QuickBooks Online's own pages use, as integrators
rely on them [3p]: e.g. the CiviCRM extension com.joineryhq.fpptaqb (`fpptaqb.php`) links a synced credit memo as
`https://app.qbo.intuit.com/app/creditmemo?txnId=<Id>`, and public apps' invoice deep links switch to
`https://app.sandbox.qbo.intuit.com/app/invoice?txnId=<Id>` for a sandbox company (docs/provider-api-facts.md
names no UI host; the API's sandbox host differs the same way: sandbox-quickbooks.api.intuit.com).
An emulated company (environment = a discovery-document URL) gets the production links: the emulator has no
pages of its own.
"""

from __future__ import annotations

from urllib.parse import quote

from connector.ports import ProviderSettings

APP_HOST = "https://app.qbo.intuit.com"
SANDBOX_APP_HOST = "https://app.sandbox.qbo.intuit.com"
PAGES = {"invoice": "/app/invoice?txnId=", "credit": "/app/creditmemo?txnId="}


def ledger_url(settings: ProviderSettings, tenant_id: str, kind: str, external_id: str) -> str | None:
    """The QuickBooks Online page of record `external_id` (kind "invoice" or "credit"); None for another kind.
    QuickBooks ids are digits: anything else names no record (None)."""
    page = PAGES.get(kind)
    if page is None or not external_id.isdigit():
        return None
    sandbox = (settings.environment or "").strip().lower() in ("sandbox", "sand")
    return f"{SANDBOX_APP_HOST if sandbox else APP_HOST}{page}{quote(external_id, safe='')}"
