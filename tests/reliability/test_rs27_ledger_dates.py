"""RS-27 — org time zone Pacific/Auckland (and America/Los_Angeles), server TZ=UTC, Xero `DueDate` `/Date(…)/`.

The real parts: the Xero emulator over HTTP (an organisation in the given zone: its `Timezone` in
/Organisation, its date fields as `/Date(ms+0000)/` of local midnight beside `DueDateString`), xero-python,
a SQLite store, the sync, the planner and the executor (reminder to an aiosmtpd sink, late fee written back),
with Nudge's FakeClock and the emulator's clock moved together. This process runs with TZ=UTC.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.storage.tables import Invoice
from connector.worker.turn import run_connection
from providers._emulator.kit import EmulatorKit, emulator_kit
from providers.xero.adapter import XeroAdapter
from providers.xero.client import RateLimiter
from providers.xero.oauth import LocalTokenSource, tokens_from_response
from tests.support.clock import FakeClock
from tests.support.pipeline import rules
from tests.support.workers import SmtpSink, connect, nudge_database, organization, smtp_sink, write_config

DUE = date(2026, 2, 4)


def _rules(zone: str) -> dict[str, Any]:
    steps = [{"id": "late1", "offset": 1, "remind": "firm", "late_fee": "flat5"}]
    return rules(
        steps,
        time_zone=zone,
        catch_up=None,
        late_fees={"flat5": {"kind": "flat", "amount": 5, "warning_required": False}},
    )


@dataclass
class World:
    kit: EmulatorKit
    sink: SmtpSink
    services: Services
    clock: FakeClock
    zone: ZoneInfo
    tenant: str
    invoice: str
    connection_id: int

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        """Move Nudge's clock and Xero's to the organisation-local wall time `day` `hour`:`minute`."""
        local = datetime.combine(day, dt_time(hour, minute), tzinfo=self.zone)
        self.clock.moment = local.astimezone(ZoneInfo("UTC"))
        self.kit.set_now(self.clock.moment)

    def turn(self) -> None:
        run_connection(self.services, self.connection_id, "rs27", reminders=self.services.reminder_sender())

    def stored_due_date(self) -> date | None:
        with self.services.store.unit_of_work() as uow:
            row = uow.session.scalars(select(Invoice).where(Invoice.external_id == self.invoice)).one()
            return row.due_date

    def fee_invoices(self) -> list[dict[str, Any]]:
        state = self.kit.emulator.state  # type: ignore[attr-defined]
        with state.lock:
            ledger = state.ledgers[self.tenant]
            return [dict(i) for i in ledger.invoices.values() if str(i.get("Reference", "")).startswith("Late fee")]


@pytest.fixture
def utc_process() -> Iterator[None]:
    """The server runs in UTC (TZ=UTC), as the catalogue's scenario says."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(params=["Pacific/Auckland", "America/Los_Angeles"])
def world(request: pytest.FixtureRequest, tmp_path: Path, utc_process: None) -> Iterator[World]:
    zone = str(request.param)
    with ExitStack() as stack:
        kit = stack.enter_context(emulator_kit("xero", rate_limits=False))
        sink = stack.enter_context(smtp_sink())
        url = stack.enter_context(nudge_database("sqlite", tmp_path))
        config = write_config(tmp_path, url, kit, sink.port, _rules(zone), scheduler={"lease_seconds": 60})
        clock = FakeClock(datetime(2026, 2, 1, tzinfo=ZoneInfo("UTC")))
        kit.set_now(clock.moment)
        services = build(load_settings(str(config)), clock=clock)
        stack.callback(services.store.dispose)
        services.store.upgrade()
        tenant = kit.add_company(f"Org in {zone}")
        state = kit.emulator.state  # type: ignore[attr-defined]
        with state.lock:
            state.ledgers[tenant].time_zone = zone
        customer = kit.add_customer(tenant, "Harbour Cafe", "ap@harbour-cafe.example")
        invoice = kit.add_invoice(tenant, customer, "INV-27", Decimal("200.00"), "NZD", date(2026, 1, 5), DUE)
        connection_id = connect(services, kit, tenant, organization(services), "rs")
        with services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            row.time_zone = zone
            uow.commit()
        yield World(kit, sink, services, clock, ZoneInfo(zone), tenant, invoice, connection_id)


def _raw_invoice(world: World) -> dict[str, Any]:
    body = world.kit.grant(world.tenant)
    answer = requests.get(
        f"{world.kit.url}/api.xro/2.0/Invoices/{world.invoice}",
        headers={"Authorization": f"Bearer {body['access_token']}", "xero-tenant-id": world.tenant},
        timeout=10,
    )
    answer.raise_for_status()
    invoice: dict[str, Any] = answer.json()["Invoices"][0]
    return invoice


def test_rs27_stored_due_date_equals_due_date_string(world: World) -> None:
    """Xero `DueDate` `/Date(…)/` at the org's midnight → the stored due date equals `DueDateString`."""
    raw = _raw_invoice(world)
    assert raw["DueDateString"] == "2026-02-04T00:00:00"
    if world.zone.key == "Pacific/Auckland":  # the ms instant is 11:00 UTC the day before
        eleven_utc = datetime(2026, 2, 3, 11, 0, tzinfo=ZoneInfo("UTC"))
        assert raw["DueDate"] == f"/Date({int(eleven_utc.timestamp() * 1000)}+0000)/"
    world.at(date(2026, 2, 2), 12)
    world.turn()
    assert world.stored_due_date() == date.fromisoformat(raw["DueDateString"][:10])


def test_rs27_one_day_overdue_fires_on_the_org_local_next_day_and_the_fee_is_dated_locally(world: World) -> None:
    """ "1 day overdue" fires on the org-local next day; the late-fee invoice is sent with date-only fields."""
    world.at(date(2026, 2, 4), 23, 30)  # the due date's last half hour, org-local (LA: already Feb 5 UTC)
    world.turn()
    assert world.sink.received == []
    assert world.fee_invoices() == []
    # The org-local next day at a time when the UTC date differs: Auckland's morning (UTC: still Feb 4),
    # Los Angeles' evening (UTC: already Feb 6).
    hour, minute = (0, 30) if world.zone.key == "Pacific/Auckland" else (17, 0)
    world.at(date(2026, 2, 5), hour, minute)
    assert world.clock.moment.date() != date(2026, 2, 5)
    world.turn()
    assert len(world.sink.received) == 1
    [fee] = world.fee_invoices()
    assert fee["Date"] == date(2026, 2, 5)
    assert fee["DueDate"] == date(2026, 2, 5)


def test_rs27_fee_dates_travel_without_an_offset() -> None:
    """The late-fee invoice is sent with date-only fields (no offset): `/Date(<ms of that date's UTC midnight>)/`."""
    from xero_python.accounting import Invoice as XeroInvoice
    from xero_python.api_client.serializer import serialize

    wire = serialize(XeroInvoice(date=date(2026, 2, 5), due_date=date(2026, 2, 5)))
    assert wire["Date"] == "/Date(1770249600000)/"
    assert wire["DueDate"] == wire["Date"]


def test_rs27_the_adapter_dates_by_xeros_clock_in_the_org_zone(world: World) -> None:
    """Fee dates are calendar dates in the ledger's time zone (from /Organisation), at Xero's own time."""
    body = world.kit.grant(world.tenant)
    settings = world.services.registry.settings("xero")
    tokens = LocalTokenSource(settings, tokens_from_response(body, world.clock.moment))
    adapter = XeroAdapter(world.tenant, tokens, settings, limiter=RateLimiter())
    assert adapter.ledger_zone() == world.zone
    noon_utc = datetime(2026, 2, 5, 12, 0, tzinfo=ZoneInfo("UTC"))
    stamp = f"/Date({int(noon_utc.timestamp() * 1000)})/"
    expected = noon_utc.astimezone(world.zone).date()
    assert adapter.ledger_date({"DateTimeUTC": stamp}) == expected


def test_rs27_quickbooks_fee_invoice_is_dated_in_the_company_zone() -> None:
    """Repeat with America/Los_Angeles on QuickBooks → the fee invoice's TxnDate is the company's date, not UTC's."""
    from connector.domain.money import Money
    from connector.ports import TokenSet
    from providers.quickbooks import oauth as qbo_oauth
    from providers.quickbooks.adapter import build_adapter
    from tests.support.tokens import MemoryTokenSource

    with emulator_kit("quickbooks", rate_limits=False) as kit:
        realm = kit.add_company("Pasadena Paints", "USD", utc_offset_hours=-8)
        customer = kit.add_customer(realm, "Rose Bowl Diner", "ap@rose-bowl.example")
        invoice_id = kit.add_invoice(realm, customer, "1027", Decimal("300.00"), "USD", date(2026, 1, 5), DUE)
        evening = datetime.combine(date(2026, 2, 5), dt_time(20, 0), tzinfo=ZoneInfo("America/Los_Angeles"))
        kit.set_now(evening)  # 04:00 UTC on Feb 6
        settings = kit.settings("http://127.0.0.1:9/oauth/quickbooks/callback", retry_base_s=0.01)
        tokens = MemoryTokenSource(settings, TokenSet.from_response(kit.grant(realm), evening), qbo_oauth.refresh)
        adapter = build_adapter(realm, tokens, settings)
        snapshot = adapter.get_invoice(invoice_id)
        assert snapshot is not None
        written = adapter.create_fee_invoice(snapshot, Money.of(Decimal("5.00"), "USD"), "Late fee", "rs27-qbo")
        fee = adapter.get_invoice(written.external_ref)
        assert fee is not None
        assert fee.issue_date == date(2026, 2, 5)
        assert fee.due_date == date(2026, 2, 5)
