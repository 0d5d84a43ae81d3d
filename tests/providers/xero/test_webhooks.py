"""Webhook signatures (x-xero-signature) and event parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.errors import PayloadError
from providers.xero import PROVIDER, webhooks

PAYLOADS = Path(__file__).resolve().parents[3] / "docs" / "payloads"
KEY = "webhook-signing-key"


def _sign(body: bytes, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_verify_accepts_the_right_signature_only() -> None:
    body = (PAYLOADS / "xero_webhook_contact_event.json").read_bytes()
    assert webhooks.verify(body, _sign(body), KEY)
    assert not webhooks.verify(body + b" ", _sign(body), KEY)
    assert not webhooks.verify(body, _sign(body, "other-key"), KEY)


@pytest.mark.parametrize("signature", ["", "not base64 !!", "AAAA"])
def test_verify_fails_closed_on_bad_signatures(signature: str) -> None:
    assert not webhooks.verify(b"{}", signature, KEY)


def test_verify_fails_closed_without_a_key() -> None:
    body = b'{"events":[]}'
    assert not webhooks.verify(body, _sign(body, ""), "")


def test_parse_contact_event() -> None:
    body = (PAYLOADS / "xero_webhook_contact_event.json").read_bytes()
    (notice,) = webhooks.parse(body)
    assert notice.tenant_id == "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
    assert notice.entity == "contact"
    assert notice.entity_id == "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
    assert notice.operation == "update"
    assert notice.occurred_at == datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC)
    assert notice.event_id


def test_parse_creditnote_event() -> None:
    (notice,) = webhooks.parse((PAYLOADS / "xero_webhook_creditnote_event.json").read_bytes())
    assert (notice.entity, notice.operation) == ("creditnote", "create")
    assert notice.entity_id == "55d84274-a3da-4829-a7c0-0cab601b95cc"


def test_parse_mixed_case_invoice_event_uses_ids_never_the_url() -> None:
    item = json.loads((PAYLOADS / "xero_webhook_invoice_event_item.json").read_text())
    item["resourceUrl"] = "https://attacker.example/steal"
    body = json.dumps({"events": [item], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "x"}).encode()
    (notice,) = webhooks.parse(body)
    assert (notice.entity, notice.operation) == ("invoice", "update")
    assert notice.entity_id == "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
    assert "attacker" not in repr(notice)


def test_intent_to_receive_is_an_empty_list() -> None:
    assert webhooks.parse((PAYLOADS / "xero_webhook_intent_to_receive.json").read_bytes()) == []


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"events": "x"}'])
def test_parse_rejects_bodies_that_are_not_deliveries(body: bytes) -> None:
    with pytest.raises(PayloadError):
        webhooks.parse(body)


def test_spec_wires_the_functions() -> None:
    assert PROVIDER.verify_webhook is webhooks.verify
    assert PROVIDER.parse_webhook is webhooks.parse
    assert PROVIDER.webhook_signature_header == "x-xero-signature"
    assert PROVIDER.supports_pkce
