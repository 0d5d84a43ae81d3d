"""Signed webhook deliveries of the QuickBooks emulator (docs/provider-api-facts.md §1.9).

Changes are queued and posted from one background thread (started at the first change) to the
configured URL, in the legacy `eventNotifications` shape or as a CloudEvents array, with header
`intuit-signature` = base64(HMAC-SHA256(raw body, verifier token)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

_CLOUD_OPS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Emailed": "emailed",
    "Merge": "merged",
}


def sign(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` header value for `body`."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def legacy_body(events: list[tuple[str, str, str, str, datetime]]) -> bytes:
    """Legacy body: one eventNotifications item per realm (payload qbo_webhook_legacy.json)."""
    by_realm: dict[str, list[dict[str, str]]] = {}
    for realm, entity, ident, operation, when in events:
        by_realm.setdefault(realm, []).append(
            {"id": ident, "operation": operation, "name": entity, "lastUpdated": _utc(when)}
        )
    notes = [{"realmId": realm, "dataChangeEvent": {"entities": items}} for realm, items in by_realm.items()]
    return json.dumps({"eventNotifications": notes}, separators=(",", ":")).encode()


def cloudevents_body(events: list[tuple[str, str, str, str, datetime]], source: str) -> bytes:
    """CloudEvents body: a JSON array (payload qbo_webhook_cloudevents.json)."""
    items = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": source,
            "type": f"qbo.{entity.lower()}.{_CLOUD_OPS.get(operation, operation.lower())}.v1",
            "datacontenttype": "application/json",
            "time": _utc(when),
            "intuitentityid": ident,
            "intuitaccountid": realm,
            "data": {},
        }
        for realm, entity, ident, operation, when in events
    ]
    return json.dumps(items, separators=(",", ":")).encode()


@dataclass
class WebhookConfig:
    url: str = ""
    verifier_token: str = ""
    format: str = "legacy"  # legacy | cloudevents
    max_events: int = 100  # up to 100 events per delivery (docs/provider-api-facts.md §1.9)


@dataclass
class Delivery:
    at: str
    url: str
    status: int
    events: int
    body: str


@dataclass
class Notifier:
    """Queues entity changes and posts them, signed, to the configured webhook URL."""

    config: WebhookConfig = field(default_factory=WebhookConfig)
    deliveries: list[Delivery] = field(default_factory=list)
    _queue: queue.Queue[tuple[str, str, str, str, datetime] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Event = field(default_factory=threading.Event)

    def __call__(self, realm: str, entity: str, ident: str, operation: str, when: datetime) -> None:
        if not self.config.url:
            return
        with self._lock:
            self._idle.clear()
            self._queue.put((realm, entity, ident, operation, when))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qbo-emulator-webhooks", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued change has been delivered (tests)."""
        if self._queue.empty() and self._idle.is_set():
            return True
        return self._idle.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.config.max_events:
                try:
                    nxt = self._queue.get(timeout=0.05)
                except queue.Empty:
                    break
                if nxt is None:
                    self._deliver(batch)
                    return
                batch.append(nxt)
            self._deliver(batch)
            if self._queue.empty():
                self._idle.set()

    def _deliver(self, batch: list[tuple[str, str, str, str, datetime]]) -> None:
        config = self.config
        body = cloudevents_body(batch, "intuit.emulator") if config.format == "cloudevents" else legacy_body(batch)
        headers: dict[str, Any] = {
            "Content-Type": "application/json",
            "intuit-signature": sign(body, config.verifier_token),
        }
        try:
            status = requests.post(config.url, data=body, headers=headers, timeout=5).status_code
        except requests.RequestException:
            status = 0
        self.deliveries.append(Delivery(datetime.now(UTC).isoformat(), config.url, status, len(batch), body.decode()))
