"""RS-12: a worker SIGKILLed after Xero's token endpoint answered a refresh and before it stored the result.

Real `nudge run` processes (SQLite and PostgreSQL) against the in-process Xero emulator (its kit). The
kill lands deterministically: a `delay_after` fault on the token endpoint lets the emulator rotate the
refresh token (the new one is issued, the old one superseded) and then holds the answer, so the worker
is killed before it can seal and commit the new tokens. The row still holds the superseded token.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.bootstrap import Services
from connector.storage.tables import Connection, SyncRun
from providers._emulator import Fault
from providers.xero.emulator.kit import XeroKit
from tests.support.pipeline import rules
from tests.support.workers import (
    connect,
    customer_email,
    kill,
    nudge,
    nudge_database,
    organization,
    reap,
    services_for,
    smtp_sink,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

LEASE_SECONDS = 1
RULES = rules([{"id": "later", "offset": 300, "remind": "firm"}], cadence="rs12")  # only syncs happen


@dataclass
class Scene:
    kit: XeroKit
    config: Path
    services: Services
    connection: int
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self) -> subprocess.Popen[str]:
        process = nudge(self.config, "run")
        self.processes.append(process)
        return process

    def finish(self) -> str:
        """One undisturbed `nudge run`; its stderr."""
        _, err = self.run().communicate(timeout=120)
        assert "Traceback" not in err, err
        return err

    def due_now(self) -> None:
        """Time for another turn (as if the sync interval had passed)."""
        with self.services.store.unit_of_work() as uow:
            uow.session.execute(
                update(Connection)
                .where(Connection.id == self.connection)
                .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            uow.commit()

    def connection_row(self) -> Connection:
        with self.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(self.connection)
            assert row is not None
            uow.session.expunge(row)
            return row

    def sync_outcomes(self) -> list[str]:
        with self.services.store.unit_of_work() as uow:
            query = select(SyncRun.outcome).where(SyncRun.connection_id == self.connection).order_by(SyncRun.id)
            return list(uow.session.scalars(query))

    def reap(self) -> None:
        reap(self.processes)


@pytest.fixture(params=["sqlite", "postgresql"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """One connected Xero organisation with an open invoice, its access token about to be refused."""
    with XeroKit() as kit, smtp_sink() as sink, nudge_database(request.param, tmp_path) as url:
        tenant = kit.add_company("Rotation Ltd")
        customer = kit.add_customer(tenant, "Steady Payer", customer_email("Steady Payer"))
        today = datetime.now(UTC).date()
        kit.add_invoice(tenant, customer, "RT-1", Decimal("300.00"), "", today - timedelta(days=5), today)
        config = write_config(
            tmp_path,
            url,
            kit,
            sink.port,
            RULES,
            scheduler={"lease_seconds": LEASE_SECONDS, "concurrency": 1, "tick_seconds": 1},
        )
        services = services_for(config)
        built: Scene | None = None
        try:
            connection = connect(services, kit, tenant, organization(services), "rs12")
            built = Scene(kit, config, services, connection)
            yield built
        finally:
            if built is not None:
                built.reap()
            services.store.dispose()


def _kill_after_token_answer(scene: Scene) -> None:
    """Expire the access token, run, and SIGKILL the worker while the refresh's answer is held."""
    scene.kit.expire_access_tokens("")
    fault = Fault("delay_after", method="POST", path=scene.kit.token_path, seconds=30)
    scene.kit.add_fault(fault)
    before = scene.kit.token_calls()
    process = scene.run()
    wait_for(lambda: fault.times == 0 and scene.kit.token_calls() > before, 60, "the refresh at the token endpoint")
    time.sleep(0.2)
    kill(process)
    time.sleep(LEASE_SECONDS + 0.3)  # the dead worker's lease expires
    scene.kit.clear_faults()
    assert scene.kit.token_calls() == before + 1


def test_rs12_within_the_grace_period_the_old_refresh_token_still_works(scene: Scene) -> None:
    """Expected: within the grace period the old refresh token still works and the connection survives."""
    _kill_after_token_answer(scene)  # Xero's default: a superseded refresh token is usable for 30 minutes
    calls = scene.kit.token_calls()

    scene.finish()

    assert scene.kit.token_calls() == calls + 1  # the stored (superseded) refresh token was accepted
    row = scene.connection_row()
    assert row.status == "active"
    assert scene.sync_outcomes()[-1] == "ok"
    scene.due_now()
    scene.finish()  # the tokens stored by that refresh are the live ones
    assert scene.kit.token_calls() == calls + 1
    assert scene.sync_outcomes()[-1] == "ok"
    assert scene.connection_row().status == "active"


def test_rs12_without_grace_the_connection_needs_reconnect_and_is_not_retried(scene: Scene) -> None:
    """Expected: with grace disabled the connection flips to "needs reconnect", a clear message, no retry loop."""
    scene.kit.strict_refresh()  # a superseded refresh token dies at once
    _kill_after_token_answer(scene)
    calls = scene.kit.token_calls()

    scene.finish()

    assert scene.kit.token_calls() == calls + 1  # one refresh with the dead token: invalid_grant
    row = scene.connection_row()
    assert row.status == "needs_reauth"
    assert "reconnect" in row.last_error.lower(), row.last_error
    for _ in range(3):  # later turns: the parked connection is never claimed, so no token call
        scene.due_now()
        scene.finish()
    assert scene.kit.token_calls() == calls + 1
    assert scene.connection_row().status == "needs_reauth"
