"""Write-back through the SDK: notes, fee invoices, credits, voids, PDF, online link, email, reminders flag."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import Rejected
from providers.xero.adapter import XeroAdapter, split_note
from tests.support.xero import Connected, admin, data_calls


def _invoice(connected: Connected, index: int) -> InvoiceSnapshot:
    invoice = connected.adapter.get_invoice(connected.seeded["invoices"][index])
    assert invoice is not None
    return invoice


def _history(connected: Connected, invoice_id: str) -> list[dict]:
    return admin(connected.xero, f"tenants/{connected.tenant}/invoices/{invoice_id}", method="GET")["history"]


def test_note_is_split_to_the_details_limit_and_replayed_by_key(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    text = "Reminder sent. " * 40  # ~600 characters
    result = connected.adapter.add_note(invoice, text, "note-key-1")
    again = connected.adapter.add_note(invoice, text, "note-key-1")
    notes = [h for h in _history(connected, invoice.external_id) if h["Changes"] == "Note"]
    assert len(notes) == len(split_note(text)) == 3
    assert all(len(n["Details"]) <= 250 for n in notes)
    assert notes[0]["Details"].startswith("[1/3] Reminder sent.")
    assert result.external_ref == invoice.external_id
    assert again.replayed


def test_fee_invoice_is_created_once_and_found_by_reference(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    first = connected.adapter.create_fee_invoice(invoice, Money.of("12.50", "NZD"), "Late fee (2% of 100.00)", "fee-1")
    fee = connected.adapter.get_invoice(first.external_ref)
    assert fee is not None
    assert fee.status is InvoiceStatus.OPEN
    assert fee.total == Money.of("12.50", "NZD")
    assert fee.customer_external_id == invoice.customer_external_id
    assert fee.due_date == fee.issue_date
    shown = admin(connected.xero, f"tenants/{connected.tenant}/invoices/{first.external_ref}", method="GET")["invoice"]
    assert shown["Reference"].startswith("Late fee for INV-0001")
    assert shown["Reference"].endswith(" [nudge:late-fee]")  # Nudge's marker: any Nudge knows it for a fee
    assert fee.created_by_nudge
    assert not invoice.created_by_nudge
    assert shown["LineItems"][0]["AccountCode"] == "260"
    assert shown["LineItems"][0]["TaxType"] == "NONE"
    (put,) = [c for c in data_calls(connected.xero) if c.method == "PUT"]
    assert put.request_id == "fee-1"  # Idempotency-Key
    # A retry after a lost answer finds the invoice by its reference instead of creating another.
    again = connected.adapter.create_fee_invoice(invoice, Money.of("12.50", "NZD"), "Late fee", "fee-1")
    assert again.external_ref == first.external_ref
    assert again.replayed
    assert len([c for c in data_calls(connected.xero) if c.method == "PUT"]) == 1


def test_fee_written_before_the_marker_existed_is_found_not_written_again(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    tag = hashlib.sha256(b"legacy-fee").hexdigest()[:10]
    legacy = {
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": invoice.customer_external_id},
        "Reference": f"Late fee for {invoice.number} ({tag})",
        "Date": "2024-02-01",
        "DueDate": "2024-02-01",
        "LineItems": [{"Description": "Late fee", "Quantity": 1, "UnitAmount": "9.00", "AccountCode": "260"}],
    }
    seeded = admin(connected.xero, "seed", {"tenants": [{"tenantId": connected.tenant, "invoices": [legacy]}]})
    [legacy_id] = seeded["tenants"][0]["invoices"]
    before = len(data_calls(connected.xero))
    again = connected.adapter.create_fee_invoice(invoice, Money.of("9.00", "NZD"), "Late fee", "legacy-fee")
    assert (again.external_ref, again.replayed) == (legacy_id, True)
    assert [c.method for c in data_calls(connected.xero)[before:]] == ["GET"]  # one lookup finds either reference


def test_note_ends_with_its_key_marker_and_is_found_in_the_history(connected: Connected) -> None:
    invoice = _invoice(connected, 1)
    connected.adapter.add_note(invoice, "Reminder sent.", "history-key")
    [note] = [h for h in _history(connected, invoice.external_id) if h["Changes"] == "Note"]
    assert note["Details"] == f"Reminder sent. [nudge {hashlib.sha256(b'history-key').hexdigest()[:8]}]"
    assert note["DateUTC"]  # Xero dates every history record itself
    before = len(data_calls(connected.xero))
    assert connected.adapter.add_note(invoice, "Reminder sent.", "history-key").replayed
    assert [c.method for c in data_calls(connected.xero)[before:]] == ["GET"]  # the history read; no PUT


def test_a_long_note_is_cut_to_four_records_not_refused(connected: Connected) -> None:
    invoice = _invoice(connected, 2)
    connected.adapter.add_note(invoice, "word " * 2000, "huge-note")
    notes = [h for h in _history(connected, invoice.external_id) if h["Changes"] == "Note"]
    assert len(notes) == 4
    assert all(len(n["Details"]) <= 250 for n in notes)
    assert notes[-1]["Details"].startswith("[4/4] ")
    assert "… [nudge " in notes[-1]["Details"]


def test_idempotency_key_replays_the_first_answer(connected: Connected) -> None:
    invoice = _invoice(connected, 1)
    adapter = connected.adapter
    first = adapter.create_fee_invoice(invoice, Money.of("5.00", "NZD"), "Late fee", "fee-replay")
    # Bypass the look-up: the same key sent again is answered from Xero's idempotency store.
    from xero_python.accounting import Contact, Invoice, Invoices, LineItem

    body = Invoices(
        invoices=[
            Invoice(
                type="ACCREC",
                contact=Contact(contact_id=invoice.customer_external_id),
                line_items=[LineItem(description="x", quantity=Decimal(1), unit_amount=Decimal(5), account_code="260")],
                status="AUTHORISED",
                due_date=invoice.due_date,
            )
        ]
    )
    answer = adapter.client.call("create_invoices", body, idempotency_key="fee-replay")
    assert answer.json()["Invoices"][0]["InvoiceID"] == first.external_ref


def test_credit_note_allocated_to_the_invoice(connected: Connected) -> None:
    invoice = _invoice(connected, 1)  # Fred, 250.50
    result = connected.adapter.create_credit(invoice, Money.of("10.50", "NZD"), "Early-payment discount", "disc-1")
    after = connected.adapter.get_invoice(invoice.external_id)
    assert after is not None
    assert after.balance == Money.of("240.00", "NZD")
    again = connected.adapter.create_credit(invoice, Money.of("10.50", "NZD"), "Early-payment discount", "disc-1")
    assert again.external_ref == result.external_ref
    assert again.replayed
    assert connected.adapter.get_invoice(invoice.external_id).balance == Money.of("240.00", "NZD")  # type: ignore[union-attr]
    # A credit for the whole remaining balance closes the invoice.
    connected.adapter.create_credit(after, Money.of("240.00", "NZD"), "Discount remainder", "disc-2")
    assert connected.adapter.get_invoice(invoice.external_id).status is InvoiceStatus.PAID  # type: ignore[union-attr]


def test_no_line_changes_once_a_credit_is_allocated(connected: Connected) -> None:
    invoice = _invoice(connected, 1)
    connected.adapter.create_credit(invoice, Money.of("1.00", "NZD"), "Discount", "disc-3")
    from xero_python.accounting import Invoice, Invoices, LineItem

    change = Invoices(
        invoices=[
            Invoice(
                line_items=[LineItem(description="x", quantity=Decimal(1), unit_amount=Decimal(9), account_code="200")]
            )
        ]
    )
    with pytest.raises(Rejected) as info:
        connected.adapter.client.call("update_invoice", invoice.external_id, change)
    assert "Invoice not of valid status for modification" in info.value.user_message


def test_void_fee_invoice(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    fee = connected.adapter.create_fee_invoice(invoice, Money.of("3.00", "NZD"), "Late fee", "fee-void")
    connected.adapter.void_fee_invoice(fee.external_ref, "void-1")
    voided = admin(connected.xero, f"tenants/{connected.tenant}/invoices/{fee.external_ref}", method="GET")["invoice"]
    assert voided["Status"] == "VOIDED"
    assert connected.adapter.void_fee_invoice(fee.external_ref, "void-1").replayed


def test_void_is_refused_once_paid(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    fee = connected.adapter.create_fee_invoice(invoice, Money.of("3.00", "NZD"), "Late fee", "fee-paid")
    admin(connected.xero, "payments", {"tenant": connected.tenant, "invoice": fee.external_ref, "amount": "1.00"})
    with pytest.raises(Rejected):
        connected.adapter.void_fee_invoice(fee.external_ref, "void-2")


def test_pdf_link_and_email(connected: Connected) -> None:
    invoice = _invoice(connected, 0)
    pdf = connected.adapter.invoice_pdf(invoice)
    assert pdf is not None
    assert pdf.startswith(b"%PDF")
    assert b"INV-0001" in pdf
    link = connected.adapter.payment_link(invoice)
    assert link is not None
    assert link.startswith(connected.xero.url)
    result = connected.adapter.send_via_provider(invoice, "betty@rubble.example", "mail-1")
    assert result.external_ref == invoice.external_id
    emails = admin(connected.xero, f"tenants/{connected.tenant}", method="GET")["emails"]
    assert emails[0]["to"] == ["barney@rubble.example", "betty@rubble.example"]
    with pytest.raises(Rejected):
        connected.adapter.send_via_provider(invoice, "stranger@example.com", "mail-2")


def test_draft_has_no_online_invoice(connected: Connected) -> None:
    draft = connected.adapter.get_invoice(connected.seeded["invoices"][3])
    assert draft is not None
    assert draft.status is InvoiceStatus.DRAFT
    assert connected.adapter.payment_link(draft) is None


def test_provider_reminders_flag(connected: Connected) -> None:
    assert connected.adapter.provider_reminders_enabled() is False
    admin(connected.xero, "reminders", {"tenant": connected.tenant, "enabled": True})
    assert connected.adapter.provider_reminders_enabled() is True


def test_get_invoice_none_when_deleted_or_unknown(connected: Connected) -> None:
    admin(
        connected.xero,
        "invoices/update",
        {"tenant": connected.tenant, "invoice": connected.seeded["invoices"][3], "changes": {"Status": "DELETED"}},
    )
    assert connected.adapter.get_invoice(connected.seeded["invoices"][3]) is None
    assert connected.adapter.get_invoice("00000000-0000-4000-8000-000000000000") is None


def test_repr_hides_tokens(connected: Connected) -> None:
    text = repr(connected.adapter) + repr(connected.adapter.client) + repr(connected.tokens)
    token = connected.tokens.current()
    assert token.access_token not in text
    assert token.refresh_token not in text
    assert isinstance(connected.adapter, XeroAdapter)
