"""The emulator on its own: payload shapes vs the real samples, query language, SyncToken, requestid,
OAuth (rotation, strict mode, invalid_grant, revoke), limits — through python-quickbooks and intuit-oauth."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice

from connector.domain.money import Money
from connector.errors import AuthError
from connector.ports import ProviderSettings
from providers.quickbooks import PROVIDER, oauth
from providers.quickbooks.emulator import EmulatorHandle
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.quickbooks import Company, emulator_settings, fixture_json

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}$")


def same_shape(ours: Any, sample: Any, path: str = "") -> None:
    """Every key both have carries the same JSON type (numbers are numbers, strings strings, ...)."""
    if isinstance(sample, dict):
        assert isinstance(ours, dict), path
        for key in set(ours) & set(sample):
            same_shape(ours[key], sample[key], f"{path}.{key}")
    elif isinstance(sample, list):
        assert isinstance(ours, list), path
        if sample and ours:
            same_shape(ours[0], sample[0], f"{path}[0]")
    elif isinstance(sample, bool):
        assert isinstance(ours, bool), path
    elif isinstance(sample, (int, float)):
        assert isinstance(ours, (int, float)), path
        assert not isinstance(ours, bool), path
    else:
        assert type(ours) is type(sample), path


def api(qbo: EmulatorHandle, company: Company, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {
        "Authorization": f"Bearer {company.tokens.current().access_token}",
        "Accept": "application/json",
        **kwargs.pop("headers", {}),
    }
    return requests.request(
        method, f"{qbo.api_base}/company/{company.realm}/{path}", headers=headers, timeout=10, **kwargs
    )


def test_invoice_responses_match_the_real_samples(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Amy's Bird Sanctuary", "amy@example.com")
    raw = company.invoice(cust, "150.00", TxnTaxDetail={"TotalTax": 12.5})
    query = api(qbo, company, "GET", "query", params={"query": f"select * from Invoice where Id = '{raw['Id']}'"})
    body = query.json()
    sample = fixture_json("qbo_invoice_query.json")
    assert list(body) == list(sample)
    assert list(body["QueryResponse"]) == list(sample["QueryResponse"])
    assert INSTANT.match(body["time"])
    ours = body["QueryResponse"]["Invoice"][0]
    same_shape(ours, sample["QueryResponse"]["Invoice"][0])
    read = api(qbo, company, "GET", f"invoice/{raw['Id']}").json()
    same_shape(read, fixture_json("qbo_invoice_read.json"))
    required = {
        "Id",
        "SyncToken",
        "DocNumber",
        "TxnDate",
        "DueDate",
        "TotalAmt",
        "Balance",
        "CustomerRef",
        "Line",
        "MetaData",
        "domain",
        "sparse",
        "EmailStatus",
        "PrintStatus",
        "Deposit",
        "LinkedTxn",
        "TxnTaxDetail",
        "ApplyTaxAfterDiscount",
        "BillEmail",
        "CustomField",
    }
    assert required <= set(read["Invoice"])
    inv = read["Invoice"]
    assert DATE.match(inv["TxnDate"])
    assert DATE.match(inv["DueDate"])
    assert INSTANT.match(inv["MetaData"]["CreateTime"])
    assert INSTANT.match(inv["MetaData"]["LastUpdatedTime"])
    assert inv["TotalAmt"] == 162.5
    assert inv["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    assert isinstance(inv["SyncToken"], str)
    assert isinstance(inv["Id"], str)


def test_token_responses_match_the_samples(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    realm = qbo.store.add_company("Token Shape").realm
    body = requests.post(f"{qbo.url}/__admin/companies/{realm}/tokens", timeout=5).json()
    sample = fixture_json("qbo_token_response.json")
    assert set(body) == set(sample) - {"id_token"}  # id_token only with the openid scope
    same_shape(body, sample)
    auth = (settings.client_id, settings.client_secret)
    bad = requests.post(
        f"{qbo.url}/oauth2/v1/tokens/bearer",
        auth=auth,
        data={"grant_type": "refresh_token", "refresh_token": "nope"},
        timeout=5,
    )
    assert bad.status_code == 400
    assert bad.json() == fixture_json("qbo_token_error_invalid_grant.json")


def test_query_language_subset(qbo: EmulatorHandle, company: Company) -> None:
    a = company.customer("O'Hara & Sons", "a@x.example")
    b = company.customer("Back\\slash Ltd")
    for amount in ("10.00", "20.00", "30.00"):
        company.invoice(a, amount, DocNumber=f"A-{amount}")
    company.invoice(b, "40.00", DocNumber="B-1")

    def q(text: str) -> dict:
        response = api(qbo, company, "POST", "query", data=text, headers={"Content-Type": "application/text"})
        assert response.status_code == 200, response.text
        return response.json()["QueryResponse"]

    assert q("SELECT COUNT(*) FROM Invoice") == {"totalCount": 4}
    assert [
        i["DocNumber"]
        for i in q("SELECT * FROM Invoice WHERE TotalAmt >= '20' AND TotalAmt < '40' ORDERBY TotalAmt DESC")["Invoice"]
    ] == ["A-30.00", "A-20.00"]
    assert len(q("SELECT * FROM Invoice WHERE DocNumber IN ('A-10.00', 'B-1')")["Invoice"]) == 2
    assert len(q("SELECT * FROM Invoice WHERE DocNumber LIKE 'A-%'")["Invoice"]) == 3
    assert q("SELECT * FROM Customer WHERE DisplayName = 'O\\'Hara & Sons'")["Customer"][0]["Id"] == a
    assert q("SELECT * FROM Customer WHERE DisplayName = 'Back\\\\slash Ltd'")["Customer"][0]["Id"] == b
    window = q("SELECT * FROM Invoice ORDER BY Id STARTPOSITION 2 MAXRESULTS 2")
    assert window["startPosition"] == 2
    assert window["maxResults"] == 2
    assert window["totalCount"] == 4
    assert q("SELECT * FROM Invoice WHERE DocNumber = 'nothing'") == {}
    assert q("select * from Invoice MAXRESULTS 5000")["maxResults"] == 4  # capped at 1000, 4 exist
    assert q("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2000-01-01T00:00:00-07:00'")["totalCount"] == 4
    bad = api(qbo, company, "POST", "query", data="SELECT * FROM Invoice WHERE a = 1 OR b = 2")
    assert bad.status_code == 400
    assert bad.json()["Fault"]["Error"][0]["code"] == "4000"
    assert api(qbo, company, "POST", "query", data="SELECT * FROM invoice").status_code == 400  # case-sensitive


def test_stale_synctoken_fault_shape_and_requestid_replay(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Stale Ltd")
    inv = company.invoice(cust)
    ok = api(
        qbo,
        company,
        "POST",
        "invoice",
        params={"requestid": "r-1"},
        json={"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "one"},
    )
    assert ok.json()["Invoice"]["SyncToken"] == "1"
    replay = api(
        qbo,
        company,
        "POST",
        "invoice",
        params={"requestid": "r-1"},
        json={"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "one"},
    )
    assert replay.status_code == 200
    assert replay.json() == ok.json()
    stale = api(qbo, company, "POST", "invoice", json={"Id": inv["Id"], "SyncToken": "0", "sparse": True})
    fault = stale.json()
    assert stale.status_code == 400
    assert set(fault) == {"Fault", "time"}
    assert fault["Fault"]["type"] == "ValidationFault"
    assert fault["Fault"]["Error"][0]["code"] == "5010"
    assert fault["Fault"]["Error"][0]["Message"].startswith("Stale Object Error")
    created = [
        api(qbo, company, "POST", "customer", params={"requestid": "c-1"}, json={"DisplayName": "Once Only"}).json()
        for _ in range(2)
    ]
    assert created[0] == created[1]
    assert len([c for c in company.entities("Customer") if c["DisplayName"] == "Once Only"]) == 1


def test_real_sdk_objects_against_the_emulator(qbo: EmulatorHandle, company: Company) -> None:
    company.seed(customers=3, invoices=250)
    qb = company.adapter().client.qb
    assert len(Invoice.all(qb=qb)) == 100  # default paging: 100 per page
    assert len(Invoice.filter(Balance=0, qb=qb)) == 0
    assert Invoice.count(qb=qb) == 250
    assert len(Invoice.where("TotalAmt > '0'", start_position=201, max_results=1000, qb=qb)) == 50
    customer = Customer.get(1, qb=qb)
    assert customer.DisplayName == "Customer 00001"
    invoice = Invoice.get(1, qb=qb)
    invoice.send(qb=qb, send_to="sdk@example.com")
    assert Invoice.get(1, qb=qb).EmailStatus == "EmailSent"
    with pytest.raises(QuickbooksException) as info:
        Invoice.get(999999, qb=qb)
    assert info.value.error_code == 610
    from quickbooks.cdc import change_data_capture

    local_now = datetime.now(UTC).astimezone().replace(tzinfo=None)  # naive local time, as the SDK formats it
    since = (local_now - timedelta(days=1)).replace(microsecond=0)
    cdc = change_data_capture([Invoice, Customer], since, qb=qb)
    assert len(cdc.Invoice) >= 250
    assert len(cdc.Customer) == 3


def test_concurrency_limit_gives_429(qbo: EmulatorHandle, company: Company) -> None:
    decision_slots = [qbo.core.admit(company.realm) for _ in range(10)]
    try:
        response = api(qbo, company, "GET", "companyinfo/" + company.realm)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert response.json()["Fault"]["Error"][0]["code"] == "3001"
    finally:
        for _ in decision_slots:
            qbo.core.release(company.realm)
    assert api(qbo, company, "GET", "companyinfo/" + company.realm).status_code == 200


def test_unauthenticated_call_is_401(qbo: EmulatorHandle, company: Company) -> None:
    response = requests.get(
        f"{qbo.api_base}/company/{company.realm}/invoice/1", headers={"Authorization": "Bearer forged"}, timeout=5
    )
    assert response.status_code == 401
    assert response.json()["fault"]["error"][0]["code"] == "3200"


def authorize(qbo: EmulatorHandle, settings: ProviderSettings, realm: str, decision: str = "approve") -> dict[str, str]:
    url = PROVIDER.authorization_url(settings, "state-123", "")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert realm in page.text
    args = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = requests.post(
        f"{qbo.url}/connect/oauth2/decide",
        data={**args, "realm": realm, "decision": decision},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(settings.redirect_uri)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_oauth_connect_flow_and_rotation(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    realm = qbo.store.add_company("Flow Company").realm
    params = authorize(qbo, settings, realm)
    assert params["state"] == "state-123"
    assert params["realmId"] == realm
    now = datetime.now(UTC)
    tokens = PROVIDER.exchange_code(settings, params, "", now)
    assert tokens.expires_at > now
    assert "redacted" in repr(tokens)
    assert tokens.access_token not in repr(tokens)
    with pytest.raises(AuthError):  # codes are single use
        PROVIDER.exchange_code(settings, params, "", now)
    [info] = PROVIDER.connect(settings, params, tokens)
    assert (info.provider, info.tenant_id, info.name) == ("quickbooks", realm, "Flow Company")
    newer = PROVIDER.refresh(settings, tokens, now)
    assert newer.refresh_token != tokens.refresh_token
    # the previous refresh token stays valid for 24 h (docs/provider-api-facts.md §1.1)
    assert PROVIDER.refresh(settings, tokens, now).access_token
    PROVIDER.revoke(settings, newer)
    with pytest.raises(AuthError):
        PROVIDER.refresh(settings, newer, now)


def test_denied_consent_and_strict_rotation(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    realm = qbo.store.add_company("Strict Company").realm
    denied = authorize(qbo, settings, realm, decision="deny")
    assert denied["error"] == "access_denied"
    with pytest.raises(AuthError):
        PROVIDER.exchange_code(settings, denied, "", datetime.now(UTC))
    requests.post(f"{qbo.url}/__admin/oauth", json={"strict": True}, timeout=5)
    try:
        tokens = PROVIDER.exchange_code(settings, authorize(qbo, settings, realm), "", datetime.now(UTC))
        PROVIDER.refresh(settings, tokens, datetime.now(UTC))
        with pytest.raises(AuthError):  # strict: the old refresh token died at first use
            PROVIDER.refresh(settings, tokens, datetime.now(UTC))
    finally:
        requests.post(f"{qbo.url}/__admin/oauth", json={"strict": False}, timeout=5)


def test_grace_period_expires_after_24h(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    from datetime import timedelta

    realm = qbo.store.add_company("Grace Company").realm
    tokens = PROVIDER.exchange_code(settings, authorize(qbo, settings, realm), "", datetime.now(UTC))
    PROVIDER.refresh(settings, tokens, datetime.now(UTC))
    qbo.core.clock.advance(timedelta(hours=25))
    try:
        with pytest.raises(AuthError):
            PROVIDER.refresh(settings, tokens, datetime.now(UTC))
    finally:
        qbo.core.clock.advance(timedelta(hours=-25))


def test_discovery_document_is_fetched_once_per_url(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    oauth.discovery_document(qbo.discovery_url)
    before = len(qbo.core.calls())
    for _ in range(3):
        oauth.auth_client(settings)
    assert len(qbo.core.calls()) == before
    assert "client_secret" not in repr(oauth.auth_client(settings))
    assert settings.client_secret not in repr(settings)


def test_wrong_client_secret_is_auth_error(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    from dataclasses import replace

    realm = qbo.store.add_company("Secretive").realm
    tokens = PROVIDER.exchange_code(settings, authorize(qbo, settings, realm), "", datetime.now(UTC))
    bad = replace(settings, client_secret="wrong-secret")
    with pytest.raises(AuthError) as info:
        PROVIDER.refresh(bad, tokens, datetime.now(UTC))
    assert "wrong-secret" not in str(info.value)
    assert tokens.refresh_token not in str(info.value)


def test_main_accepts_cli_arguments() -> None:
    from providers.quickbooks.emulator import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0


# -- payments and credits (issue 11) ---------------------------------------------------------------------
def _admin(qbo: EmulatorHandle, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(f"{qbo.url}/__admin/{path}", json=body or {}, timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def test_payment_and_credit_shapes_match_the_samples(qbo: EmulatorHandle, company: Company) -> None:
    cust = company.customer("Shape Ltd", "ap@shape.example")
    inv = company.invoice(cust, "100.00")
    payment = _admin(qbo, f"companies/{company.realm}/pay", {"invoice_id": inv["Id"], "amount": "60"})["Payment"]
    same_shape(payment, fixture_json("qbo_payment_read.json")["Payment"])
    memo = _admin(qbo, f"companies/{company.realm}/credit", {"invoice_id": inv["Id"], "amount": "15"})["CreditMemo"]
    same_shape(memo, fixture_json("qbo_creditmemo_create.json")["CreditMemo"])
    assert DATE.match(payment["TxnDate"])
    assert INSTANT.match(payment["MetaData"]["LastUpdatedTime"])


def test_payments_lower_balances_link_the_invoice_and_voiding_restores(qbo: EmulatorHandle, company: Company) -> None:
    """A Payment lowers the invoice's Balance and joins its LinkedTxn; a credit memo applied names the invoice
    in its own LinkedTxn; voiding or deleting the payment that did either restores both."""
    realm = company.realm
    cust = company.customer("Pays Ltd", "ap@pays.example")
    inv = company.invoice(cust, "100.00")
    payment = _admin(qbo, f"companies/{realm}/pay", {"invoice_id": inv["Id"], "amount": "60"})["Payment"]
    after = qbo.store.read(realm, "Invoice", inv["Id"])
    assert after["Balance"] == 40.0
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in after["LinkedTxn"]
    memo = _admin(qbo, f"companies/{realm}/credit", {"invoice_id": inv["Id"], "amount": "15"})["CreditMemo"]
    assert (memo["RemainingCredit"], memo["Balance"], memo["TotalAmt"]) == (0.0, 0.0, 15.0)
    assert memo["LinkedTxn"] == [{"TxnId": inv["Id"], "TxnType": "Invoice"}]
    assert qbo.store.read(realm, "Invoice", inv["Id"])["Balance"] == 25.0

    _admin(qbo, f"companies/{realm}/payments/{payment['Id']}/void")
    voided = qbo.store.read(realm, "Payment", payment["Id"])
    assert (voided["TotalAmt"], voided["PrivateNote"]) == (0.0, "Voided")
    after = qbo.store.read(realm, "Invoice", inv["Id"])
    assert after["Balance"] == 85.0
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} not in after["LinkedTxn"]

    applying = next(p for p in company.entities("Payment") if p["Id"] != payment["Id"])
    _admin(qbo, f"companies/{realm}/payments/{applying['Id']}/delete")
    memo = qbo.store.read(realm, "CreditMemo", memo["Id"])
    assert (memo["RemainingCredit"], memo["LinkedTxn"]) == (15.0, [])
    assert qbo.store.read(realm, "Invoice", inv["Id"])["Balance"] == 100.0


def test_overpayment_and_open_credit_queries(qbo: EmulatorHandle, company: Company) -> None:
    realm = company.realm
    cust = company.customer("Over Ltd")
    inv = company.invoice(cust, "10.00")
    over = _admin(qbo, f"companies/{realm}/overpay", {"customer_id": cust, "amount": "25.5", "date": "2026-01-03"})
    assert (over["Payment"]["UnappliedAmt"], over["Payment"]["TxnDate"]) == (25.5, "2026-01-03")
    _admin(qbo, f"companies/{realm}/pay", {"invoice_id": inv["Id"]})
    unapplied = qbo.store.run_query(realm, "SELECT * FROM Payment WHERE UnappliedAmt > '0'")
    assert [p["Id"] for p in unapplied["Payment"]] == [over["Payment"]["Id"]]
    assert qbo.store.run_query(realm, "SELECT COUNT(*) FROM CreditMemo WHERE Balance > '0'") == {"totalCount": 0}


def test_kit_counts_only_nudges_credit_memos() -> None:
    """ledger_writes counts what Nudge wrote back: a user's credit (kit.credit) is not one of Nudge's credits."""
    with QuickBooksKit(rate_limits=False) as kit:
        company = Company(kit.emulator, emulator_settings(kit.emulator))
        cust = company.customer("Counted Ltd", "ap@counted.example")
        inv = company.invoice(cust, "100.00")
        kit.credit(company.realm, inv["Id"], Decimal("10"))
        assert kit.ledger_writes(company.realm)["credits"] == 0
        snapshot = company.adapter().get_invoice(inv["Id"])
        assert snapshot is not None
        company.adapter().create_credit(snapshot, Money.of("5.00", "USD"), "Early payment discount", "count-credit")
        assert kit.ledger_writes(company.realm)["credits"] == 1
