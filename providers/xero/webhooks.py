"""Xero webhooks: signature check and event parsing (docs/provider-api-facts.md §2.6).

`x-xero-signature` is base64(HMAC-SHA256(raw body, webhook key)). Events carry ids only; the entity is
fetched afterwards from the configured API host — `resourceUrl` is never used (docs/design.md "Secrets").
An intent-to-receive delivery has no events and parses to an empty list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from connector.domain.model import ChangeNotice
from connector.errors import PayloadError
from providers.xero.constants import PROVIDER_KEY, SIGNATURE_HEADER
from providers.xero.mapping import parse_instant

__all__ = ["SIGNATURE_HEADER", "parse", "verify"]


def verify(body: bytes, signature: str, key: str) -> bool:
    """True only when `signature` is the base64 HMAC-SHA256 of the raw `body` under `key` (fails closed)."""
    if not signature or not key or not isinstance(body, (bytes, bytearray)):
        return False
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(key.encode("utf-8"), bytes(body), hashlib.sha256).digest()
    return hmac.compare_digest(presented, expected)


def parse(body: bytes) -> list[ChangeNotice]:
    """Events of one delivery as ChangeNotices; raises PayloadError for a body that is not a Xero delivery."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("The Xero webhook body is not JSON.", provider=PROVIDER_KEY) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise PayloadError("The Xero webhook body has no events list.", provider=PROVIDER_KEY)
    notices: list[ChangeNotice] = []
    for event in payload["events"]:
        if not isinstance(event, dict):
            continue
        tenant = str(event.get("tenantId") or "")
        resource = str(event.get("resourceId") or "")
        category = str(event.get("eventCategory") or "").lower()  # docs show mixed case: compare lowered
        kind = str(event.get("eventType") or "").lower()
        if not (tenant and resource and category and kind):
            continue
        occurred: datetime | None
        try:
            occurred = parse_instant(event["eventDateUtc"]) if event.get("eventDateUtc") else None
        except ValueError:
            occurred = None
        stamp = str(event.get("eventDateUtc") or "")
        event_id = hashlib.sha256(f"{tenant}|{category}|{resource}|{kind}|{stamp}".encode()).hexdigest()[:32]
        notices.append(
            ChangeNotice(
                tenant_id=tenant,
                entity=category,
                entity_id=resource,
                operation=kind,
                occurred_at=occurred,
                event_id=event_id,
            )
        )
    return notices
