"""RS-10: the same webhook delivered twice and out of order, through the real Flask route, the providers'
verifiers and parsers, the store, the scheduler's worker and a sync over the real emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.storage.tables import Invoice, WebhookDelivery
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import customer_email
from web import create_app

KEY = "rs10-webhook-signing-key"
RULES = rules([{"id": "later", "offset": 300, "remind": "firm"}])  # nothing falls due: only syncs happen
HEADERS = {"quickbooks": "intuit-signature", "xero": "x-xero-signature"}


def _quickbooks_event(tenant: str, invoice: str, ident: str, at: str) -> bytes:
    """A CloudEvents delivery (docs/payloads/qbo_webhook_cloudevents.json) of one invoice update."""
    event = {
        "specversion": "1.0",
        "id": ident,
        "source": "intuit.rs10",
        "type": "qbo.invoice.updated.v1",
        "datacontenttype": "application/json",
        "time": at,
        "intuitentityid": invoice,
        "intuitaccountid": tenant,
        "data": {},
    }
    return json.dumps([event], separators=(",", ":")).encode()


def _xero_event(tenant: str, invoice: str, ident: str, at: str) -> bytes:
    """A Xero INVOICE UPDATE event (docs/payloads/xero_webhook_invoice_event_item.json); Xero sends no
    event id, so an event is its tenant, resource, type and eventDateUtc (`ident` is not sent)."""
    event = {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice}",
        "resourceId": invoice,
        "eventDateUtc": at.removesuffix("Z"),
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }
    body = {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": ident}
    return json.dumps(body, separators=(",", ":")).encode()


EVENTS: dict[str, Callable[[str, str, str, str], bytes]] = {"quickbooks": _quickbooks_event, "xero": _xero_event}


def _deliver(world: Pipeline, client: FlaskClient, body: bytes) -> None:
    signature = world.kit.sign_webhook(body, KEY)
    headers = {HEADERS[world.kit.provider]: signature}
    response = client.post(
        f"/webhooks/{world.kit.provider}", data=body, headers=headers, content_type="application/json"
    )
    assert response.status_code == 200


def _deliveries(world: Pipeline) -> int:
    with world.services.store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def _local(world: Pipeline, connection: int, invoice: str) -> tuple[Decimal, Decimal, str]:
    with world.services.store.unit_of_work() as uow:
        row = uow.session.scalars(
            select(Invoice).where(Invoice.connection_id == connection, Invoice.external_id == invoice)
        ).one()
        return row.total, row.balance, row.status


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs10_duplicate_and_older_webhooks_are_processed_once_and_sync_re_reads(provider: str, tmp_path: Path) -> None:
    """Expected: processed once; the final local invoice equals the provider's current state (re-read, not replayed)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with pipeline(provider, tmp_path, RULES, start=now, webhook_key=KEY) as world:
        kit = world.kit
        tenant = kit.add_company("Echo Events Ltd")
        customer = kit.add_customer(tenant, "Twice Told", customer_email("Twice Told"))
        today = now.date()
        invoice = kit.add_invoice(
            tenant, customer, "EV-1", Decimal("1000.00"), "", today - timedelta(days=20), today + timedelta(days=10)
        )
        connection = world.connect(tenant)
        worker = world.worker()
        assert worker.tick().claimed == [connection]  # the first sync
        assert _local(world, connection, invoice)[1] == Decimal("1000.00")
        app = create_app(services=world.services)
        client = app.test_client()
        make = EVENTS[provider]
        older = make(tenant, invoice, "evt-older", (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        newer = make(tenant, invoice, "evt-newer", now.strftime("%Y-%m-%dT%H:%M:%S.000Z"))

        kit.pay(tenant, invoice, Decimal("400.00"))  # the change both events are about
        _deliver(world, client, newer)
        _deliver(world, client, newer)  # the provider's retry of the same event
        assert _deliveries(world) == 1
        world.clock.advance(timedelta(minutes=1))  # past the webhook debounce
        assert worker.tick().claimed == [connection]  # one sync for the event and its duplicate
        assert _local(world, connection, invoice)[1] == kit.balance(tenant, invoice) == Decimal("600.00")

        _deliver(world, client, newer)  # a late third copy after processing: recorded once, nothing due
        world.clock.advance(timedelta(minutes=1))
        assert worker.tick().claimed == []
        assert _deliveries(world) == 1

        kit.pay(tenant, invoice, Decimal("100.00"))  # the provider moves on
        _deliver(world, client, older)  # an older event arrives after the newer one
        assert _deliveries(world) == 2
        world.clock.advance(timedelta(minutes=1))
        assert worker.tick().claimed == [connection]
        total, balance, status = _local(world, connection, invoice)
        assert balance == kit.balance(tenant, invoice) == Decimal("500.00")  # the provider's current state
        assert total == Decimal("1000.00")
        assert status == "open"
        world.clock.advance(timedelta(minutes=1))
        assert worker.tick().claimed == []  # processed once: nothing left due
