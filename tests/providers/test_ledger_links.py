"""Ledger links: where a person opens a record in QuickBooks Online or Xero (ProviderSpec.ledger_url)."""

from __future__ import annotations

import pytest

from connector.ports import ProviderSettings
from providers.quickbooks import PROVIDER as QUICKBOOKS
from providers.xero import PROVIDER as XERO


def settings(environment: str = "production") -> ProviderSettings:
    return ProviderSettings(key="x", client_id="id", client_secret="s", redirect_uri="", environment=environment)


def test_quickbooks_links_by_environment() -> None:
    assert QUICKBOOKS.ledger_url is not None
    link = QUICKBOOKS.ledger_url
    assert link(settings(), "123", "invoice", "130") == "https://app.qbo.intuit.com/app/invoice?txnId=130"
    assert (
        link(settings("sandbox"), "123", "invoice", "130") == "https://app.sandbox.qbo.intuit.com/app/invoice?txnId=130"
    )
    assert link(settings(), "123", "credit", "7") == "https://app.qbo.intuit.com/app/creditmemo?txnId=7"
    emulated = settings("http://127.0.0.1:5000/.well-known/openid_configuration")
    assert link(emulated, "123", "invoice", "1") == "https://app.qbo.intuit.com/app/invoice?txnId=1"


def test_xero_links() -> None:
    assert XERO.ledger_url is not None
    invoice_id = "243216c5-369e-4056-ac67-05388f86dc81"
    assert XERO.ledger_url(settings(), "t", "invoice", invoice_id) == (
        f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={invoice_id}"
    )
    assert XERO.ledger_url(settings(), "t", "credit", "c-1") == (
        "https://go.xero.com/AccountsReceivable/ViewCreditNote.aspx?creditNoteID=c-1"
    )


@pytest.mark.parametrize("spec", [QUICKBOOKS, XERO], ids=["quickbooks", "xero"])
@pytest.mark.parametrize(("kind", "ident"), [("payment", "1"), ("invoice", ""), ("invoice", "1&x=<script>")])
def test_no_link_for_another_kind_or_a_hostile_id(spec: object, kind: str, ident: str) -> None:
    link = spec.ledger_url(settings(), "t", kind, ident)  # type: ignore[attr-defined]
    assert link is None or ("<" not in link and "&x=" not in link)
