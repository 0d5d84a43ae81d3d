"""webhooks.verify / parse: the published test vector, both payload formats, emulator deliveries."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import requests
from flask import Flask, request

from connector.errors import PayloadError
from providers._emulator import serve
from providers.quickbooks import PROVIDER
from providers.quickbooks.emulator import EmulatorHandle
from providers.quickbooks.webhooks import parse, sign, verify
from tests.support.quickbooks import FIXTURES, VERIFIER, Company, fixture_json

VECTOR_KEY = "b5771f19b12ddb4bcdb9f08bdc50bc63878a"
VECTOR_SIGNATURE = "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="


def test_published_vector_verifies_and_one_byte_change_does_not() -> None:
    body = (FIXTURES / "qbo_webhook_legacy_signed.json").read_bytes()
    assert verify(body, VECTOR_SIGNATURE, VECTOR_KEY)
    for index in (0, len(body) // 2, len(body) - 1):
        tampered = bytearray(body)
        tampered[index] ^= 0x01
        assert not verify(bytes(tampered), VECTOR_SIGNATURE, VECTOR_KEY)
    assert not verify(body + b" ", VECTOR_SIGNATURE, VECTOR_KEY)
    assert not verify(body, VECTOR_SIGNATURE, VECTOR_KEY + "x")
    assert PROVIDER.verify_webhook(body, VECTOR_SIGNATURE, VECTOR_KEY)


def test_bad_signatures_are_false_not_errors() -> None:
    body = b"{}"
    for signature in ("", "not base64!!", "AAAA", sign(body, "other")):
        assert verify(body, signature, "key") is False
    assert verify(body, sign(body, "key"), "") is False


def test_parse_legacy_sample() -> None:
    notices = parse((FIXTURES / "qbo_webhook_legacy.json").read_bytes())
    assert len(notices) == 1
    n = notices[0]
    assert (n.tenant_id, n.entity, n.entity_id, n.operation) == ("310687", "account", "1234", "create")
    assert n.occurred_at == datetime(2025, 9, 8, 20, 52, 31, 657000, tzinfo=UTC)


def test_parse_signed_vector_body() -> None:
    [n] = parse((FIXTURES / "qbo_webhook_legacy_signed.json").read_bytes())
    assert (n.tenant_id, n.entity, n.entity_id, n.operation) == ("1185883450", "customer", "1", "create")


def test_parse_cloudevents_sample() -> None:
    [n] = parse((FIXTURES / "qbo_webhook_cloudevents.json").read_bytes())
    assert (n.tenant_id, n.entity, n.entity_id, n.operation) == ("310687", "account", "1234", "create")
    assert n.event_id == "88cd52aa-33b6-4351-9aa4-47572edbd068"
    assert n.occurred_at is not None
    assert n.occurred_at.tzinfo is not None


def test_parse_many_realms_and_operations() -> None:
    events = [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "type": f"qbo.invoice.{op}.v1",
            "time": "2025-09-10T21:31:25Z",
            "intuitentityid": str(i),
            "intuitaccountid": realm,
            "data": {},
        }
        for i, (op, realm) in enumerate([("updated", "1"), ("voided", "2"), ("emailed", "1"), ("deleted", "3")])
    ]
    notices = parse(json.dumps(events).encode())
    assert [(n.tenant_id, n.operation) for n in notices] == [
        ("1", "update"),
        ("2", "void"),
        ("1", "emailed"),
        ("3", "delete"),
    ]


def test_parse_malformed_items_are_skipped() -> None:
    assert parse(b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"id":"1"}]}}]}') == []
    assert parse(b'[{"type":"bogus"}]') == []


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"42", b'"text"', b"{}", b'{"eventNotifications": 1}'])
def test_parse_a_body_that_is_no_notification_raises_payload_error(body: bytes) -> None:
    # Before issue 10 these answered [] (a signed but unreadable body was silently dropped); Xero's parser raises.
    with pytest.raises(PayloadError):
        parse(body)


def test_emulator_posts_signed_webhooks_in_both_formats(qbo: EmulatorHandle, company: Company) -> None:
    received: list[tuple[bytes, str]] = []
    got = threading.Event()
    sink = Flask("sink")

    @sink.post("/hook")
    def hook() -> str:
        received.append((request.get_data(), request.headers.get("intuit-signature", "")))
        got.set()
        return ""

    with serve(sink) as server:
        customer = company.customer("Webhook Ltd", "ap@webhook.example")
        try:
            for fmt in ("legacy", "cloudevents"):
                received.clear()
                got.clear()
                requests.post(
                    f"{qbo.url}/__admin/webhooks",
                    json={"url": f"{server.url}/hook", "verifier_token": VERIFIER, "format": fmt},
                    timeout=5,
                )
                invoice = qbo.store.create(
                    company.realm,
                    "Invoice",
                    {"CustomerRef": {"value": customer}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 10}]},
                )
                assert got.wait(5)
                body, signature = received[0]
                assert verify(body, signature, VERIFIER)
                notices = parse(body)
                assert any(
                    n.entity == "invoice"
                    and n.entity_id == invoice["Id"]
                    and n.operation == "create"
                    and n.tenant_id == company.realm
                    for n in notices
                )
                shape = json.loads(body)
                sample = fixture_json(
                    "qbo_webhook_cloudevents.json" if fmt == "cloudevents" else "qbo_webhook_legacy.json"
                )
                if fmt == "cloudevents":
                    assert isinstance(shape, list)
                    assert set(shape[0]) == set(sample[0])
                else:
                    assert set(shape["eventNotifications"][0]) == set(sample["eventNotifications"][0])
                    assert set(shape["eventNotifications"][0]["dataChangeEvent"]["entities"][0]) == set(
                        sample["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
                    )
        finally:
            qbo.emulator.notifier.config.url = ""
