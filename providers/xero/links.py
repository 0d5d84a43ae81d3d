"""Where a person opens a Xero record in Xero itself (the ledger links on Nudge's pages).

`https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=<InvoiceID>` opens a sales invoice and
`/AccountsReceivable/ViewCreditNote.aspx?creditNoteID=<CreditNoteID>` a sales credit note, in the organisation the
browser has selected. Xero documents no deep-link format; Xero's own MCP server builds such `go.xero.com/...aspx`
links (github.com/XeroAPI/xero-mcp-server `src/consts/deeplinks.ts`, e.g. `/Bank/ViewTransaction.aspx?
bankTransactionID=`), and these two paths are the ones integrators use for receivables [3p]. The newer
`go.xero.com/app/<shortCode>/invoicing/view/<id>` form needs the organisation's ShortCode, which Nudge does not
store. Xero has no separate sandbox host (a demo company is an organisation like any other).
"""

from __future__ import annotations

from urllib.parse import quote

from connector.ports import ProviderSettings

APP_HOST = "https://go.xero.com"
PAGES = {
    "invoice": "/AccountsReceivable/View.aspx?InvoiceID=",
    "credit": "/AccountsReceivable/ViewCreditNote.aspx?creditNoteID=",
}


def ledger_url(settings: ProviderSettings, tenant_id: str, kind: str, external_id: str) -> str | None:
    """The Xero page of record `external_id` (kind "invoice" or "credit"); None for another kind or no id."""
    page = PAGES.get(kind)
    if page is None or not external_id.strip():
        return None
    return f"{APP_HOST}{page}{quote(external_id.strip(), safe='')}"
