"""Issue 11 on Xero: payments, credit notes, overpayments and prepayments through the real SDK against the
emulator — what sync sees (Page.payments, each object's complete set), what it costs, and the emulator's own
wire behaviour (GET/PUT/DELETE Payments, allocations, If-Modified-Since)."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

import requests

from connector.domain.model import PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from providers._emulator.kit import emulator_kit
from providers.xero import mapping
from providers.xero.adapter import XeroAdapter
from tests.support.xero import Connected, admin, data_calls


def _sweep(
    adapter: XeroAdapter, cursor: str | None, *, first_sync: bool = False
) -> tuple[dict[tuple[PaymentKind, str], list[PaymentSnapshot]], str | None, int]:
    payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = {}
    calls, next_cursor = 0, cursor
    for page in adapter.changed_invoices(cursor, first_sync=first_sync):
        payments.update(page.payments)
        calls += page.calls
        next_cursor = page.next_cursor
    return payments, next_cursor, calls


def _settled(connected: Connected) -> str | None:
    """A cursor after the reconcile and the sweep that brings what the reconcile skipped."""
    _, cursor, _ = _sweep(connected.adapter, None)
    _, cursor, _ = _sweep(connected.adapter, cursor)
    time.sleep(0.01)
    connected.xero.core.clear_calls()
    return cursor


def _headers(connected: Connected) -> dict[str, str]:
    token = connected.xero.grant([connected.tenant])["access_token"]
    return {"Authorization": f"Bearer {token}", "xero-tenant-id": connected.tenant}


def test_payment_partial_payment_and_deletion_reach_sync(connected: Connected) -> None:
    barney = connected.seeded["invoices"][0]
    cursor = _settled(connected)
    partial = admin(
        connected.xero,
        "payments",
        {"tenant": connected.tenant, "invoice": barney, "amount": "40.00", "date": "2024-02-20"},
    )["PaymentID"]

    payments, cursor, calls = _sweep(connected.adapter, cursor)

    assert calls == 3 == len(data_calls(connected.xero))  # Invoices, then Payments and CreditNotes modified since
    (snapshot,) = payments[(PaymentKind.PAYMENT, partial)]
    invoice = connected.adapter.get_invoice(barney)
    assert invoice is not None
    assert snapshot == PaymentSnapshot(
        external_id=partial,
        kind=PaymentKind.PAYMENT,
        invoice_external_id=barney,
        customer_external_id=invoice.customer_external_id,
        amount=Money.of("40.00", "NZD"),
        paid_on=date(2024, 2, 20),
    )
    assert invoice.balance == Money.of("60.00", "NZD")

    rest = admin(connected.xero, "payments", {"tenant": connected.tenant, "invoice": barney, "amount": "60.00"})[
        "PaymentID"
    ]
    time.sleep(0.01)
    connected.xero.core.clear_calls()
    payments, cursor, _ = _sweep(connected.adapter, cursor)
    assert (PaymentKind.PAYMENT, rest) in payments
    assert connected.adapter.get_invoice(barney).status.value == "paid"  # type: ignore[union-attr]

    # A user deletes the first payment in Xero (the SDK's delete_payment: POST {"Status": "DELETED"}).
    connected.adapter.client.call("delete_payment", partial, {"Status": "DELETED"})
    time.sleep(0.01)
    payments, cursor, _ = _sweep(connected.adapter, cursor)
    (deleted,) = payments[(PaymentKind.PAYMENT, partial)]
    assert deleted.voided
    after = connected.adapter.get_invoice(barney)
    assert after is not None
    assert (after.status.value, after.balance) == ("open", Money.of("40.00", "NZD"))

    # Nothing changed since: one call.
    connected.xero.core.clear_calls()
    assert _sweep(connected.adapter, cursor)[1:] == (cursor, 1)


def test_credit_note_allocated_comes_with_its_allocation(connected: Connected) -> None:
    fred = connected.seeded["invoices"][1]
    cursor = _settled(connected)
    credit = admin(
        connected.xero,
        "credits",
        {"tenant": connected.tenant, "invoice": fred, "amount": "50.50", "date": "2024-02-10"},
    )["CreditNoteID"]

    payments, _, calls = _sweep(connected.adapter, cursor)

    assert calls == 3
    (applied,) = payments[(PaymentKind.CREDIT, credit)]
    assert (applied.invoice_external_id, applied.amount, applied.paid_on) == (
        fred,
        Money.of("50.50", "NZD"),
        date(2024, 2, 10),
    )
    assert connected.adapter.get_invoice(fred).balance == Money.of("200.00", "NZD")  # type: ignore[union-attr]


def test_overpayment_left_unapplied_then_allocated(connected: Connected) -> None:
    fred_invoice = connected.adapter.get_invoice(connected.seeded["invoices"][1])
    assert fred_invoice is not None
    fred = fred_invoice.customer_external_id
    over = admin(
        connected.xero,
        "overpayments",
        {"tenant": connected.tenant, "contact": fred, "amount": "30.00", "date": "2024-02-01"},
    )["OverpaymentID"]
    connected.xero.core.clear_calls()

    payments, _, _ = _sweep(connected.adapter, None)
    assert (PaymentKind.OVERPAYMENT, over) not in payments  # a reconcile no longer reads the open credit ...
    payments = connected.adapter.open_credits().payments  # ... the read before acting does

    (unapplied,) = payments[(PaymentKind.OVERPAYMENT, over)]
    assert unapplied.unapplied
    assert (unapplied.customer_external_id, unapplied.amount, unapplied.paid_on) == (
        fred,
        Money.of("30.00", "NZD"),
        date(2024, 2, 1),
    )
    assert connected.adapter.unapplied_credit(fred) == Money.of("30.00", "NZD")

    answer = requests.put(
        f"{connected.xero.api_base}/Overpayments/{over}/Allocations",
        json={
            "Allocations": [{"Invoice": {"InvoiceID": fred_invoice.external_id}, "Amount": 20, "Date": "2024-02-05"}]
        },
        headers=_headers(connected),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    payments = connected.adapter.open_credits().payments  # the next read sees the allocation (read whole)
    applied, rest = payments[(PaymentKind.OVERPAYMENT, over)]
    assert (applied.invoice_external_id, applied.amount, applied.paid_on) == (
        fred_invoice.external_id,
        Money.of("20.00", "NZD"),
        date(2024, 2, 5),
    )
    assert (rest.unapplied, rest.amount) == (True, Money.of("10.00", "NZD"))
    assert connected.adapter.get_invoice(fred_invoice.external_id).balance == Money.of("230.50", "NZD")  # type: ignore[union-attr]


def test_emulator_payments_render_as_xero_does_and_honour_if_modified_since(connected: Connected) -> None:
    headers = _headers(connected)
    base = connected.xero.api_base
    listed: dict[str, Any] = requests.get(f"{base}/Payments", headers=headers, timeout=10).json()
    (paid,) = listed["Payments"]  # seed_basic pays INV-0003 in full
    assert paid["Invoice"]["CurrencyCode"] == "NZD"
    assert paid["Invoice"]["Contact"]["ContactID"]
    assert paid["Date"].startswith("/Date(")
    (snapshot,) = mapping.to_payments(paid, home_currency="USD")
    assert snapshot.invoice_external_id == connected.seeded["invoices"][2]
    assert snapshot.amount == Money.of(Decimal("80.00"), "NZD")
    embedded = requests.get(f"{base}/Invoices/{snapshot.invoice_external_id}", headers=headers, timeout=10).json()
    assert [p["PaymentID"] for p in embedded["Invoices"][0]["Payments"]] == [snapshot.external_id]
    later = {**headers, "If-Modified-Since": "2999-01-01T00:00:00"}
    assert requests.get(f"{base}/Payments", headers=later, timeout=10).json()["Payments"] == []
    refused = requests.post(
        f"{base}/Payments/{snapshot.external_id}", json={"Status": "AUTHORISED"}, headers=headers, timeout=10
    )
    assert refused.status_code == 400
    assert (
        requests.post(f"{base}/Payments/nope", json={"Status": "DELETED"}, headers=headers, timeout=10).status_code
        == 404
    )


def test_kit_verbs_pay_credit_overpay_and_void() -> None:
    """The EmulatorKit's payment verbs on Xero: ids back, balances moved, a deleted payment restores the balance."""
    with emulator_kit("xero", rate_limits=False) as kit:
        tenant = kit.add_company("Kit Co")
        customer = kit.add_customer(tenant, "Kit Customer", "ap@kit.example")
        invoice = kit.add_invoice(
            tenant, customer, "K-1", Decimal("100.00"), "NZD", date(2024, 1, 1), date(2024, 1, 31)
        )
        payment = kit.pay(tenant, invoice, Decimal("30.00"), date(2024, 1, 20))
        credit = kit.credit(tenant, invoice, Decimal("10.00"), date(2024, 1, 21))
        over = kit.overpay(tenant, customer, Decimal("5.00"), date(2024, 1, 22))
        assert len({payment, credit, over}) == 3
        assert kit.balance(tenant, invoice) == Decimal("60.00")
        kit.void_payment(tenant, payment)
        assert kit.balance(tenant, invoice) == Decimal("90.00")
        assert kit.pay(tenant, invoice) != payment  # the whole balance
        assert kit.balance(tenant, invoice) == Decimal("0.00")


def test_first_sync_reads_the_payments_already_on_open_invoices(connected: Connected) -> None:
    """A partial payment made before Nudge connected: the first sync reads it from its invoice (one more call);
    a later reconcile does not (the sweeps since followed every payment)."""
    barney = connected.seeded["invoices"][0]
    earlier = admin(
        connected.xero,
        "payments",
        {"tenant": connected.tenant, "invoice": barney, "amount": "25.00", "date": "2024-02-01"},
    )["PaymentID"]
    connected.xero.core.clear_calls()

    payments, _, calls = _sweep(connected.adapter, None, first_sync=True)

    (snapshot,) = payments[(PaymentKind.PAYMENT, earlier)]
    assert (snapshot.invoice_external_id, snapshot.amount, snapshot.paid_on) == (
        barney,
        Money.of("25.00", "NZD"),
        date(2024, 2, 1),
    )
    paths = [c.path.rsplit("/", 1)[1] for c in data_calls(connected.xero)]
    # contacts, open invoices, then the partly paid invoices by IDs
    assert paths == ["Contacts", "Invoices", "Invoices"]
    assert calls == 3
    assert "IDs=" in data_calls(connected.xero)[-1].query
    connected.xero.core.clear_calls()
    payments, _, calls = _sweep(connected.adapter, None)  # a later reconcile: contacts and open invoices only
    assert (PaymentKind.PAYMENT, earlier) not in payments
    assert [c.path.rsplit("/", 1)[1] for c in data_calls(connected.xero)] == ["Contacts", "Invoices"]
    assert calls == 2


def test_hostile_payment_is_quarantined_and_the_sweep_completes(connected: Connected) -> None:
    """A payment Nudge cannot read is named (id and field) on the page's quarantine; the rest still syncs."""
    barney, fred = connected.seeded["invoices"][0], connected.seeded["invoices"][1]
    cursor = _settled(connected)
    bad = admin(connected.xero, "payments", {"tenant": connected.tenant, "invoice": barney, "amount": "10.00"})
    good = admin(connected.xero, "payments", {"tenant": connected.tenant, "invoice": fred, "amount": "10.00"})
    with connected.xero.state.lock:
        connected.xero.state.ledgers[connected.tenant].payments[bad["PaymentID"]]["Date"] = "someday"

    pages = list(connected.adapter.changed_invoices(cursor))

    quarantined = [q for page in pages for q in page.quarantined]
    assert [(q.external_id, q.field) for q in quarantined] == [(bad["PaymentID"], "Date")]
    found = {key for page in pages for key in page.payments}
    assert (PaymentKind.PAYMENT, good["PaymentID"]) in found
    assert (PaymentKind.PAYMENT, bad["PaymentID"]) not in found


def test_first_sync_reads_a_credit_note_already_used_up_on_an_open_invoice(connected: Connected) -> None:
    """A credit note fully allocated before Nudge connected (status PAID, not open credit) to an invoice that is still
    open: the first sync finds it through the invoice and reads it whole by id."""
    fred = connected.seeded["invoices"][1]
    credit = admin(
        connected.xero,
        "credits",
        {"tenant": connected.tenant, "invoice": fred, "amount": "50.50", "date": "2024-02-03"},
    )["CreditNoteID"]
    connected.xero.core.clear_calls()

    payments, _, calls = _sweep(connected.adapter, None, first_sync=True)

    (applied,) = payments[(PaymentKind.CREDIT, credit)]
    assert (applied.invoice_external_id, applied.amount, applied.paid_on) == (
        fred,
        Money.of("50.50", "NZD"),
        date(2024, 2, 3),
    )
    paths = [c.path.rsplit("/", 1)[1] for c in data_calls(connected.xero)]
    assert paths == ["Contacts", "Invoices", "Invoices", "CreditNotes"]
    assert calls == 4


def test_kit_ledger_writes_count_only_nudges_credits() -> None:
    """A user's credit recorded with kit.credit is not a credit Nudge wrote back."""
    with emulator_kit("xero", rate_limits=False) as kit:
        tenant = kit.add_company("Count Co")
        customer = kit.add_customer(tenant, "Count Customer", "ap@count.example")
        invoice = kit.add_invoice(tenant, customer, "C-1", Decimal("50.00"), "NZD", date(2024, 1, 1), date(2024, 1, 31))
        kit.credit(tenant, invoice, Decimal("5.00"))
        assert kit.ledger_writes(tenant)["credits"] == 0
