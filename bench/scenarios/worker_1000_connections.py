"""One worker process over 1,000 connections (500 QuickBooks companies, 500 Xero organisations) with
100 ms added latency per provider call: incremental syncs, measured as connection-syncs per minute.

The emulators run as separate processes (with their real per-tenant rate and concurrency limits on),
the worker uses PostgreSQL (NUDGE_BENCH_POSTGRES_URL, default the local server) in a fresh schema,
and every connection goes through the full turn the worker does: token check, sync, plan, execute.
A warm-up pass does the first full syncs; the measured passes are incremental. Wall time is measured
without tracemalloc; `peak_mb` comes from a second pass under tracemalloc. `rate_limited_calls`
counts 429 answers from the emulators (0 = every provider limit respected).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text, update

NAME = "worker_1000_connections"
PER_PROVIDER = 500
LATENCY_S = 0.1
CONCURRENCY = 48
ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("NUDGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulator(module: str, banner: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if banner in line:
            return process, f"http://127.0.0.1:{port}"
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"{module} did not start")


def _post(url: str, body: dict[str, Any]) -> Any:
    answer = requests.post(url, json=body, timeout=60)
    answer.raise_for_status()
    return answer.json()


def run() -> dict[str, float]:
    from connector.bootstrap import Services
    from connector.config import settings_for_tests
    from connector.ports import ProviderSettings, SystemClock, TokenSet
    from connector.registry import Registry
    from connector.storage import Store
    from connector.storage.tables import Connection
    from connector.vault.keyring import Vault, generate_key
    from connector.vault.tokens import seal_tokens
    from connector.worker.scheduler import Lease, Worker
    from connector.worker.turn import run_connection

    qbo, qbo_url = _emulator("providers.quickbooks.emulator", "QuickBooks emulator on")
    xero, xero_url = _emulator("providers.xero.emulator", "Xero emulator on")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store.from_url(POSTGRES, schema=schema, pool_size=CONCURRENCY + 4)
    try:
        store.upgrade()
        providers = {
            "quickbooks": ProviderSettings(
                key="quickbooks",
                client_id="emulator-client-id",
                client_secret="emulator-client-secret",
                redirect_uri="http://127.0.0.1/cb",
                environment=f"{qbo_url}/.well-known/openid_configuration",
                api_base=f"{qbo_url}/v3",
            ),
            "xero": ProviderSettings(
                key="xero",
                client_id="nudge-emulator-client",
                client_secret="nudge-emulator-secret",
                redirect_uri="http://127.0.0.1/cb",
                api_base=f"{xero_url}/api.xro/2.0",
                identity_base=xero_url,
            ),
        }
        base = settings_for_tests(POSTGRES)
        settings = replace(
            base,
            providers=providers,
            scheduler=replace(base.scheduler, max_connections_per_tick=PER_PROVIDER * 2, jitter_seconds=1),
        )
        vault = Vault.from_keys({"k1": generate_key()}, "k1")
        services = Services(settings=settings, store=store, registry=Registry.discover(providers), clock=SystemClock())
        services.__dict__["vault"] = vault  # the key ring of this run (Services.vault is a cached property)
        now = datetime.now(UTC)
        with store.unit_of_work() as uow:
            org = uow.organizations.add("Bench practice")
            for n in range(PER_PROVIDER):
                realm = _post(f"{qbo_url}/__admin/companies", {"name": f"Bench Books {n}"})["realm"]
                _post(f"{qbo_url}/__admin/companies/{realm}/seed", {"customers": 3, "invoices": 5})
                grant = _post(f"{qbo_url}/__admin/companies/{realm}/tokens", {})
                row = uow.connections.add(org.id, "quickbooks", realm, f"Bench Books {n}", next_run_at=now)
                seal_tokens(vault, row, TokenSet.from_response(grant, now))
                tenant = _post(f"{xero_url}/__admin/generate", {"name": f"Bench Org {n}", "invoices": 5, "contacts": 3})
                tenant_id = str(tenant["tenantId"])
                grant = _post(f"{xero_url}/__admin/grant", {"tenants": [tenant_id]})
                row = uow.connections.add(org.id, "xero", tenant_id, f"Bench Org {n}", next_run_at=now)
                seal_tokens(vault, row, TokenSet.from_response(grant, now))
            uow.commit()

        def process(connection_id: int, lease: Lease) -> None:
            run_connection(services, connection_id, lease.owner, reminders=None, renew=lease.renew)

        worker = Worker(store, process, settings.scheduler, SystemClock(), owner="bench", concurrency=CONCURRENCY)

        def one_pass() -> tuple[float, int]:
            with store.unit_of_work() as uow:
                uow.session.execute(update(Connection).values(next_run_at=datetime.now(UTC)))
                uow.commit()
            started = time.perf_counter()
            report = worker.tick()
            elapsed = time.perf_counter() - started
            if report.failed:
                raise RuntimeError(
                    f"{len(report.failed)} connection(s) failed, e.g. {next(iter(report.failed.values()))}"
                )
            return elapsed, len(report.succeeded)

        one_pass()  # warm-up: the first (full) sync of every connection
        for url in (qbo_url, xero_url):
            _post(f"{url}/__admin/latency", {"seconds": LATENCY_S})
            requests.delete(f"{url}/__admin/calls", timeout=10)
        elapsed, synced = one_pass()
        tracemalloc.start()
        one_pass()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        calls = [requests.get(f"{url}/__admin/calls", timeout=60).json()["calls"] for url in (qbo_url, xero_url)]
        data_calls = sum(1 for log in calls for call in log if call["category"] == "data")
        limited = sum(1 for log in calls for call in log if call["status"] == 429)
        return {
            "connections": float(synced),
            "connection_syncs_per_min": round(synced / elapsed * 60, 1),
            "wall_s": round(elapsed, 2),
            "peak_mb": round(peak / 1e6, 1),
            "provider_calls_per_sync": round(data_calls / (2 * synced), 2),
            "rate_limited_calls": float(limited),
            "latency_ms": LATENCY_S * 1000,
            "threads": float(CONCURRENCY),
        }
    finally:
        store.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        for process in (qbo, xero):
            process.terminate()
            process.wait(10)
