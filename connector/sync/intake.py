"""Webhook intake: verify over the raw body, parse, deduplicate, and make the tenants' connections due.

Events carry ids only; nothing is fetched from a URL inside an event. The sync that follows reads
the entities from the configured API host.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from connector.errors import NudgeError, PayloadError
from connector.ports import ProviderSettings, ProviderSpec
from connector.storage import Store
from connector.storage.tables import WebhookDelivery

MAX_BODY_BYTES = 1_000_000
DEBOUNCE = timedelta(seconds=30)


class WebhookRejected(NudgeError):
    """A delivery that must not be accepted; `status` is the HTTP answer to give."""

    def __init__(self, user_message: str, status: int) -> None:
        super().__init__(user_message)
        self.status = status


@dataclass(frozen=True)
class WebhookOutcome:
    """What one webhook delivery did: events read, duplicates ignored, connections made due."""

    events: int
    duplicates: int
    connections_marked: int


def receive_webhook(
    store: Store, spec: ProviderSpec, settings: ProviderSettings, body: bytes, signature: str, now: datetime
) -> WebhookOutcome:
    """Verify (fail closed), parse and record one delivery; raises WebhookRejected with the HTTP status."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected("webhook body over 1 MB refused", 413)
    if not settings.webhook_key or not signature or not spec.verify_webhook(body, signature, settings.webhook_key):
        raise WebhookRejected("webhook signature missing or invalid", 401)
    try:
        # Every provider's deliveries are JSON; a signed body that is not (some parsers answer [] for
        # it) is refused here, whatever the provider's parser would make of it.
        json.loads(body)
        notices = spec.parse_webhook(body)
    except (PayloadError, ValueError, KeyError, TypeError) as exc:
        raise WebhookRejected(f"webhook body is not a {spec.display_name} event payload: {exc}", 400) from exc
    duplicates = marked = 0
    tenants: set[str] = set()
    with store.unit_of_work() as uow:
        for notice in notices:
            event_id = (
                notice.event_id
                or hashlib.sha256(
                    f"{notice.tenant_id}|{notice.entity}|{notice.entity_id}|{notice.operation}|{notice.occurred_at}".encode()
                ).hexdigest()
            )
            seen = uow.session.scalars(
                select(WebhookDelivery.id).where(
                    WebhookDelivery.provider == spec.key, WebhookDelivery.event_id == event_id
                )
            ).first()
            if seen is not None:
                duplicates += 1
                continue
            uow.session.add(WebhookDelivery(provider=spec.key, event_id=event_id, received_at=now))
            tenants.add(notice.tenant_id)
        uow.commit()
    with store.unit_of_work() as uow:
        marked = sum(uow.connections.mark_due(spec.key, tenant, now + DEBOUNCE) for tenant in sorted(tenants))
        uow.commit()
    return WebhookOutcome(len(notices), duplicates, marked)
