"""RS-11 (moved from tests/integration/test_token_refresh_processes.py): token safety across processes:
2 processes x 4 threads on one connection, strict rotation, one refresh.

Each provider's emulator runs in strict mode (a refresh token dies at first use), so any second
refresh would fail with invalid_grant and park the connection: the test proves it never happens,
for QuickBooks and for Xero, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.ports import TokenSet
from connector.vault.keyring import Vault, generate_key
from connector.vault.tokens import open_tokens, seal_tokens
from providers._emulator.kit import EmulatorKit
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.xero.emulator.kit import XeroKit
from tests.support.databases import Database

WORKER = textwrap.dedent(
    """
    import json, os, sys, threading
    from datetime import UTC, datetime
    from connector.ports import ProviderSettings
    from connector.storage import Store
    from connector.connections.token_source import StoredTokenSource
    from connector.vault.keyring import Vault
    import importlib

    cfg = json.loads(os.environ["CASE"])
    PROVIDER = importlib.import_module("providers." + cfg["provider"]).PROVIDER
    store = Store.from_url(cfg["url"], schema=cfg["schema"])
    vault = Vault.from_keys({"k1": cfg["key"]}, "k1")
    settings = ProviderSettings(key=cfg["provider"], client_id=cfg["client_id"], client_secret=cfg["client_secret"],
                                redirect_uri="http://127.0.0.1/cb", environment=cfg["discovery"], api_base=cfg["api"],
                                identity_base=cfg["identity"])
    barrier = threading.Barrier(4)
    seen, errors = [], []

    def work():
        source = StoredTokenSource(store, vault, PROVIDER, settings, cfg["connection_id"], lambda: datetime.now(UTC))
        barrier.wait()
        try:
            seen.append(source.current().access_token)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # both processes start together
    for t in threads: t.start()
    for t in threads: t.join(60)
    print(json.dumps({"seen": sorted(set(seen)), "count": len(seen), "errors": errors}))
    """
)


@dataclass
class StrictLedger:
    """One provider's emulator (its kit) in strict rotation mode, with one tenant granted."""

    kit: EmulatorKit
    tenant: str
    grant: dict[str, Any]

    @property
    def provider(self) -> str:
        return self.kit.provider

    def case(self) -> dict[str, str]:
        """What a worker process needs to reach the emulator."""
        settings = self.kit.settings("http://127.0.0.1/cb")
        return {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "discovery": "" if settings.environment == "production" else settings.environment,
            "api": settings.api_base,
            "identity": settings.identity_base,
        }


def _strict(kit: EmulatorKit) -> StrictLedger:
    kit.start()
    tenant = kit.add_company("Strict Co")
    kit.strict_refresh()
    return StrictLedger(kit, tenant, kit.grant(tenant))


def _quickbooks() -> StrictLedger:
    return _strict(QuickBooksKit())


def _xero() -> StrictLedger:
    return _strict(XeroKit())


@pytest.mark.parametrize("ledger_factory", [_quickbooks, _xero], ids=["quickbooks", "xero"])
def test_rs11_two_processes_and_eight_threads_refresh_exactly_once(
    database: Database, tmp_path: Path, ledger_factory: Callable[[], StrictLedger]
) -> None:
    """Expected: exactly one token-endpoint call; all callers continue; the stored refresh token is the last issued.

    The connection stays connected (status "active"); the stored refresh token is proven the live one by
    refreshing with it once more in strict mode, where any older one would be invalid_grant.
    """
    ledger = ledger_factory()
    store = database.store()
    try:
        store.upgrade()
        key = generate_key()
        vault = Vault.from_keys({"k1": key}, "k1")
        # The access token is about to expire, so every caller wants a refresh at once.
        lifetime = ledger.kit.access_token_lifetime
        tokens = TokenSet.from_response(ledger.grant, datetime.now(UTC) - lifetime + timedelta(seconds=10))
        with store.unit_of_work() as uow:
            org = uow.organizations.add("A")
            connection = uow.connections.add(org.id, ledger.provider, ledger.tenant, "Strict Co")
            seal_tokens(vault, connection, tokens)
            uow.commit()
            connection_id = connection.id
        ledger.kit.clear_calls()
        case = {
            "url": database.url,
            "schema": database.schema,
            "key": key,
            "connection_id": connection_id,
            "provider": ledger.provider,
            **ledger.case(),
        }
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        env = dict(os.environ, CASE=json.dumps(case), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        workers = [
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert ledger.kit.token_calls() == 1
        assert all(r["errors"] == [] and r["count"] == 4 for r in results)
        assert results[0]["seen"] == results[1]["seen"]
        assert len(results[0]["seen"]) == 1
        with store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None
            assert row.status == "active"  # no invalid_grant: the connection stays usable
            fresh_until = datetime.now(UTC) + lifetime - timedelta(minutes=5)
            assert row.access_expires_at is not None
            assert row.access_expires_at > fresh_until
            stored = open_tokens(vault, row)
        assert stored.access_token == results[0]["seen"][0]  # what every caller continued with
        spec = importlib.import_module(f"providers.{ledger.provider}").PROVIDER
        assert spec.refresh(ledger.kit.settings("http://127.0.0.1/cb"), stored, datetime.now(UTC)).refresh_token
        assert ledger.kit.token_calls() == 2
    finally:
        store.dispose()
        ledger.kit.stop()
