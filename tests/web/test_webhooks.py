"""Webhook deliveries through the web app: QuickBooks' published signature test vector and its variants,
and Xero's "intent to receive" handshake.

No emulator is needed: the deliveries are the recorded payloads, signed the way the providers sign them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from connector.config import Settings
from connector.storage import Store
from connector.storage.tables import WebhookDelivery
from connector.sync.intake import MAX_BODY_BYTES
from providers.quickbooks.webhooks import sign
from tests.support.webhooks import webhook_settings

FIXTURES = Path(__file__).resolve().parents[2] / "providers" / "quickbooks" / "fixtures"
# docs/provider-api-facts.md §1.9: Intuit's verifier token and signature for qbo_webhook_legacy_signed.json.
VECTOR_TOKEN = "b5771f19b12ddb4bcdb9f08bdc50bc63878a"
VECTOR_SIGNATURE = "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="
VECTOR_REALM = "1185883450"
URL = "/webhooks/quickbooks"
XERO_FIXTURES = Path(__file__).resolve().parents[2] / "providers" / "xero" / "fixtures"
XERO_KEY = "xero-webhook-signing-key"


def xero_sign(body: bytes, key: str = XERO_KEY) -> str:
    """x-xero-signature: base64(HMAC-SHA256(raw body, signing key)) (docs/provider-api-facts.md §2.6), computed here."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return webhook_settings(database_url, quickbooks_key=VECTOR_TOKEN, xero_key=XERO_KEY)


@pytest.fixture
def vector() -> bytes:
    return (FIXTURES / "qbo_webhook_legacy_signed.json").read_bytes()


def deliver(client: FlaskClient, body: bytes, signature: str | None, **headers: str) -> TestResponse:
    if signature is not None:
        headers["intuit-signature"] = signature
    return client.post(URL, data=body, headers=headers, content_type="application/json")


def assert_bare(response: TestResponse, status: int) -> None:
    """The answer providers expect: the status, an empty body, and no cookie."""
    assert response.status_code == status
    assert response.get_data() == b""
    assert "Set-Cookie" not in response.headers


def deliveries(store: Store) -> int:
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def test_the_published_test_vector_is_accepted(client: FlaskClient, store: Store, vector: bytes) -> None:
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE), 200)
    assert deliveries(store) == 1


def test_one_changed_byte_is_refused(client: FlaskClient, store: Store, vector: bytes) -> None:
    for index in (0, len(vector) // 2, len(vector) - 1):
        tampered = bytearray(vector)
        tampered[index] ^= 0x01
        assert_bare(deliver(client, bytes(tampered), VECTOR_SIGNATURE), 401)
    assert_bare(deliver(client, vector + b" ", VECTOR_SIGNATURE), 401)
    assert_bare(deliver(client, vector, None), 401)  # no signature header
    assert_bare(deliver(client, vector, "not base64!"), 401)
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE, **{"x-xero-signature": VECTOR_SIGNATURE}), 200)
    assert deliveries(store) == 1


def test_a_signed_body_that_is_not_an_event_payload_is_recorded_failed(client: FlaskClient, store: Store) -> None:
    """Intuit expects 200 (it holds later events behind a failed one): recorded as failed, answered 200."""
    for body in (b"{not json", b"\xff\xfe", b'{"eventNotifications": [}'):
        assert_bare(deliver(client, body, sign(body, VECTOR_TOKEN)), 200)
        assert_bare(deliver(client, body, sign(body, VECTOR_TOKEN)), 200)  # a retry is recorded once
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(select(WebhookDelivery)).all()
        assert [(row.outcome, row.tenant_id) for row in rows] == [("failed", None)] * 3
        assert all("not a QuickBooks Online event payload" in row.reason for row in rows)
    # A truncated body that still names one realm makes that realm's connections due.
    with store.unit_of_work() as uow:
        org = uow.organizations.add("Webhook Org")
        connection = uow.connections.add(org.id, "quickbooks", VECTOR_REALM, "Books", next_run_at=None)
        connection.next_run_at = datetime(2030, 1, 1, tzinfo=UTC)
        uow.commit()
    cut = b'{"eventNotifications":[{"realmId":"' + VECTOR_REALM.encode() + b'","dataChangeEvent":{"entit'
    assert_bare(deliver(client, cut, sign(cut, VECTOR_TOKEN)), 200)
    with store.unit_of_work() as uow:
        failed = uow.session.scalars(select(WebhookDelivery).where(WebhookDelivery.tenant_id == VECTOR_REALM)).one()
        assert failed.outcome == "failed"
        [due] = uow.connections.with_tenant("quickbooks", VECTOR_REALM)
        assert due.next_run_at is not None
        assert due.next_run_at < datetime(2030, 1, 1, tzinfo=UTC)
    # Well-formed JSON naming no events is a delivery of nothing: accepted.
    empty = b'{"eventNotifications": []}'
    assert_bare(deliver(client, empty, sign(empty, VECTOR_TOKEN)), 200)


def test_a_duplicate_delivery_is_recorded_once(client: FlaskClient, store: Store, vector: bytes) -> None:
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE), 200)
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE), 200)  # retried by QuickBooks: still 200
    assert deliveries(store) == 1


def test_a_webhook_makes_the_connection_of_its_realm_due(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    vector: bytes,
) -> None:
    later = datetime.now(UTC) + timedelta(hours=6)
    with store.unit_of_work() as uow:
        realm_id = uow.connections.add(signed_in.org_id, "quickbooks", VECTOR_REALM, "Vector Co", next_run_at=later).id
        other_id = uow.connections.add(signed_in.org_id, "quickbooks", "999", "Other realm", next_run_at=later).id
        uow.commit()
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE), 200)
    with store.unit_of_work() as uow:
        due = uow.connections.get(signed_in.org_id, realm_id)
        untouched = uow.connections.get(signed_in.org_id, other_id)
        assert due is not None
        assert untouched is not None
        assert due.next_run_at is not None
        assert due.next_run_at <= datetime.now(UTC) + timedelta(seconds=30)
        assert untouched.next_run_at == later


def test_a_cloudevents_delivery_signed_with_the_key_is_accepted(client: FlaskClient, store: Store) -> None:
    body = (FIXTURES / "qbo_webhook_cloudevents.json").read_bytes()
    assert_bare(deliver(client, body, sign(body, VECTOR_TOKEN)), 200)
    assert deliveries(store) == len(json.loads(body))


def test_over_one_megabyte_is_413(client: FlaskClient, store: Store) -> None:
    padding = b" " * (MAX_BODY_BYTES + 1 - 2)
    body = b"{" + padding + b"}"
    assert len(body) == MAX_BODY_BYTES + 1
    assert_bare(deliver(client, body, sign(body, VECTOR_TOKEN)), 413)
    assert deliveries(store) == 0


def test_no_cookie_even_for_a_signed_in_browser(client: FlaskClient, signed_in: Any, vector: bytes) -> None:
    """A session cookie sent along is neither read into a login nor refreshed."""
    assert_bare(deliver(client, vector, VECTOR_SIGNATURE), 200)
    assert_bare(deliver(client, b"{}", "bad"), 401)


def test_unknown_provider_and_wrong_method(client: FlaskClient, vector: bytes) -> None:
    response = client.post("/webhooks/freshbooks", data=vector, headers={"intuit-signature": VECTOR_SIGNATURE})
    assert_bare(response, 404)
    assert client.get(URL).status_code == 405


def test_no_csrf_token_or_sign_in_needed(client: FlaskClient, vector: bytes) -> None:
    # The app has CSRF on for every form; this endpoint is exempt (the signature is the authentication).
    response = deliver(client, vector, VECTOR_SIGNATURE, Origin="https://developer.intuit.com")
    assert_bare(response, 200)


def test_xero_intent_to_receive(client: FlaskClient, store: Store) -> None:
    """Xero sends empty event lists, some correctly signed (answer 200) and some not (answer 401); empty bodies."""
    body = (XERO_FIXTURES / "xero_webhook_intent_to_receive.json").read_bytes()
    ok = client.post(
        "/webhooks/xero", data=body, headers={"x-xero-signature": xero_sign(body)}, content_type="application/json"
    )
    assert_bare(ok, 200)
    for signature in (xero_sign(body, "some other key"), xero_sign(body + b" "), ""):
        bad = client.post(
            "/webhooks/xero", data=body, headers={"x-xero-signature": signature}, content_type="application/json"
        )
        assert_bare(bad, 401)
    # QuickBooks' header is not Xero's: a correct signature under the wrong name is still missing.
    wrong_header = client.post("/webhooks/xero", data=body, headers={"intuit-signature": xero_sign(body)})
    assert_bare(wrong_header, 401)
    assert deliveries(store) == 0


def test_a_xero_invoice_event_makes_its_organisations_connection_due(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
) -> None:
    event = json.loads((XERO_FIXTURES / "xero_webhook_invoice_event_item.json").read_bytes())  # one event item
    body = json.dumps({"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "WEB"}).encode()
    tenant = event["tenantId"]
    later = datetime.now(UTC) + timedelta(hours=6)
    with store.unit_of_work() as uow:
        connection_id = uow.connections.add(signed_in.org_id, "xero", tenant, "Xero Org", next_run_at=later).id
        uow.commit()
    response = client.post(
        "/webhooks/xero", data=body, headers={"x-xero-signature": xero_sign(body)}, content_type="application/json"
    )
    assert_bare(response, 200)
    with store.unit_of_work() as uow:
        row = uow.connections.get(signed_in.org_id, connection_id)
        assert row is not None
        assert row.next_run_at is not None
        assert row.next_run_at <= datetime.now(UTC) + timedelta(seconds=30)
