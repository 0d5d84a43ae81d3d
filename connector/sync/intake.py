"""Webhook intake: verify over the raw body, parse, deduplicate, and make the tenants' connections due.

Events carry ids only; nothing is fetched from a URL inside an event. The sync that follows reads
the entities from the configured API host.

A correctly signed body that cannot be read (not JSON, or not the provider's event shape) is not an
attack but a delivery we failed: it is recorded as a failed webhook_deliveries row (outcome "failed",
the reason, event id = SHA-256 of the body, so the provider's retries of it are recorded once) and
answered 200, because both providers retry anything else (Intuit holds later events behind it; Xero
disables the webhook after 24 h) and a retry of the same bytes cannot succeed. The tenant is then
not known for sure: when the raw text names exactly one tenant (QuickBooks `realmId` /
`intuitaccountid`, Xero `tenantId`), that tenant's connections are made due so the regular sync
catches what the event was about; otherwise the failure is recorded with no tenant and nothing
else is done (the periodic sync still runs).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from connector.errors import NudgeError, PayloadError
from connector.ports import ProviderSettings, ProviderSpec
from connector.storage import Store
from connector.storage.tables import WebhookDelivery

MAX_BODY_BYTES = 1_000_000
FAILED = "failed"
_TENANT_IN_TEXT = re.compile(rb'"(?:realmId|intuitaccountid|tenantId)"\s*:\s*"([0-9A-Za-z-]{1,100})"')
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
        return _record_failure(store, spec, body, f"not a {spec.display_name} event payload: {exc}", now)
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


def _record_failure(store: Store, spec: ProviderSpec, body: bytes, reason: str, now: datetime) -> WebhookOutcome:
    """Record a signed but unreadable delivery as failed; make its one named tenant due, if any."""
    tenants = {found.decode() for found in _TENANT_IN_TEXT.findall(body)}
    tenant = tenants.pop() if len(tenants) == 1 else None
    event_id = f"failed:{hashlib.sha256(body).hexdigest()}"
    marked = 0
    with store.unit_of_work() as uow:
        seen = uow.session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.provider == spec.key, WebhookDelivery.event_id == event_id)
        ).first()
        if seen is None:
            uow.session.add(
                WebhookDelivery(
                    provider=spec.key,
                    event_id=event_id,
                    received_at=now,
                    outcome=FAILED,
                    reason=reason[:2000],
                    tenant_id=tenant,
                )
            )
        if tenant is not None:
            marked = uow.connections.mark_due(spec.key, tenant, now + DEBOUNCE)
        uow.commit()
    return WebhookOutcome(0, 0 if seen is None else 1, marked)
