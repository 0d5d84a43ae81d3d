"""The whole pipeline in this process: one provider's emulator (its kit, real HTTP, the real SDK), a
real store (SQLite or PostgreSQL), an aiosmtpd sink and Nudge's services built from a config file,
driven turn by turn (sync, plan, execute) on a FakeClock. The reliability tests use it to assert a
catalogue outcome on the real parts without worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.connections.connect import begin_connect, complete_connect
from connector.outbox.executor import ExecutionReport, Executor
from connector.outbox.planning import plan_connection
from connector.review import approve as approve_review
from connector.storage.tables import Action, Activity
from connector.sync.invoices import sync_connection
from connector.worker.scheduler import Lease, Worker
from connector.worker.turn import ConnectionTurn, adapter_for, run_connection
from providers._emulator.kit import EmulatorKit, emulator_kit
from tests.support.clock import FakeClock
from tests.support.databases import migrate
from tests.support.workers import SmtpSink, nudge_database, organization, smtp_sink, write_config

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def rules(
    steps: list[dict[str, Any]],
    *,
    time_zone: str = "UTC",
    send_time: str = "00:00",
    cadence: str = "rs",
    catch_up: str | None = "latest",
    **policies: Any,
) -> dict:
    """A one-cadence rule set (`cadence`, "rs" unless named) firing every day of the week at `send_time` in
    `time_zone`; `catch_up=None` leaves the cadence's catch-up to the default. `policies` join the "firm" template."""
    window = {"weekdays": EVERY_DAY, "start": "00:00", "end": "23:59"}
    catch = {} if catch_up is None else {"catch_up": catch_up}
    return {
        "cadences": {
            cadence: {"time_zone": time_zone, "send_time": send_time, "window": window, **catch, "steps": steps}
        },
        "policies": {"templates": ["firm"], **policies},
    }


@dataclass
class Pipeline:
    """Nudge's services over one emulator, a store, an SMTP sink and a fake clock."""

    kit: EmulatorKit
    sink: SmtpSink
    services: Services
    clock: FakeClock
    config: Path
    database_url: str

    def connect(self, tenant: str, *, time_zone: str = "UTC", org: int | None = None, review: bool = False) -> int:
        """Connect `tenant` through the real OAuth flow to the "rs" cadence; the connection id.

        A new connection starts in review; the user then starts chasing at once (`nudge approve --all`
        through connector.review, before the first sync) unless `review` keeps the review open."""
        services = self.services
        org_id = organization(services) if org is None else org
        spec, settings = services.registry.spec(self.kit.provider), services.registry.settings(self.kit.provider)
        request = begin_connect(spec, settings)
        params = self.kit.approve(request.url, [tenant])
        now = services.clock.now()
        # Xero lists every organisation the user ever connected to the app: keep the one just approved.
        connected = complete_connect(
            services.store, services.vault, spec, settings, org_id, params, request.state, request.code_verifier, now
        )
        with services.store.unit_of_work() as uow:
            rows = [row for c in connected if (row := uow.connections.by_id(c.connection_id)) is not None]
            [row] = [r for r in rows if r.tenant_id == tenant]
            for created, other in zip([c.created for c in connected], rows, strict=True):
                if created and other.tenant_id != tenant:
                    uow.session.delete(other)  # the user keeps only the file just approved in this organization
            connection_id = row.id
            row.cadence = "rs"
            row.time_zone = time_zone
            in_review = row.chasing == "review"  # not a ledger another organization chases
            uow.commit()
        if in_review and not review:
            approve_review(services.store, connection_id, "test-user", now)
        return connection_id

    def turn(self, connection_id: int, owner: str = "rs-test") -> ConnectionTurn:
        """One worker turn for the connection: sync, plan, execute (emails to the sink)."""
        return run_connection(self.services, connection_id, owner, reminders=self.services.reminder_sender())

    def sync_and_plan(self, connection_id: int) -> None:
        """The first half of a turn: sync the connection, then plan what is due (nothing is carried out)."""
        services = self.services
        with services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            adapter = adapter_for(services, row)
        sync_connection(services.store, adapter, connection_id, self.clock.now)
        plan_connection(services.store, connection_id, services.settings.rules, self.clock.now())

    def execute(self, connection_id: int, owner: str = "rs-test") -> ExecutionReport:
        """The second half of a turn: carry out the due actions (with the just-in-time re-check)."""
        services = self.services
        with services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            adapter = adapter_for(services, row)
        executor = Executor(services.store, adapter, services.reminder_sender(), self.clock.now, owner)
        return executor.run_due(connection_id)

    def worker(self, owner: str = "rs-worker") -> Worker:
        """The scheduler's worker over this pipeline (what `nudge run` ticks), one connection at a time."""
        services = self.services

        def process(connection_id: int, lease: Lease) -> None:
            run_connection(
                services, connection_id, lease.owner, reminders=services.reminder_sender(), renew=lease.renew
            )

        return Worker(services.store, process, services.settings.scheduler, self.clock, owner=owner)

    def actions(self, connection_id: int | None = None) -> list[Action]:
        """Every outbox row (of one connection), detached."""
        with self.services.store.unit_of_work() as uow:
            query = select(Action).order_by(Action.id)
            if connection_id is not None:
                query = query.where(Action.connection_id == connection_id)
            rows = list(uow.session.scalars(query))
            uow.session.expunge_all()
            return rows

    def activities(self, kind: str) -> list[Activity]:
        """Activities of one kind, detached."""
        with self.services.store.unit_of_work() as uow:
            rows = list(uow.session.scalars(select(Activity).where(Activity.kind == kind).order_by(Activity.id)))
            uow.session.expunge_all()
            return rows


@contextmanager
def pipeline(
    provider: str,
    folder: Path,
    rule_set: dict[str, Any],
    *,
    database: str = "sqlite",
    start: datetime | None = None,
    provider_options: dict[str, Any] | None = None,
    scheduler: dict[str, int] | None = None,
    webhook_key: str = "",
    mail_options: dict[str, Any] | None = None,
    log_level: str | None = None,
) -> Iterator[Pipeline]:
    """A started emulator of `provider`, a fresh database of kind `database` and the services over them."""
    with ExitStack() as stack:
        kit = stack.enter_context(emulator_kit(provider, rate_limits=False))
        sink = stack.enter_context(smtp_sink())
        url = stack.enter_context(nudge_database(database, folder))
        config = write_config(
            folder,
            url,
            kit,
            sink.port,
            rule_set,
            scheduler=scheduler or {"lease_seconds": 60, "concurrency": 1, "tick_seconds": 1},
            provider_options=provider_options,
        )
        written = yaml.safe_load(config.read_text())
        written.setdefault("mode", "development")  # provider URLs on 127.0.0.1: the local emulator
        if webhook_key:
            written["providers"][provider]["webhook_key"] = webhook_key
        written["mail"].update(mail_options or {})  # e.g. smtp_username / smtp_password (RS-18)
        if log_level:
            written["log_level"] = log_level
        config.write_text(yaml.safe_dump(written, sort_keys=False))
        clock = FakeClock(start or datetime.now(UTC))
        services = build(load_settings(str(config)), clock=clock)
        stack.callback(services.store.dispose)
        migrate(services.store)
        yield Pipeline(kit, sink, services, clock, config, url)
