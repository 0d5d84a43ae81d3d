"""Token safety across processes: 2 processes x 4 threads on one connection, strict rotation, one refresh.

The QuickBooks emulator runs in strict mode (a refresh token dies at first use), so any second
refresh would fail with invalid_grant and park the connection: the test proves it never happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from connector.ports import TokenSet
from connector.tokens import seal_tokens
from connector.vault import Vault, generate_key
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, start
from tests.conftest import Database

WORKER = textwrap.dedent(
    """
    import json, os, sys, threading
    from datetime import UTC, datetime
    from connector.ports import ProviderSettings
    from connector.storage import Store
    from connector.token_source import StoredTokenSource
    from connector.vault import Vault
    from providers.quickbooks import PROVIDER

    cfg = json.loads(os.environ["CASE"])
    store = Store.from_url(cfg["url"], schema=cfg["schema"])
    vault = Vault.from_keys({"k1": cfg["key"]}, "k1")
    settings = ProviderSettings(key="quickbooks", client_id=cfg["client_id"], client_secret=cfg["client_secret"],
                                redirect_uri="http://127.0.0.1/cb", environment=cfg["discovery"], api_base=cfg["api"])
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


def test_two_processes_and_eight_threads_refresh_exactly_once(database: Database, tmp_path: Path) -> None:
    emulator = start()
    store = database.store()
    try:
        store.upgrade()
        realm = emulator.store.add_company("Strict Co").realm
        requests.post(f"{emulator.url}/__admin/oauth", json={"strict": True}, timeout=5).raise_for_status()
        grant = requests.post(f"{emulator.url}/__admin/companies/{realm}/tokens", json={}, timeout=5).json()
        key = generate_key()
        vault = Vault.from_keys({"k1": key}, "k1")
        # The access token is about to expire, so every caller wants a refresh at once.
        tokens = TokenSet.from_response(grant, datetime.now(UTC) - timedelta(seconds=3590))
        with store.unit_of_work() as uow:
            org = uow.organizations.add("A")
            connection = uow.connections.add(org.id, "quickbooks", realm, "Strict Co")
            seal_tokens(vault, connection, tokens)
            uow.commit()
            connection_id = connection.id
        emulator.core.clear_calls()
        case = {
            "url": database.url,
            "schema": database.schema,
            "key": key,
            "connection_id": connection_id,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "discovery": emulator.discovery_url,
            "api": emulator.api_base,
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
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        token_calls = [c for c in emulator.core.calls() if c.path.endswith("/oauth2/v1/tokens/bearer")]
        assert len(token_calls) == 1
        assert all(r["errors"] == [] and r["count"] == 4 for r in results)
        assert results[0]["seen"] == results[1]["seen"] and len(results[0]["seen"]) == 1
        with store.unit_of_work() as uow:
            row = uow.connections.by_id(connection_id)
            assert row is not None and row.status == "active"
            assert row.access_expires_at is not None and row.access_expires_at > datetime.now(UTC) + timedelta(
                minutes=50
            )
    finally:
        store.dispose()
        emulator.stop()
