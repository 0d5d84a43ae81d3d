"""The emulator's own wire behaviour: headers, paging, filters, errors, limits, webhooks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask, request

from providers._emulator import serve
from providers.xero import webhooks
from providers.xero.emulator import XeroEmulator, main
from tests.support.xero import WEBHOOK_KEY, admin, seed_basic


@pytest.fixture
def api(xero: XeroEmulator) -> tuple[XeroEmulator, dict[str, Any], dict[str, str]]:
    seeded = seed_basic(xero)
    token = xero.grant([seeded["tenantId"]])["access_token"]
    return xero, seeded, {"Authorization": f"Bearer {token}", "xero-tenant-id": seeded["tenantId"]}


def test_headers_paging_filters(api: tuple[XeroEmulator, dict[str, Any], dict[str, str]]) -> None:
    xero, seeded, headers = api
    answer = requests.get(
        f"{xero.api_base}/Invoices",
        params={
            "where": 'Type=="ACCREC" AND AmountDue>0',
            "Statuses": "AUTHORISED,DRAFT",
            "order": "InvoiceNumber DESC",
            "page": 1,
            "pageSize": 2,
        },
        headers=headers,
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["X-MinLimit-Remaining"] == "59"
    assert answer.headers["X-DayLimit-Remaining"] == "4999"
    assert "X-AppMinLimit-Remaining" in answer.headers
    body = answer.json()
    assert body["pagination"] == {"page": 1, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert [i["InvoiceNumber"] for i in body["Invoices"]] == ["INV-0004", "INV-0002"]
    assert body["Invoices"][0]["Date"].startswith("/Date(")
    assert body["Invoices"][0]["DateString"].endswith("T00:00:00")
    assert "LineItems" in body["Invoices"][0]
    summary = requests.get(
        f"{xero.api_base}/Invoices",
        params={"summaryOnly": "True", "page": 1, "pageSize": 5000},
        headers=headers,
        timeout=10,
    ).json()
    assert summary["pagination"]["pageSize"] == 1000
    assert "LineItems" not in summary["Invoices"][0]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        requests.get(f"{xero.api_base}/Invoices", headers={**headers, "If-Modified-Since": later}, timeout=10).json()[
            "Invoices"
        ]
        == []
    )
    one = requests.get(
        f"{xero.api_base}/Invoices", params={"IDs": seeded["invoices"][0]}, headers=headers, timeout=10
    ).json()
    assert len(one["Invoices"]) == 1


def test_tenant_header_and_bearer_are_checked(api: tuple[XeroEmulator, dict[str, Any], dict[str, str]]) -> None:
    xero, _, headers = api
    assert (
        requests.get(
            f"{xero.api_base}/Invoices", headers={"Authorization": headers["Authorization"]}, timeout=10
        ).status_code
        == 403
    )
    assert (
        requests.get(f"{xero.api_base}/Invoices", headers={**headers, "xero-tenant-id": "nope"}, timeout=10).status_code
        == 403
    )
    assert (
        requests.get(
            f"{xero.api_base}/Invoices", headers={**headers, "Authorization": "Bearer x"}, timeout=10
        ).status_code
        == 401
    )


def test_validation_exception_shape(api: tuple[XeroEmulator, dict[str, Any], dict[str, str]]) -> None:
    xero, seeded, headers = api
    paid = seeded["invoices"][2]
    answer = requests.post(
        f"{xero.api_base}/Invoices/{paid}", json={"Invoices": [{"Reference": "x"}]}, headers=headers, timeout=10
    )
    assert answer.status_code == 400
    body = answer.json()
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10,
        "ValidationException",
        "A validation exception occurred",
    )
    assert body["Elements"][0]["ValidationErrors"][0]["Message"] == "Invoice not of valid status for modification"
    bad = requests.put(
        f"{xero.api_base}/Invoices",
        json={
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "Contact": {"Name": "X"},
                    "Status": "AUTHORISED",
                    "DueDate": "2024-01-01",
                    "LineItems": [{"Description": "a", "UnitAmount": 1, "AccountCode": "999", "TaxType": "BOGUS"}],
                }
            ]
        },
        headers=headers,
        timeout=10,
    )  # fmt: skip
    messages = [e["Message"] for e in bad.json()["Elements"][0]["ValidationErrors"]]
    assert any("Account code '999'" in m for m in messages)
    assert any("TaxType code 'BOGUS'" in m for m in messages)


def test_rate_limits_minute_concurrent_day_and_app(api: tuple[XeroEmulator, dict[str, Any], dict[str, str]]) -> None:
    xero, _, headers = api
    admin(xero, "limits", {"per_minute": 1})
    url = f"{xero.api_base}/Organisation"
    assert requests.get(url, headers=headers, timeout=10).headers["X-MinLimit-Remaining"] == "0"
    refused = requests.get(url, headers=headers, timeout=10)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    admin(xero, "limits", {"per_minute": 0, "per_day": 1})
    requests.get(url, headers=headers, timeout=10)
    day = requests.get(url, headers=headers, timeout=10)
    assert day.headers["X-Rate-Limit-Problem"] == "day"
    assert int(day.headers["Retry-After"]) > 3600
    admin(xero, "limits", {"per_day": 0, "app_per_minute": 1})
    requests.get(url, headers=headers, timeout=10)
    assert requests.get(url, headers=headers, timeout=10).headers["X-Rate-Limit-Problem"] == "appminute"
    admin(xero, "limits", {"app_per_minute": 0, "concurrent": 1})
    admin(xero, "latency", {"seconds": 0.6})  # served inside the admitted slot
    slow = threading.Thread(target=requests.get, args=(url,), kwargs={"headers": headers, "timeout": 10})
    slow.start()
    time.sleep(0.2)
    busy = requests.get(f"{xero.api_base}/Accounts", headers=headers, timeout=10)
    slow.join()
    admin(xero, "latency", {"seconds": 0})
    assert busy.status_code == 429
    assert busy.headers["X-Rate-Limit-Problem"] == "concurrent"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[bytes, str]]]]:
    got: list[tuple[bytes, str]] = []
    app = Flask("receiver")

    @app.post("/hook")
    def hook() -> tuple[str, int]:
        body = request.get_data()
        signature = request.headers.get("x-xero-signature", "")
        if not webhooks.verify(body, signature, WEBHOOK_KEY):
            return "", 401
        got.append((body, signature))
        return "", 200

    server = serve(app)
    try:
        yield f"{server.url}/hook", got
    finally:
        server.stop()


def test_signed_webhooks_and_intent_to_receive(
    api: tuple[XeroEmulator, dict[str, Any], dict[str, str]], receiver: tuple[str, list[tuple[bytes, str]]]
) -> None:
    xero, seeded, _ = api
    url, got = receiver
    admin(xero, "webhooks", {"url": url, "key": WEBHOOK_KEY})
    result = admin(xero, "webhooks/intent")
    assert result["passed"]
    assert len(result["attempts"]) == 4
    got.clear()
    admin(xero, "payments", {"tenant": seeded["tenantId"], "invoice": seeded["invoices"][0], "amount": "1.00"})
    deliveries = admin(xero, "webhooks/flush")["deliveries"]
    assert deliveries[-1]["status"] == 200
    ((body, _),) = got
    notices = webhooks.parse(body)
    assert [(n.entity, n.operation, n.entity_id) for n in notices] == [("invoice", "update", seeded["invoices"][0])]
    assert json.loads(body)["firstEventSequence"] >= 1


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--port", "not-a-number"])
