"""RS-32 — webhook signature: the real Flask app, the real QuickBooks and Xero verifiers, SQLite.

Expected (catalogue): a wrong signature gives 401 and nothing is enqueued (Xero requires 401); a
re-serialized body with changed whitespace fails; the exact raw body passes; the Xero intent-to-receive
mix of good and bad signatures returns 200 and 401 correctly; a missing header or unconfigured key
gives 401 (fail closed); a body over 1 MB is rejected; the comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.config import Settings
from connector.storage import Store
from connector.storage.tables import WebhookDelivery
from providers.quickbooks import webhooks as qbo_webhooks
from providers.xero import webhooks as xero_webhooks
from tests.support.webhooks import webhook_settings
from web import create_app
from web.extensions import SERVICES_KEY

ROOT = Path(__file__).resolve().parents[2]

QBO_KEY = "rs32-quickbooks-verifier-token"
XERO_KEY = "rs32-xero-signing-key"


def _sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def _settings(database_url: str, qbo_key: str = QBO_KEY, xero_key: str = XERO_KEY) -> Settings:
    return webhook_settings(database_url, quickbooks_key=qbo_key, xero_key=xero_key)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(_settings(f"sqlite:///{tmp_path / 'rs32.sqlite3'}"))
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    yield app
    store.dispose()


def _deliveries(app: Flask) -> int:
    store: Store = app.extensions[SERVICES_KEY].store
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def _post(client: FlaskClient, provider: str, body: bytes, headers: dict[str, str]) -> int:
    response = client.post(f"/webhooks/{provider}", data=body, headers=headers, content_type="application/json")
    assert response.get_data() == b""  # empty body whatever the outcome
    return response.status_code


def _qbo_body() -> bytes:
    return (ROOT / "providers" / "quickbooks" / "fixtures" / "qbo_webhook_legacy.json").read_bytes()


def test_rs32_wrong_signature_is_401_and_nothing_is_enqueued(app: Flask) -> None:
    """A wrong signature gives 401 and nothing is enqueued."""
    client = app.test_client()
    body = _qbo_body()
    assert _post(client, "quickbooks", body, {"intuit-signature": _sign(body, "not the key")}) == 401
    assert _post(client, "xero", body, {"x-xero-signature": _sign(body, "not the key")}) == 401
    assert _deliveries(app) == 0


def test_rs32_reserialized_body_fails_and_the_exact_raw_body_passes(app: Flask) -> None:
    """A re-serialized body with changed whitespace fails; the exact raw body passes."""
    client = app.test_client()
    body = _qbo_body()
    signature = _sign(body, QBO_KEY)
    reserialized = json.dumps(json.loads(body), indent=4).encode()
    assert reserialized != body
    assert _post(client, "quickbooks", reserialized, {"intuit-signature": signature}) == 401
    assert _deliveries(app) == 0
    assert _post(client, "quickbooks", body, {"intuit-signature": signature}) == 200
    assert _deliveries(app) > 0


def test_rs32_xero_intent_to_receive_mix_of_good_and_bad_signatures(app: Flask) -> None:
    """The Xero ITR mix of good and bad signatures returns 200 and 401 correctly."""
    client = app.test_client()
    body = (ROOT / "providers" / "xero" / "fixtures" / "xero_webhook_intent_to_receive.json").read_bytes()
    series = [True, False, True, False, False, True]
    answers = [
        _post(client, "xero", body, {"x-xero-signature": _sign(body, XERO_KEY if good else "wrong-key")})
        for good in series
    ]
    assert answers == [200 if good else 401 for good in series]


def test_rs32_missing_header_or_unconfigured_key_fails_closed(tmp_path: Path) -> None:
    """A missing header or unconfigured key gives 401 (fail closed)."""
    body = _qbo_body()
    keyless = _settings(f"sqlite:///{tmp_path / 'keyless.sqlite3'}", qbo_key="", xero_key="")
    app = create_app(keyless)
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    try:
        client = app.test_client()
        assert _post(client, "quickbooks", body, {"intuit-signature": _sign(body, "")}) == 401
        assert _post(client, "xero", body, {"x-xero-signature": _sign(body, "")}) == 401
        assert _post(client, "quickbooks", body, {}) == 401
        assert _deliveries(app) == 0
    finally:
        store.dispose()


def test_rs32_missing_header_with_a_configured_key_is_401(app: Flask) -> None:
    """A missing header gives 401 (fail closed)."""
    client = app.test_client()
    assert _post(client, "quickbooks", _qbo_body(), {}) == 401
    assert _post(client, "xero", _qbo_body(), {"x-xero-signature": ""}) == 401
    assert _deliveries(app) == 0


def test_rs32_body_over_one_megabyte_is_rejected(app: Flask) -> None:
    """A body over 1 MB is rejected."""
    client = app.test_client()
    body = b'{"eventNotifications": [], "pad": "' + b"x" * 1_000_001 + b'"}'
    assert _post(client, "quickbooks", body, {"intuit-signature": _sign(body, QBO_KEY)}) == 413
    assert _deliveries(app) == 0


@pytest.mark.parametrize("verify", [qbo_webhooks.verify, xero_webhooks.verify], ids=["quickbooks", "xero"])
def test_rs32_comparison_is_constant_time(verify: object) -> None:
    """The comparison is constant-time (hmac.compare_digest)."""
    source = inspect.getsource(verify)  # type: ignore[arg-type]
    assert "hmac.compare_digest(" in source
    assert "==" not in source.split("hmac.new", 1)[1]  # no ordinary comparison of the digests
