"""Write-back: notes, fee invoices, fee lines, credits, voids, PDF, payment link, /send — exactly once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.domain.model import InvoiceSnapshot, InvoiceStatus
from connector.domain.money import Money
from connector.errors import StorageError
from providers._emulator import Fault
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company

USD = "USD"


def snapshot(company: Company, amount: str = "200.00", **fields: object) -> InvoiceSnapshot:
    cust = company.customer(f"Customer {len(company.entities('Customer'))}", "ap@customer.example")
    raw = company.invoice(cust, amount, **fields)
    inv = company.adapter().get_invoice(raw["Id"])
    assert inv is not None
    return inv


def test_note_is_appended_once_per_key(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company, PrivateNote="Existing memo")
    adapter = company.adapter()
    first = adapter.add_note(inv, "Reminder 1 sent to ap@customer.example", "note-key-1")
    again = adapter.add_note(inv, "Reminder 1 sent to ap@customer.example", "note-key-1")
    adapter.add_note(inv, "Reminder 2 sent", "note-key-2")
    assert not first.replayed
    assert again.replayed
    note = qbo.store.read(company.realm, "Invoice", inv.external_id)["PrivateNote"]
    lines = note.split("\n")
    assert lines[0] == "Existing memo"
    assert len(lines) == 3
    # Dated in the company's own offset (its answers' `time`), not by this machine's UTC date.
    today = qbo.store.today(qbo.store.company(company.realm)).isoformat()
    assert lines[1] == f"{today} Reminder 1 sent to ap@customer.example [nudge 6cd1c398]"
    assert lines[2].startswith(f"{today} Reminder 2 sent [nudge ")
    # other fields untouched by the raw sparse update
    after = qbo.store.read(company.realm, "Invoice", inv.external_id)
    assert after["TotalAmt"] == 200.0
    assert after["EmailStatus"] == "NotSet"
    assert after["SyncToken"] == "2"


def test_note_stays_within_4000_characters(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company, PrivateNote="x" * 3990)
    company.adapter().add_note(inv, "y" * 500, "long-note")
    note = qbo.store.read(company.realm, "Invoice", inv.external_id)["PrivateNote"]
    assert len(note) <= 4000
    assert "y" * 500 in note


def test_a_note_longer_than_the_field_is_cut_not_refused(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    text = "Late fee of 25.00 charged: " + "because the invoice is overdue " * 200  # ~6,000 characters
    result = company.adapter().add_note(inv, text, "huge-note")
    again = company.adapter().add_note(inv, text, "huge-note")
    note = qbo.store.read(company.realm, "Invoice", inv.external_id)["PrivateNote"]
    assert len(note) == 4000
    assert "Late fee of 25.00 charged: because" in note
    assert note.endswith(" [nudge 04013b85]")  # the key's marker survives the cut: a replay still finds it
    assert (result.replayed, again.replayed) == (False, True)


def test_fee_marker_survives_notes_filling_the_field(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    fee = company.adapter().get_invoice(
        company.adapter().create_fee_invoice(inv, Money.of("5.00", USD), "Late fee", "fee-for-notes").external_ref
    )
    assert fee is not None
    assert fee.created_by_nudge
    for n in range(3):
        company.adapter().add_note(fee, f"note {n} " + "z" * 1990, f"fill-{n}")
    after = company.adapter().get_invoice(fee.external_id)
    note = qbo.store.read(company.realm, "Invoice", fee.external_id)["PrivateNote"]
    assert len(note) <= 4000
    assert note.startswith("[nudge:late-fee] …")
    assert after is not None
    assert after.created_by_nudge


def test_note_retries_once_on_stale_synctoken(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    adapter = company.adapter()
    real_read = adapter.client.read
    raced = []

    def racing_read(entity: str, ident: str, params: dict[str, str] | None = None) -> dict:
        raw = real_read(entity, ident, params)
        if not raced:  # a user edits the invoice between our read and our write
            raced.append(1)
            qbo.store.update(
                company.realm,
                "Invoice",
                {"Id": ident, "SyncToken": raw["SyncToken"], "sparse": True, "CustomerMemo": {"value": "edited"}},
            )
        return raw

    adapter.client.read = racing_read  # type: ignore[method-assign]
    result = adapter.add_note(inv, "after a race", "race-key")
    assert not result.replayed
    after = qbo.store.read(company.realm, "Invoice", inv.external_id)
    assert "after a race" in after["PrivateNote"]
    assert after["CustomerMemo"] == {"value": "edited"}
    stale = [c for c in qbo.core.calls("data", company.realm) if c.status == 400]
    assert len(stale) == 1


def test_fee_invoice_created_once_with_item_and_reference(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    adapter = company.adapter()
    fee = adapter.create_fee_invoice(inv, Money.of("25.00", USD), "Late fee (5% of 500.00)", "fee-key-1")
    raw = qbo.store.read(company.realm, "Invoice", fee.external_ref)
    assert raw["DocNumber"].startswith(f"LF-{inv.number}-")
    assert len(raw["DocNumber"]) <= 21
    assert raw["CustomerRef"]["value"] == inv.customer_external_id
    assert raw["TotalAmt"] == 25.0
    assert raw["DueDate"] == raw["TxnDate"]
    assert inv.number in raw["PrivateNote"]
    items = [i for i in company.entities("Item") if i["Name"] == "Late fee"]
    assert len(items) == 1
    assert raw["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == items[0]["Id"]
    account = qbo.store.read(company.realm, "Account", items[0]["IncomeAccountRef"]["value"])
    assert account["Name"] == "Late fee income"
    assert account["AccountType"] == "Other Income"
    # Nudge's marker leads the fee's PrivateNote: every Nudge syncing this company knows it for a fee
    assert raw["PrivateNote"].startswith("[nudge:late-fee] Late fee for invoice")
    fee_invoice = company.adapter().get_invoice(raw["Id"])
    assert fee_invoice is not None
    assert fee_invoice.created_by_nudge
    assert not inv.created_by_nudge
    # a second fee on another invoice reuses the item (created once)
    other = snapshot(company)
    company.adapter().create_fee_invoice(other, Money.of("10.00", USD), "Late fee", "fee-key-2")
    assert len([i for i in company.entities("Item") if i["Name"] == "Late fee"]) == 1


def test_replaying_every_write_creates_nothing_new(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company, "300.00")
    fee_source = snapshot(company, "100.00")

    def run_all() -> list[str]:
        adapter = company.adapter()  # a fresh adapter, as after a worker restart
        fee = adapter.create_fee_invoice(inv, Money.of("15.00", USD), "Late fee", "k-fee")
        refs = [
            adapter.add_note(inv, "noted", "k-note").external_ref,
            fee.external_ref,
            adapter.create_credit(inv, Money.of("20.00", USD), "Early payment discount", "k-credit").external_ref,
            adapter.add_fee_line(inv, Money.of("5.00", USD), "Late fee line", "k-line").external_ref,
            adapter.send_via_provider(inv, "ap@customer.example", "k-send").external_ref,
        ]
        other_fee = adapter.create_fee_invoice(fee_source, Money.of("9.00", USD), "Late fee", "k-fee-2")
        refs.append(adapter.void_fee_invoice(other_fee.external_ref, "k-void").external_ref)
        return refs

    first = run_all()
    counts = {e: len(company.entities(e)) for e in ("Invoice", "CreditMemo", "Payment", "Item", "Account")}
    state = qbo.store.read(company.realm, "Invoice", inv.external_id)
    second = run_all()
    assert second == first
    assert {e: len(company.entities(e)) for e in counts} == counts
    after = qbo.store.read(company.realm, "Invoice", inv.external_id)
    assert after["PrivateNote"] == state["PrivateNote"]
    assert after["Balance"] == state["Balance"]
    assert len(after["Line"]) == len(state["Line"])


def test_requestid_replay_alone_prevents_duplicates(qbo: EmulatorHandle, company: Company) -> None:
    """Even without the DocNumber lookup, the same requestid answers the original response."""
    inv = snapshot(company)
    adapter = company.adapter()
    adapter._find_one = lambda *a: None  # type: ignore[method-assign]  # pretend the lookup missed
    adapter._items["Late fee"] = adapter._ensure_item("Late fee", "Late fee income")
    one = adapter.create_fee_invoice(inv, Money.of("12.00", USD), "Late fee", "rid-key")
    two = adapter.create_fee_invoice(inv, Money.of("12.00", USD), "Late fee", "rid-key")
    assert one.external_ref == two.external_ref
    assert len([i for i in company.entities("Invoice") if i["CustomerRef"]["value"] == inv.customer_external_id]) == 2


def test_an_answer_lost_on_the_wire_is_replayed_by_its_requestid(qbo: EmulatorHandle, company: Company) -> None:
    """`drop_after`: QuickBooks created the fee and remembered the requestid, but the answer never arrived.

    The client's retry carries the same requestid and gets the original answer: one fee invoice.
    """
    inv = snapshot(company)
    adapter = company.adapter()
    adapter._find_one = lambda *a: None  # type: ignore[method-assign]  # only the requestid can prevent a duplicate
    adapter._items["Late fee"] = adapter._ensure_item("Late fee", "Late fee income")
    qbo.core.add_fault(Fault("drop_after", method="POST", path="/invoice"))
    result = adapter.create_fee_invoice(inv, Money.of("15.00", USD), "Late fee", "dropped-key")
    fees = [i for i in company.entities("Invoice") if i["CustomerRef"]["value"] == inv.customer_external_id]
    assert len(fees) == 2  # the original invoice and exactly one fee invoice
    assert result.external_ref in [f["Id"] for f in fees]
    posts = [c for c in qbo.core.calls("data", company.realm) if c.method == "POST" and c.path.endswith("/invoice")]
    assert len(posts) == 2  # the dropped one and its retry, under one requestid
    assert posts[0].request_id == posts[1].request_id


def test_crash_between_provider_call_and_commit_leaves_one_fee_invoice(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    before = len(company.entities("Invoice"))

    def execute_action(commit_ok: bool) -> str:
        adapter = company.adapter()
        result = adapter.create_fee_invoice(inv, Money.of("30.00", USD), "Late fee", "crash-key")
        if not commit_ok:
            raise StorageError("simulated crash before the local commit")
        return result.external_ref

    with pytest.raises(StorageError):
        execute_action(commit_ok=False)
    qbo.store.company(company.realm).replies.clear()  # the provider forgot the requestid meanwhile
    ref = execute_action(commit_ok=True)
    fees = [i for i in company.entities("Invoice") if str(i.get("DocNumber", "")).startswith("LF-")]
    assert len(company.entities("Invoice")) == before + 1
    assert [f["Id"] for f in fees] == [ref]


def test_credit_memo_applied_to_invoice(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company, "150.00")
    adapter = company.adapter()
    result = adapter.create_credit(inv, Money.of("7.50", USD), "Early payment discount", "credit-key")
    memo = qbo.store.read(company.realm, "CreditMemo", result.external_ref)
    assert memo["TotalAmt"] == 7.5
    assert memo["RemainingCredit"] == 0.0
    after = adapter.get_invoice(inv.external_id)
    assert after is not None
    assert after.balance.amount == Decimal("142.50")
    assert adapter.unapplied_credit(inv.customer_external_id) is None


def test_void_fee_invoice(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    adapter = company.adapter()
    fee = adapter.create_fee_invoice(inv, Money.of("20.00", USD), "Late fee", "void-src")
    assert not adapter.void_fee_invoice(fee.external_ref, "void-key").replayed
    voided = adapter.get_invoice(fee.external_ref)
    assert voided is not None
    assert voided.status is InvoiceStatus.VOIDED
    assert voided.balance.is_zero()
    assert adapter.void_fee_invoice(fee.external_ref, "void-key").replayed


def test_fee_line_on_the_original_invoice(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company, "100.00")
    adapter = company.adapter()
    adapter.add_fee_line(inv, Money.of("4.00", USD), "Late fee", "line-key")
    after = adapter.get_invoice(inv.external_id)
    assert after is not None
    assert after.total.amount == Decimal("104.00")
    assert after.balance.amount == Decimal("104.00")


def test_pdf_link_and_send(qbo: EmulatorHandle, company: Company) -> None:
    inv = snapshot(company)
    adapter = company.adapter()
    pdf = adapter.invoice_pdf(inv)
    assert pdf is not None
    assert pdf.startswith(b"%PDF")
    link = adapter.payment_link(inv)
    assert link is not None
    assert inv.external_id in link
    adapter.send_via_provider(inv, "billing@customer.example", "send-key")
    raw = qbo.store.read(company.realm, "Invoice", inv.external_id)
    assert raw["EmailStatus"] == "EmailSent"
    assert raw["BillEmail"]["Address"] == "billing@customer.example"
    sends = [c for c in qbo.core.calls("data", company.realm) if c.path.endswith("/send")]
    assert sends
    assert sends[0].request_id == "send-key"


def test_send_refuses_header_injection(company: Company) -> None:
    from connector.errors import Rejected

    inv = snapshot(company)
    with pytest.raises(Rejected):
        company.adapter().send_via_provider(inv, "a@b.example\r\nBcc: evil@x.example", "k")
