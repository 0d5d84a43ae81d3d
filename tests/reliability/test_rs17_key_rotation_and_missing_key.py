"""RS-17: key rotation and a missing or wrong vault key, with real `nudge` processes.

Two QuickBooks companies (the emulator, connected through the real OAuth flow) have their tokens
sealed with key k1 from NUDGE_VAULT_KEY. The operator adds k2 (the old key moves to NUDGE_OLD_VAULT_KEY),
runs `nudge keys rotate`, removes k1: both connections still sync. Then `nudge run` and `nudge worker`
start with no key and with a wrong key: each exits non-zero naming NUDGE_VAULT_KEY, and no connection
is touched (the canary sealed at first start is opened before any token is).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from connector.bootstrap import Services
from connector.storage.tables import Activity, Connection
from connector.vault.keyring import generate_key
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.workers import (
    NUDGE,
    ROOT,
    connect,
    customer_email,
    organization,
    services_for,
    smtp_sink,
    write_config,
)

RULES = {
    "cadences": {"plain": {"time_zone": "UTC", "steps": [{"id": "late", "offset": 3, "remind": "firm"}]}},
    "policies": {"templates": ["firm"]},
}


@dataclass
class Scene:
    config: Path
    services: Services
    connections: list[int]

    def vault(self, keys: dict[str, str], active: str) -> None:
        written = yaml.safe_load(self.config.read_text())
        written["vault"] = {"active_key": active, "keys": keys}
        self.config.write_text(yaml.safe_dump(written, sort_keys=False))

    def nudge(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
        return subprocess.run(  # the real console script, as an operator runs it
            [NUDGE, "--config", str(self.config), *args],
            env={**clean, "PYTHONPATH": str(ROOT), **env},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(self.config.parent),
            check=False,
        )

    def run_all(self, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return self.nudge(env, "run", *[arg for cid in self.connections for arg in ("--connection", str(cid))])

    def finished_turns(self) -> dict[int, int]:
        with self.services.store.unit_of_work() as uow:
            rows = uow.session.execute(
                select(Activity.connection_id, func.count())
                .where(Activity.kind == "connection.turn_finished", Activity.detail["outcome"].as_string() == "ok")
                .group_by(Activity.connection_id)
            ).all()
        return {cid: count for cid, count in rows if cid is not None}

    def sealed(self) -> list[str]:
        with self.services.store.unit_of_work() as uow:
            return list(uow.session.scalars(select(Connection.tokens_sealed).order_by(Connection.id)))


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Scene, str]]:
    first_key = generate_key()
    monkeypatch.setenv("NUDGE_VAULT_KEY", first_key)
    with QuickBooksKit() as emulator, smtp_sink() as sink:
        config = write_config(
            tmp_path, f"sqlite:///{tmp_path / 'nudge.sqlite3'}", emulator, sink.port, RULES, scheduler={}
        )
        written = yaml.safe_load(config.read_text())
        written["vault"] = {"active_key": "k1", "keys": {"k1": "${NUDGE_VAULT_KEY}"}}
        config.write_text(yaml.safe_dump(written, sort_keys=False))
        services = services_for(config)
        try:
            org_id = organization(services)
            today = datetime.now(UTC).date()
            connections = []
            for n in range(2):
                realm = emulator.add_company(f"Keyed Co {n}", "USD")
                customer = emulator.add_customer(realm, f"Payer {n}", customer_email(f"Payer {n}"))
                due = today - timedelta(days=10)
                emulator.add_invoice(realm, customer, f"K-{n}", Decimal("100.00"), "", due - timedelta(days=30), due)
                connections.append(connect(services, emulator, realm, org_id, "plain"))
            yield Scene(config, services, connections), first_key
        finally:
            services.store.dispose()


def test_rs17_rotation_then_missing_or_wrong_key(scene: tuple[Scene, str]) -> None:
    """RS-17: after adding a key, `keys rotate` and removing the old key all connections still sync; no key or a
    wrong key exits non-zero naming the env var; nothing decrypts to garbage."""
    state, old_key = scene
    first = state.run_all({"NUDGE_VAULT_KEY": old_key})  # the first start seals the canary with k1
    assert first.returncode == 0, first.stderr
    assert set(state.finished_turns()) == set(state.connections)

    new_key = generate_key()
    state.vault({"k1": "${NUDGE_OLD_VAULT_KEY}", "k2": "${NUDGE_VAULT_KEY}"}, "k2")
    rotated = state.nudge({"NUDGE_VAULT_KEY": new_key, "NUDGE_OLD_VAULT_KEY": old_key}, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 2 secret(s) with key 'k2'" in rotated.stdout
    assert all(sealed.startswith("v1.k2.") for sealed in state.sealed())

    state.vault({"k2": "${NUDGE_VAULT_KEY}"}, "k2")  # the old key is gone
    before = state.finished_turns()
    again = state.run_all({"NUDGE_VAULT_KEY": new_key})
    assert again.returncode == 0, again.stderr
    after = state.finished_turns()
    assert all(after[cid] == before[cid] + 1 for cid in state.connections)  # every connection synced again

    sealed = state.sealed()
    for env, says in (({}, "environment variable NUDGE_VAULT_KEY is not set"), ({"NUDGE_VAULT_KEY": old_key}, "")):
        for command in (("run",), ("worker",)):
            refused = state.nudge(env, *command)
            assert refused.returncode != 0, (command, refused.stdout)
            assert "NUDGE_VAULT_KEY" in refused.stderr, refused.stderr
            assert says in refused.stderr
            assert "Traceback" not in refused.stderr
            assert "worker started" not in refused.stdout
            assert "connection " not in refused.stdout  # no connection was processed
    assert state.finished_turns() == after  # no turn ran with a wrong or missing key
    assert state.sealed() == sealed  # nothing re-sealed from garbage
