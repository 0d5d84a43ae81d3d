"""changed_invoices and the read side: call counts, CDC, fallbacks, hostile responses, token safety."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from connector.domain.model import InvoiceStatus, PaymentKind
from connector.domain.money import Money
from connector.errors import AuthError, RateLimited, Rejected, Transient
from providers.quickbooks.client import digits, quote, request_id
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company


def fault(qbo: EmulatorHandle, **spec: object) -> None:
    requests.post(f"{qbo.url}/__admin/faults", json=spec, timeout=5).raise_for_status()


def test_full_sync_of_10000_open_invoices_takes_11_calls(company: Company) -> None:
    company.seed(customers=300, invoices=10_000)
    adapter = company.adapter()
    before = company.data_calls()
    seen = 0
    customers = 0
    pages = 0
    for page in adapter.changed_invoices(None):
        pages += 1
        seen += len(page.invoices)
        customers += len(page.customers)
        assert page.full
        assert not page.quarantined
        assert all(inv.status is InvoiceStatus.OPEN for inv in page.invoices)
    assert seen == 10_000
    assert customers == 300
    assert pages == 10
    assert company.data_calls() - before <= 11
    assert adapter.calls == company.data_calls() - before


def test_incremental_sync_counts(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=5, invoices=300)
    adapter = company.adapter()
    *_, last = adapter.changed_invoices(None)
    cursor = last.next_cursor
    assert cursor

    before = company.data_calls()
    pages = list(adapter.changed_invoices(cursor))
    assert company.data_calls() - before == 1
    assert [len(p.invoices) for p in pages] == [0]
    cursor = pages[-1].next_cursor

    for ident in range(1, 51):
        requests.post(
            f"{qbo.url}/__admin/companies/{company.realm}/invoices/{ident}",
            json={"CustomerMemo": {"value": f"changed {ident}"}},
            timeout=5,
        ).raise_for_status()
    before = company.data_calls()
    pages = list(adapter.changed_invoices(cursor))
    assert company.data_calls() - before == 1
    assert sorted(int(i.external_id) for p in pages for i in p.invoices) == list(range(1, 51))
    assert pages[-1].next_cursor
    assert pages[-1].next_cursor != cursor


def test_paid_deleted_and_voided_invoices_flow_through_cdc(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Flow Ltd", "ap@flow.example")
    paid, deleted, voided, open_ = (company.invoice(cust, "50.00") for _ in range(4))
    adapter = company.adapter()
    *_, last = adapter.changed_invoices(None)
    requests.post(f"{qbo.url}/__admin/companies/{company.realm}/pay", json={"invoice_id": paid["Id"]}, timeout=5)
    store = qbo.store
    store.delete(company.realm, "Invoice", {"Id": deleted["Id"], "SyncToken": "0"})
    store.void(company.realm, "Invoice", {"Id": voided["Id"], "SyncToken": "0"})
    store.create(
        company.realm, "Customer", {"DisplayName": "New Customer", "PrimaryEmailAddr": {"Address": "n@c.example"}}
    )
    [page] = adapter.changed_invoices(last.next_cursor)
    status = {i.external_id: i.status for i in page.invoices}
    assert status == {
        paid["Id"]: InvoiceStatus.PAID,
        deleted["Id"]: InvoiceStatus.DELETED,
        voided["Id"]: InvoiceStatus.VOIDED,
    }
    assert open_["Id"] not in status
    assert [(c.name, c.emails) for c in page.customers] == [("New Customer", ("n@c.example",))]


def test_cursor_older_than_30_days_falls_back_to_full_reconcile(company: Company) -> None:
    company.seed(customers=2, invoices=5)
    adapter = company.adapter()
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    pages = list(adapter.changed_invoices(old))
    assert pages[-1].full
    assert sum(len(p.invoices) for p in pages) == 5
    assert company.data_calls() == 2  # batch (counts + customers) + one page


def test_server_refusing_old_cdc_window_falls_back(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=1, invoices=3)
    adapter = company.adapter(clock=lambda: datetime.now(UTC) - timedelta(days=5))  # our clock lags
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    pages = list(adapter.changed_invoices(old))
    assert pages[-1].full
    assert sum(len(p.invoices) for p in pages) == 3


def test_bad_invoice_is_quarantined_and_the_rest_commits(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=2, invoices=4)
    inv = qbo.store.company(company.realm).entities["Invoice"]["2"]
    del inv["TotalAmt"]
    qbo.store.company(company.realm).entities["Invoice"]["3"]["CurrencyRef"] = {"value": "ZZZ"}
    [page] = company.adapter().changed_invoices(None)
    assert sorted(i.external_id for i in page.invoices) == ["1", "4"]
    assert sorted((q.external_id, q.field) for q in page.quarantined) == [("2", "TotalAmt"), ("3", "CurrencyRef")]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {
                "kind": "status",
                "status": 200,
                "path": "/query",
                "body": json.dumps(
                    {
                        "Fault": {
                            "Error": [
                                {"Message": "A business validation error has occurred", "Detail": "x", "code": "6000"}
                            ],
                            "type": "ValidationFault",
                        }
                    }
                ),
            },
            Rejected,
        ),
        ({"kind": "malformed", "path": "/query", "times": 9}, Transient),
        ({"kind": "html", "status": 503, "path": "/query", "times": 9}, Transient),
        ({"kind": "status", "status": 500, "path": "/query", "times": 9}, Transient),
        ({"kind": "disconnect", "path": "/query", "times": 9}, Transient),
    ],
)
def test_hostile_responses_become_provider_errors(qbo: EmulatorHandle, company: Company, spec, error) -> None:
    company.seed(customers=1, invoices=2)
    fault(qbo, **spec)
    with pytest.raises(error) as info:
        list(company.adapter().changed_invoices(None))
    assert "Traceback" not in info.value.user_message
    assert "<html" not in info.value.user_message.lower()


def test_5xx_is_retried_with_backoff(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=1, invoices=2)
    fault(qbo, kind="status", status=503, path="/query", times=2)
    pages = list(company.adapter().changed_invoices(None))
    assert sum(len(p.invoices) for p in pages) == 2


def test_429_honours_retry_after(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Limited Ltd")
    requests.post(f"{qbo.url}/__admin/limits", json={"per_minute": 1}, timeout=5)
    try:
        slept: list[float] = []
        adapter = company.adapter()
        adapter.client._sleep = slept.append  # record the waits instead of sleeping a minute
        adapter.client.max_retry_after_s = 120
        adapter.customer_contacts(cust)
        with pytest.raises(RateLimited):
            adapter.customer_contacts(cust)
        # Every wait was the emulator's Retry-After (seconds until the minute window frees up).
        assert len(slept) == adapter.client.max_retries
        assert all(50 <= wait <= 61 and wait == int(wait) for wait in slept)
    finally:
        requests.post(f"{qbo.url}/__admin/limits", json={"per_minute": 500}, timeout=5)


def test_emulator_rate_limit_answers_429_with_retry_after(qbo: EmulatorHandle, company: Company) -> None:
    requests.post(f"{qbo.url}/__admin/limits", json={"per_minute": 3}, timeout=5)
    try:
        adapter = company.adapter()
        adapter.client.max_retry_after_s = 0  # don't sleep a minute: surface RateLimited

        def read_five_customers() -> None:
            for n in range(5):
                adapter.customer_contacts(company.customer(f"C{n}"))

        with pytest.raises(RateLimited) as info:
            read_five_customers()
        assert info.value.retry_after >= 1
        calls = qbo.core.calls("data", company.realm)
        assert calls[-1].status == 429
    finally:
        requests.post(f"{qbo.url}/__admin/limits", json={"per_minute": 500}, timeout=5)


def test_401_triggers_one_refresh_and_retry(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=1, invoices=1)
    adapter = company.adapter()
    assert adapter.get_invoice("1") is not None
    requests.post(f"{qbo.url}/__admin/companies/{company.realm}/expire-access", timeout=5)
    old_refresh = company.tokens.tokens.refresh_token
    assert adapter.get_invoice("1") is not None
    assert company.tokens.refreshes == 1
    assert company.tokens.tokens.refresh_token != old_refresh


def test_revoked_grant_is_auth_error_not_a_crash(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=1, invoices=1)
    fault(qbo, kind="revoke", path=f"/company/{company.realm}/")
    with pytest.raises(AuthError):
        company.adapter().get_invoice("1")


def test_deleted_invoice_reads_as_none(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Gone Ltd")
    inv = company.invoice(cust)
    qbo.store.delete(company.realm, "Invoice", {"Id": inv["Id"], "SyncToken": "0"})
    assert company.adapter().get_invoice(inv["Id"]) is None


def test_unapplied_credit_for_the_hold_rule(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Prepaid Ltd")
    company.invoice(cust, "80.00")
    adapter = company.adapter()
    assert adapter.unapplied_credit(cust) is None
    qbo.store.create(company.realm, "Payment", {"CustomerRef": {"value": cust}, "TotalAmt": 120})
    qbo.store.create(
        company.realm,
        "CreditMemo",
        {"CustomerRef": {"value": cust}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5.5}]},
    )
    before = company.data_calls()
    credit = adapter.unapplied_credit(cust)
    assert credit is not None
    assert str(credit.amount) == "125.50"
    assert credit.currency == "USD"
    assert company.data_calls() - before == 1


def test_customer_contacts(company: Company) -> None:
    cust = company.customer("Contact Ltd", "ap@contact.example, cfo@contact.example")
    contacts = company.adapter().customer_contacts(cust)
    assert contacts.name == "Contact Ltd"
    assert contacts.emails == ("ap@contact.example", "cfo@contact.example")


def test_query_values_are_escaped_and_ids_must_be_digits(qbo: EmulatorHandle, company: Company) -> None:
    assert quote("O'Brien \\ Sons") == "'O\\'Brien \\\\ Sons'"
    for bad in ("1 OR 1=1", "1'", "", "-1", "1/../2"):
        with pytest.raises(Rejected):
            digits(bad)
        with pytest.raises(Rejected):
            company.adapter().get_invoice(bad)
    cust = company.customer("O'Brien \\ Sons")
    found = company.adapter()._find_one("Customer", "DisplayName", "O'Brien \\ Sons")
    assert found is not None
    assert found["Id"] == cust
    assert company.adapter()._find_one("Customer", "DisplayName", "x' OR DisplayName LIKE '%") is None


def test_request_ids_fit_qbo_limit() -> None:
    assert request_id("short-key") == "short-key"
    long_id = request_id("k" * 200, ":apply")
    assert len(long_id) <= 50
    assert long_id.endswith(":apply")
    assert long_id == request_id("k" * 200, ":apply")


def _admin(qbo: EmulatorHandle, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
    answer = requests.post(f"{qbo.url}/__admin/{path}", json=body or {}, timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def test_full_reconcile_reads_open_credits_in_its_one_batch(qbo: EmulatorHandle, company: Company) -> None:
    """Issue 11 budget: the open credits (Payments with UnappliedAmt, CreditMemos with a Balance) ride in the
    reconcile's batch call, so a full reconcile of N invoices stays ceil(N/1000) + 1 calls."""
    cust = company.customer("Credit Ltd", "ap@credit.example")
    invoices = [company.invoice(cust, "100.00") for _ in range(3)]
    paid = _admin(qbo, f"companies/{company.realm}/pay", {"invoice_id": invoices[0]["Id"]})["Payment"]
    over = _admin(qbo, f"companies/{company.realm}/overpay", {"customer_id": cust, "amount": "25.00"})["Payment"]
    memo = qbo.store.create(
        company.realm,
        "CreditMemo",
        {
            "CustomerRef": {"value": cust},
            "TxnDate": "2026-01-05",
            "Line": [{"Amount": 7.5, "DetailType": "SalesItemLineDetail"}],
        },
    )
    adapter = company.adapter()
    before = company.data_calls()
    pages = list(adapter.changed_invoices(None))
    assert company.data_calls() - before == 2  # the batch + one page of 2 open invoices
    assert sum(p.calls for p in pages) == 2
    payments = {key: value for page in pages for key, value in page.payments.items()}
    assert set(payments) == {(PaymentKind.PAYMENT, over["Id"]), (PaymentKind.CREDIT, memo["Id"])}
    assert (PaymentKind.PAYMENT, paid["Id"]) not in payments  # fully applied: nothing open to hold
    [unapplied] = payments[(PaymentKind.PAYMENT, over["Id"])]
    assert (unapplied.invoice_external_id, unapplied.amount) == ("", Money.of("25.00", "USD"))
    [credit] = payments[(PaymentKind.CREDIT, memo["Id"])]
    assert (credit.invoice_external_id, credit.amount, credit.paid_on) == (
        "",
        Money.of("7.50", "USD"),
        date(2026, 1, 5),
    )


def test_full_reconcile_pages_open_credits_beyond_1000(qbo: EmulatorHandle, company: Company) -> None:
    """1001 unapplied payments: the batch carries the first 1000, one more query the rest (3 calls in all)."""
    cust = company.customer("Prepays A Lot Ltd")
    company.invoice(cust, "10.00")
    for _ in range(1001):
        qbo.store.create(company.realm, "Payment", {"CustomerRef": {"value": cust}, "TotalAmt": 1}, notify=False)
    adapter = company.adapter()
    before = company.data_calls()
    pages = list(adapter.changed_invoices(None))
    assert company.data_calls() - before == 3
    assert sum(len(p.payments) for p in pages) == 1001


def test_incremental_sync_carries_every_money_change_in_one_call(qbo: EmulatorHandle, company: Company) -> None:
    """Issue 11 budget: one CDC call for Invoice, Customer, Payment and CreditMemo; each money object the
    answer names comes with its complete current set (a voided payment: none; a deleted one: none)."""
    cust = company.customer("Money Ltd", "ap@money.example")
    full, part, credited, voided, deleted = (company.invoice(cust, "100.00") for _ in range(5))
    adapter = company.adapter()
    *_, last = adapter.changed_invoices(None)
    cursor = last.next_cursor
    assert cursor
    before = company.data_calls()
    quiet = list(adapter.changed_invoices(cursor))
    assert company.data_calls() - before == 1
    assert [p.payments for p in quiet] == [{}]

    realm = company.realm
    paid = _admin(qbo, f"companies/{realm}/pay", {"invoice_id": full["Id"], "date": "2026-01-10"})["Payment"]
    partial = _admin(qbo, f"companies/{realm}/pay", {"invoice_id": part["Id"], "amount": "40.00"})["Payment"]
    memo = _admin(qbo, f"companies/{realm}/credit", {"invoice_id": credited["Id"], "amount": "15.00"})["CreditMemo"]
    over = _admin(qbo, f"companies/{realm}/overpay", {"customer_id": cust, "amount": "30.00"})["Payment"]
    gone = _admin(qbo, f"companies/{realm}/pay", {"invoice_id": voided["Id"]})["Payment"]
    _admin(qbo, f"companies/{realm}/payments/{gone['Id']}/void")
    removed = _admin(qbo, f"companies/{realm}/pay", {"invoice_id": deleted["Id"]})["Payment"]
    _admin(qbo, f"companies/{realm}/payments/{removed['Id']}/delete")

    before = company.data_calls()
    pages = list(adapter.changed_invoices(cursor))
    assert company.data_calls() - before == 1
    money = {key: value for page in pages for key, value in page.payments.items()}
    usd = "USD"

    def one(kind: PaymentKind, ident: str) -> tuple[str, Money]:
        [snapshot] = money[(kind, ident)]
        assert snapshot.customer_external_id == cust
        assert not snapshot.voided
        return snapshot.invoice_external_id, snapshot.amount

    assert one(PaymentKind.PAYMENT, paid["Id"]) == (full["Id"], Money.of("100.00", usd))
    assert money[(PaymentKind.PAYMENT, paid["Id"])][0].paid_on == date(2026, 1, 10)
    assert one(PaymentKind.PAYMENT, partial["Id"]) == (part["Id"], Money.of("40.00", usd))
    assert one(PaymentKind.CREDIT, memo["Id"]) == (credited["Id"], Money.of("15.00", usd))
    assert one(PaymentKind.PAYMENT, over["Id"]) == ("", Money.of("30.00", usd))
    assert money[(PaymentKind.PAYMENT, gone["Id"])] == []
    assert money[(PaymentKind.PAYMENT, removed["Id"])] == []
    # The zero-amount Payment that applied the credit memo is no money of its own.
    applying = [key for key in money if key[0] is PaymentKind.PAYMENT and key[1] not in (
        paid["Id"], partial["Id"], over["Id"], gone["Id"], removed["Id"])]  # fmt: skip
    assert [money[key] for key in applying] == [[]]
    balances = {inv.external_id: inv.balance.amount for page in pages for inv in page.invoices}
    assert balances[voided["Id"]] == balances[deleted["Id"]] == Decimal("100.00")  # owed again
    assert balances[part["Id"]] == Decimal("60.00")
    assert balances[credited["Id"]] == Decimal("85.00")


def test_a_memo_naming_no_invoice_is_placed_by_the_payment_or_invoice_that_used_it(company: Company) -> None:
    """Where QuickBooks leaves a used CreditMemo's LinkedTxn empty, the Payment that applied it (same CDC
    answer) or the invoice's own LinkedTxn names the invoice; the applying zero Payment stays no money."""
    adapter = company.adapter()
    memo = {"Id": "150", "CustomerRef": {"value": "3"}, "TxnDate": "2026-01-02", "TotalAmt": 50, "RemainingCredit": 20}
    applying = {
        "Id": "9",
        "CustomerRef": {"value": "3"},
        "TxnDate": "2026-01-02",
        "TotalAmt": 0,
        "Line": [
            {"Amount": 30, "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]},
            {"Amount": 30, "LinkedTxn": [{"TxnId": "150", "TxnType": "CreditMemo"}]},
        ],
    }
    payments, bad = adapter._map_payments({"Payment": [applying], "CreditMemo": [memo]})
    assert not bad
    assert payments[(PaymentKind.PAYMENT, "9")] == []
    credit = [(s.invoice_external_id, s.amount.amount) for s in payments[(PaymentKind.CREDIT, "150")]]
    assert credit == [("70", Decimal(30)), ("", Decimal(20))]
    invoice = {"Id": "71", "LinkedTxn": [{"TxnId": "150", "TxnType": "CreditMemo"}]}
    payments, _ = adapter._map_payments({"Invoice": [invoice], "CreditMemo": [memo]})
    assert [s.invoice_external_id for s in payments[(PaymentKind.CREDIT, "150")]] == ["71", ""]
    payments, _ = adapter._map_payments({"CreditMemo": [memo]})  # nothing says where: only the unapplied rest
    assert [s.invoice_external_id for s in payments[(PaymentKind.CREDIT, "150")]] == [""]


def test_cdc_capped_on_payments_continues_payments_on_their_own(qbo: EmulatorHandle, company: Company) -> None:
    """RS-26's per-entity continuation holds for money objects: 1,500 payments one second apart, then an
    invoice edit; the capped Payment block continues from its own newest change, each payment arrives once."""
    clock = qbo.core.clock
    clock.set(datetime.now(UTC) - timedelta(hours=2), frozen=True)
    try:
        cust = company.customer("Many Payments Ltd")
        inv = company.invoice(cust, "10.00")
        adapter = company.adapter()
        *_, last = adapter.changed_invoices(None)
        cursor = last.next_cursor
        assert cursor
        for _ in range(1500):
            clock.advance(timedelta(seconds=1))
            qbo.store.create(company.realm, "Payment", {"CustomerRef": {"value": cust}, "TotalAmt": 1}, notify=False)
        clock.advance(timedelta(seconds=1))
        _admin(qbo, f"companies/{company.realm}/invoices/{inv['Id']}", {"CustomerMemo": {"value": "edited"}})
        before = company.data_calls()
        pages = list(adapter.changed_invoices(cursor))
        calls = company.data_calls() - before
    finally:
        clock.set(datetime.now(UTC))
    ids = [key[1] for page in pages for key in page.payments]
    assert len(ids) == len(set(ids)) == 1500
    assert [i.external_id for page in pages for i in page.invoices] == [inv["Id"]]
    assert calls == sum(p.calls for p in pages) == 2  # the capped answer, then the payments' own continuation
