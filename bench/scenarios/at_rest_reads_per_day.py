"""At rest: the provider reads one connection costs in a simulated day when nothing happens in its ledger.

100 QuickBooks companies and 100 Xero organisations (3 customers, 6 open invoices each, and a cadence
with nothing to do today), both emulators in this process with their real limits on. Every connection
is first synced whole (not counted). Then the steady state of the default schedule: each connection's
next safety-net poll spread evenly over the next `sync_interval_minutes` (6 hours) and its last
reconcile spread evenly over the past day. One simulated day follows, minute by minute, through the
worker's real turn (token check, sync, open credits before acting, plan, execute) on a SQLite store,
with three webhooks per provider (an invoice edited in the ledger, then the signed delivery through the
webhook intake) at spread-out moments.

Metrics: `qbo_reads_per_connection_day` and `xero_reads_per_connection_day` are the emulators' data
calls (every API read or write; the OAuth token endpoint is not an accounting read) divided by the
connections of that provider. Also reported: sweeps and reconciles per connection, Xero's open-credit reads
(0 here: nothing would go out, so no read before acting is due), webhooks and 429 answers.
Target (issue 13): at most 6 reads per connection per day on each provider.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bench.targets import Target, at_most
from connector.bootstrap import Services
from connector.storage import Store
from connector.storage.tables import SyncRun
from providers._emulator.kit import EmulatorKit
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.xero.emulator.kit import XeroKit

NAME = "at_rest_reads_per_day"
PER_PROVIDER = 100
WEBHOOKS_PER_PROVIDER = 3
DAY = timedelta(days=1)
TICK = timedelta(minutes=1)
WEBHOOK_KEY = "bench-webhook-key"
# A cadence with nothing due for invoices the emulators seed (due within weeks): the day is truly at rest.
QUIET_RULES = {
    "cadences": {"quiet": {"time_zone": "UTC", "steps": [{"id": "much-later", "offset": 365, "remind": "firm"}]}},
    "templates": ["firm"],
}


class SimulatedClock:
    """The worker's clock, moved by the scenario."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment


def run() -> dict[str, float]:
    from connector.config import settings_for_tests
    from connector.domain.policy_parsing import policy_from_dict
    from connector.registry import Registry
    from connector.vault.keyring import Vault, generate_key
    from connector.worker.scheduler import Lease, Worker
    from connector.worker.turn import run_connection

    kits: dict[str, EmulatorKit] = {"quickbooks": QuickBooksKit(), "xero": XeroKit()}
    for kit in kits.values():
        kit.start()  # in this process: the webhook scenario adds invoices through the emulator kit directly
    folder = tempfile.TemporaryDirectory(prefix="nudge-at-rest-")
    store = Store.from_url(f"sqlite:///{Path(folder.name) / 'nudge.sqlite'}")
    try:
        store.upgrade()
        providers = {key: kit.settings("http://127.0.0.1/cb", webhook_key=WEBHOOK_KEY) for key, kit in kits.items()}
        base = settings_for_tests(store.engine.url.render_as_string(hide_password=False))
        settings = replace(
            base,
            providers=providers,
            rules=policy_from_dict(QUIET_RULES),
            # The shipped defaults (6-hour safety-net poll, daily reconcile); every due connection per tick.
            scheduler=replace(base.scheduler, max_connections_per_tick=2 * PER_PROVIDER),
        )
        clock = SimulatedClock(datetime.now(UTC).replace(microsecond=0))
        services = Services(settings=settings, store=store, registry=Registry.discover(providers), clock=clock)
        services.__dict__["vault"] = Vault.from_keys({"k1": generate_key()}, "k1")
        tenants = _connect_all(kits, services, clock.now())

        def process(connection_id: int, lease: Lease) -> None:
            run_connection(services, connection_id, lease.owner, reminders=None, renew=lease.renew)

        worker = Worker(store, process, settings.scheduler, clock, owner=f"bench-{uuid.uuid4().hex[:6]}")
        warm = worker.tick()  # every connection's first sync (not counted)
        if warm.failed or len(warm.succeeded) != len(tenants):
            raise RuntimeError(f"first syncs: {len(warm.succeeded)} of {len(tenants)} succeeded; {warm.failed}")

        start = clock.now()
        _steady_state(store, sorted(tenants), start, services)
        first_run = _last_run_id(store)
        for kit in kits.values():
            kit.clear_calls()

        webhooks = _webhook_plan(tenants, start)
        delivered = 0
        while clock.now() < start + DAY:
            clock.moment += TICK
            for connection_id in [cid for cid, at in list(webhooks.items()) if at <= clock.now()]:
                key, tenant = tenants[connection_id]
                delivered += _webhook(kits[key], tenant, services, clock.now())
                del webhooks[connection_id]
            report = worker.tick()
            if report.failed:
                raise RuntimeError(f"{len(report.failed)} turn(s) failed: {next(iter(report.failed.values()))}")

        return _metrics(store, kits, len(tenants), first_run, start, delivered, services)
    finally:
        store.dispose()
        folder.cleanup()
        for kit in kits.values():
            kit.stop()


def _connect_all(kits: dict[str, EmulatorKit], services: Services, now: datetime) -> dict[int, tuple[str, str]]:
    """PER_PROVIDER seeded ledgers of each provider, connected to the quiet cadence: (provider, tenant) by id."""
    from connector.ports import TokenSet
    from connector.vault.tokens import seal_tokens

    tenants: dict[int, tuple[str, str]] = {}
    with services.store.unit_of_work() as uow:
        org = uow.organizations.add("At-rest practice")
        for n in range(PER_PROVIDER):
            for key, kit in kits.items():
                tenant = kit.seed_company(f"Rest {key} {n}", customers=3, invoices=6)
                row = uow.connections.add(org.id, key, tenant, f"Rest {key} {n}", next_run_at=now)
                row.cadence = "quiet"
                seal_tokens(services.vault, row, TokenSet.from_response(kit.grant(tenant), now))
                uow.flush()
                tenants[row.id] = (key, tenant)
        uow.commit()
    return tenants


def _webhook(kit: EmulatorKit, tenant: str, services: Services, now: datetime) -> int:
    """A user edits one of the ledger's invoices (a real change), then its signed delivery reaches the intake;
    the connections it made due."""
    from connector.storage.tables import Connection, Invoice
    from connector.sync.intake import receive_webhook

    with services.store.unit_of_work() as uow:
        invoice = uow.session.scalars(
            select(Invoice.external_id)
            .join(Connection, Connection.id == Invoice.connection_id)
            .where(Connection.tenant_id == tenant, Connection.provider == kit.provider)
            .order_by(Invoice.id)
        ).first()
    if invoice is None:
        raise RuntimeError(f"{kit.provider} tenant {tenant} has no synced invoice to edit")
    kit.touch_invoice(tenant, invoice)
    body = kit.webhook_body(tenant, invoice)
    spec = services.registry.spec(kit.provider)
    settings = services.registry.settings(kit.provider)
    return receive_webhook(
        services.store, spec, settings, body, kit.sign_webhook(body, WEBHOOK_KEY), now
    ).connections_marked


def _steady_state(store: Store, connection_ids: list[int], start: datetime, services: Services) -> None:
    """Each connection's next poll spread evenly over the interval, its last reconcile over the past day."""
    from connector.storage.tables import Connection, SyncCursor
    from connector.sync.invoices import INVOICE_ENTITY

    scheduler = services.settings.scheduler
    interval = timedelta(minutes=scheduler.sync_interval_minutes)
    reconcile_every = timedelta(hours=scheduler.full_reconcile_hours)
    with store.unit_of_work() as uow:
        for index, connection_id in enumerate(connection_ids):
            share = (index + 0.5) / len(connection_ids)
            due = start + interval * share
            uow.session.execute(update(Connection).where(Connection.id == connection_id).values(next_run_at=due))
            uow.session.execute(
                update(SyncCursor)
                .where(SyncCursor.connection_id == connection_id, SyncCursor.entity == INVOICE_ENTITY)
                .values(full_reconciled_at=start - reconcile_every * share)
            )
        uow.commit()


def _metrics(
    store: Store,
    kits: dict[str, EmulatorKit],
    connections: int,
    first_run: int,
    start: datetime,
    delivered: int,
    services: Services,
) -> dict[str, float]:
    from connector.storage.tables import SyncCursor
    from connector.sync.invoices import INVOICE_ENTITY

    with store.unit_of_work() as uow:
        sweeps = uow.session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.id > first_run)) or 0
        reconciles = uow.session.scalar(
            select(func.count())
            .select_from(SyncCursor)
            .where(SyncCursor.entity == INVOICE_ENTITY, SyncCursor.full_reconciled_at > start)
        )
    metrics: dict[str, float] = {}
    for key, label in (("quickbooks", "qbo"), ("xero", "xero")):
        log = kits[key].calls()
        data = [call for call in log if call["category"] == "data"]
        metrics[f"{label}_reads_per_connection_day"] = round(len(data) / PER_PROVIDER, 2)
        metrics[f"{label}_rate_limited_calls"] = float(sum(1 for call in log if call["status"] == 429))
    metrics.update(
        {
            "sweeps_per_connection_day": round(sweeps / connections, 2),
            "reconciles_per_connection_day": round((reconciles or 0) / connections, 2),
            # Xero's open credit is three listings read before acting: none is due on a day at rest.
            "xero_open_credit_reads": float(
                sum(1 for call in kits["xero"].calls() if str(call.get("path", "")).endswith("/Overpayments"))
            ),
            "webhooks_delivered": float(delivered),
            "connections": float(connections),
            "sync_interval_minutes": float(services.settings.scheduler.sync_interval_minutes),
        }
    )
    return metrics


def _last_run_id(store: Store) -> int:
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.max(SyncRun.id))) or 0)


def _webhook_plan(tenants: dict[int, tuple[str, str]], start: datetime) -> dict[int, datetime]:
    """Three connections of each provider get one webhook each, at 3, 11 and 19 hours into the day."""
    plan: dict[int, datetime] = {}
    for key in ("quickbooks", "xero"):
        chosen = [cid for cid, (provider, _) in sorted(tenants.items()) if provider == key][7::31][
            :WEBHOOKS_PER_PROVIDER
        ]
        for hours, connection_id in zip((3, 11, 19), chosen, strict=True):
            plan[connection_id] = start + timedelta(hours=hours)
    return plan


def targets(metrics: dict[str, float]) -> list[Target]:
    return [
        at_most(metrics, "qbo_reads_per_connection_day", 6),
        at_most(metrics, "xero_reads_per_connection_day", 6),
        at_most(metrics, "qbo_rate_limited_calls", 0),
        at_most(metrics, "xero_rate_limited_calls", 0),
    ]


if __name__ == "__main__":
    print(run())
