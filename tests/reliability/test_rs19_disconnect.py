"""RS-19 — disconnect from Nudge and from the provider side (Xero half and the service-level half).

The real parts: the Xero emulator over HTTP (connections with `authEventId`, JWT access tokens,
DELETE /connections/{id}, and its `connections/remove` knob: an organisation's admin disconnecting the
app in Xero), xero-python, a SQLite store and the real Worker on a FakeClock. The QuickBooks Disconnect-URL
route (a confirmation page and a POST) is the web engineer's; its service call is the same `disconnect`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.connections.connect import begin_connect, complete_connect, disconnect
from connector.storage.tables import Connection
from connector.worker.scheduler import Lease, Worker
from connector.worker.turn import run_connection
from providers._emulator.kit import EmulatorKit, emulator_kit
from tests.support.clock import FakeClock
from tests.support.pipeline import rules
from tests.support.workers import connect, nudge_database, organization, smtp_sink, write_config

RULES = rules([{"id": "late", "offset": 1, "remind": "firm"}], catch_up=None)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class World:
    kit: EmulatorKit
    services: Services
    clock: FakeClock
    worker: Worker
    orgs: tuple[int, int]
    tenants: dict[int, str]  # connection id -> tenant

    def row(self, connection_id: int) -> Connection:
        with self.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            uow.session.expunge(row)
            return row

    def data_statuses(self, tenant: str) -> list[int]:
        return [int(c["status"]) for c in self.kit.calls("data", tenant)]

    def oauth_calls(self, method: str) -> list[str]:
        return [str(c["path"]) for c in self.kit.calls("oauth") if c["method"] == method]

    def xero_connections(self) -> set[str]:
        """Tenants the emulated Xero user still has connected to the app."""
        state = self.kit.emulator.state  # type: ignore[attr-defined]
        with state.lock:
            return {str(c["tenantId"]) for c in state.connections}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        kit = stack.enter_context(emulator_kit("xero", rate_limits=False))
        sink = stack.enter_context(smtp_sink())
        url = stack.enter_context(nudge_database("sqlite", tmp_path))
        config = write_config(tmp_path, url, kit, sink.port, RULES, scheduler={"lease_seconds": 60, "concurrency": 1})
        clock = FakeClock(START)
        kit.set_now(START)
        services = build(load_settings(str(config)), clock=clock)
        stack.callback(services.store.dispose)
        services.store.upgrade()
        orgs = (organization(services, "Practice A"), organization(services, "Practice B"))
        tenants: dict[int, str] = {}
        # One Xero user connects one organisation into each Nudge organization (two consents).
        for org, name in zip(orgs, ("Aotearoa Joinery", "Bay Plumbing"), strict=True):
            tenant = kit.add_company(name)
            customer = kit.add_customer(tenant, f"{name} Client", f"ap@{name.split()[0].lower()}.example")
            kit.add_invoice(tenant, customer, "INV-1", Decimal("120.00"), "NZD", date(2026, 1, 5), date(2026, 2, 4))
            tenants[connect(services, kit, tenant, org, "rs")] = tenant
        reminders = services.reminder_sender()

        def process(connection_id: int, lease: Lease) -> None:
            run_connection(services, connection_id, lease.owner, reminders=reminders, renew=lease.renew)

        worker = Worker(services.store, process, services.settings.scheduler, clock, owner="rs19")
        kit.clear_calls()
        yield World(kit, services, clock, worker, orgs, tenants)


def test_rs19_each_connect_stores_only_the_organisations_of_its_own_consent(world: World) -> None:
    """Connect lists GET /connections?authEventId=… → each Nudge organization holds only what it was given."""
    first, second = world.tenants
    assert world.row(first).organization_id == world.orgs[0]
    assert world.row(second).organization_id == world.orgs[1]
    with world.services.store.unit_of_work() as uow:
        assert [c.tenant_id for c in uow.connections.for_organization(world.orgs[0])] == [world.tenants[first]]
        assert [c.tenant_id for c in uow.connections.for_organization(world.orgs[1])] == [world.tenants[second]]


def test_rs19_nudge_disconnect_deletes_one_xero_connection_and_the_tokens(world: World) -> None:
    """Nudge's Disconnect → Xero DELETE /connections/{id} and the tokens deleted; no jobs run for it afterwards;
    the other Nudge organization's Xero organisation keeps working (not 200 → 403)."""
    gone, kept = world.tenants
    spec = world.services.registry.spec("xero")
    settings = world.services.registry.settings("xero")
    assert disconnect(world.services.store, world.services.vault, spec, settings, world.orgs[0], gone, START)
    assert len(world.oauth_calls("DELETE")) == 1
    assert world.oauth_calls("POST").count("/connect/revocation") == 0  # the grant was not revoked
    assert world.xero_connections() == {world.tenants[kept]}
    row = world.row(gone)
    assert row.status == "disconnected"
    assert row.tokens_sealed == ""
    assert row.next_run_at is None
    report = world.worker.tick()
    assert report.succeeded == [kept]
    assert world.data_statuses(world.tenants[gone]) == []
    assert set(world.data_statuses(world.tenants[kept])) == {200}


def test_rs19_xero_side_disconnect_is_verified_then_marked_disconnected(world: World) -> None:
    """A Xero-side disconnect (403 on the next call) marks the connection disconnected, verified by an API call
    (GET /connections) rather than trusting the hint; no jobs run for it afterwards."""
    gone, kept = world.tenants
    world.kit.admin("connections/remove", {"tenant": world.tenants[gone]})
    report = world.worker.tick()
    assert gone in report.failed
    assert kept in report.succeeded
    assert "/connections" in [path.lower() for path in world.oauth_calls("GET")]  # the check with Xero
    row = world.row(gone)
    assert row.status == "disconnected"
    assert "disconnected from Nudge in Xero" in row.last_error
    assert row.tokens_sealed == ""
    calls = len(world.data_statuses(world.tenants[gone]))
    world.worker.tick(only=[gone])
    assert len(world.data_statuses(world.tenants[gone])) == calls


def test_rs19_a_403_for_a_tenant_still_connected_is_not_taken_for_a_disconnect(world: World) -> None:
    """The hint alone proves nothing → a 403 while Xero still lists the organisation asks for a reconnect instead."""
    first, _ = world.tenants
    world.kit.admin("faults", {"kind": "status", "status": 403, "path": "/Contacts", "times": 1})
    world.worker.tick(only=[first])
    assert world.row(first).status == "needs_reauth"


def test_rs19_a_disconnected_organisation_stays_disconnected_on_the_next_connect(world: World) -> None:
    """A disconnected tenant is never reactivated nor chased unless the user picks it → `reactivate` revives it."""
    gone, _ = world.tenants
    tenant = world.tenants[gone]
    services = world.services
    spec, settings = services.registry.spec("xero"), services.registry.settings("xero")
    assert disconnect(services.store, services.vault, spec, settings, world.orgs[0], gone, START)

    def consent(reactivate: frozenset[str]) -> list[bool]:
        request = begin_connect(spec, settings)
        params = world.kit.approve(request.url, [tenant])
        files = complete_connect(
            services.store,
            services.vault,
            spec,
            settings,
            world.orgs[0],
            params,
            request.state,
            request.code_verifier,
            START,
            reactivate=reactivate,
        )
        return [file.kept_disconnected for file in files]

    assert consent(frozenset()) == [True]
    row = world.row(gone)
    assert row.status == "disconnected"
    assert row.tokens_sealed == ""
    assert world.worker.tick().claimed == [c for c in world.tenants if c != gone]
    assert consent(frozenset({tenant})) == [False]
    assert world.row(gone).status == "active"
