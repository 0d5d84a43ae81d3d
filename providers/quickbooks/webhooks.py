"""QuickBooks webhooks: signature check and both payload formats (docs/provider-api-facts.md §1.9).

Header `intuit-signature` = base64(HMAC-SHA256(raw body, verifier token)). Bodies come as the legacy
`{"eventNotifications": [...]}` object or as a CloudEvents JSON array (`type` `qbo.<entity>.<op>.v1`);
both carry ids only — the entity is fetched afterwards from the configured API host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from connector.domain.model import ChangeNotice
from connector.errors import PayloadError
from providers.quickbooks.constants import PROVIDER_KEY, SIGNATURE_HEADER
from providers.quickbooks.mapping import parse_instant

__all__ = ["SIGNATURE_HEADER", "parse", "sign", "verify"]

# CloudEvents verbs → the lower-case operations of ChangeNotice.
_CLOUD_OPERATIONS = {
    "created": "create",
    "updated": "update",
    "deleted": "delete",
    "voided": "void",
    "emailed": "emailed",
    "merged": "merge",
}


def verify(body: bytes, signature: str, key: str) -> bool:
    """True when `signature` is the base64 HMAC-SHA256 of the raw `body` under `key` (constant time)."""
    if not key or not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


def sign(body: bytes, key: str) -> str:
    """The `intuit-signature` value for `body` (tests and the emulator's counterpart)."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _items(container: Any, key: str) -> list[Any]:
    """`container[key]` when the container is an object and that value a list; else nothing."""
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, list) else []


def _legacy(payload: dict[str, Any]) -> list[ChangeNotice]:
    notices: list[ChangeNotice] = []
    for note in _items(payload, "eventNotifications"):
        if not isinstance(note, dict):
            continue
        realm = str(note.get("realmId") or "")
        for entity in _items(note.get("dataChangeEvent"), "entities"):
            if not isinstance(entity, dict) or not entity.get("id") or not entity.get("name"):
                continue
            notices.append(
                ChangeNotice(
                    tenant_id=realm,
                    entity=str(entity["name"]).lower(),
                    entity_id=str(entity["id"]),
                    operation=str(entity.get("operation") or "update").lower(),
                    occurred_at=_instant(entity.get("lastUpdated")),
                )
            )
    return notices


def _cloudevents(events: list[Any]) -> list[ChangeNotice]:
    notices: list[ChangeNotice] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        parts = str(event.get("type") or "").split(".")
        if len(parts) < 3 or parts[0] != "qbo" or not event.get("intuitentityid"):
            continue
        verb = parts[2].lower()
        notices.append(
            ChangeNotice(
                tenant_id=str(event.get("intuitaccountid") or ""),
                entity=parts[1].lower(),
                entity_id=str(event["intuitentityid"]),
                operation=_CLOUD_OPERATIONS.get(verb, verb),
                occurred_at=_instant(event.get("time")),
                event_id=str(event.get("id") or ""),
            )
        )
    return notices


def _unreadable(why: str) -> PayloadError:
    return PayloadError(
        f"A signed QuickBooks webhook could not be read ({why}); the connection is synced instead.",
        provider=PROVIDER_KEY,
    )


def parse(body: bytes) -> list[ChangeNotice]:
    """Change notices of one delivery in either format; malformed items are skipped.

    A body that is not a notification at all (not UTF-8 JSON, neither a CloudEvents array nor an
    object with an `eventNotifications` list) raises PayloadError, as Xero's parser does.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _unreadable("not UTF-8 JSON") from None
    if isinstance(payload, list):
        return _cloudevents(payload)
    if isinstance(payload, dict) and isinstance(payload.get("eventNotifications"), list):
        return _legacy(payload)
    raise _unreadable("neither a CloudEvents array nor an eventNotifications object")
