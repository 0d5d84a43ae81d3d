"""RS-22 — QuickBooks 5010 stale SyncToken on a sparse `PrivateNote` update: the emulator's knob lets a user edit
the invoice (another field; the SyncToken bumps, as a Payment would) right after Nudge reads it."""

from __future__ import annotations

import pytest
import requests

from connector.errors import Rejected
from providers.quickbooks.client import StaleObject
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company, emulator_company


@pytest.fixture
def company(qbo: EmulatorHandle) -> Company:
    return emulator_company(qbo, retry_base_s=0.01, timeout_s=10)


def _edit_after_reads(qbo: EmulatorHandle, company: Company, invoice: str, *memos: str) -> None:
    edits = [{"CustomerMemo": {"value": memo}} for memo in memos]
    requests.post(
        f"{qbo.url}/__admin/companies/{company.realm}/invoices/{invoice}/edit-after-read",
        json={"edits": edits},
        timeout=5,
    ).raise_for_status()


def _updates(qbo: EmulatorHandle, company: Company) -> list[int]:
    calls = qbo.core.calls("data", company.realm)
    return [c.status for c in calls if c.method == "POST" and c.path.endswith("/invoice")]


def test_rs22_stale_note_update_is_reread_reapplied_and_retried_once(qbo: EmulatorHandle, company: Company) -> None:
    """Re-read, re-apply the note, retry once, succeed; a concurrent user edit to another field is preserved."""
    raw = company.invoice(company.customer("Stale Ltd", "ap@stale.example"), "75.00", PrivateNote="Call first")
    adapter = company.adapter()
    invoice = adapter.get_invoice(raw["Id"])
    assert invoice is not None
    _edit_after_reads(qbo, company, raw["Id"], "Paid part by cheque (user)")
    adapter.add_note(invoice, "Reminder 1 sent", "note-rs22")
    after = qbo.store.read(company.realm, "Invoice", raw["Id"])
    assert after["CustomerMemo"] == {"value": "Paid part by cheque (user)"}
    assert after["PrivateNote"].startswith("Call first\n")
    assert after["PrivateNote"].count("Reminder 1 sent") == 1
    assert _updates(qbo, company) == [400, 200]  # one 5010, one successful retry


def test_rs22_a_second_5010_surfaces_an_error_rather_than_looping(qbo: EmulatorHandle, company: Company) -> None:
    """A second 5010 surfaces an error rather than looping."""
    raw = company.invoice(company.customer("Busy Ltd", "ap@busy.example"), "75.00")
    adapter = company.adapter()
    invoice = adapter.get_invoice(raw["Id"])
    assert invoice is not None
    _edit_after_reads(qbo, company, raw["Id"], "edit 1", "edit 2", "edit 3")
    with pytest.raises(StaleObject) as info:
        adapter.add_note(invoice, "Reminder 1 sent", "note-rs22-b")
    assert isinstance(info.value, Rejected)
    assert "5010" in info.value.user_message
    assert _updates(qbo, company) == [400, 400]
    assert "Reminder 1 sent" not in str(qbo.store.read(company.realm, "Invoice", raw["Id"]).get("PrivateNote") or "")
