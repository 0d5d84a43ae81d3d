"""One worker process over 1,000 connections (500 QuickBooks companies, 500 Xero organisations) with
100 ms added latency per provider call: incremental syncs, measured as connection-syncs per minute.

The emulators (their kits) run as separate processes (with their real per-tenant rate and concurrency limits on),
the worker uses PostgreSQL (NUDGE_BENCH_POSTGRES_URL, default the local server) in a fresh schema,
and every connection goes through the full turn the worker does: token check, sync, plan, execute.
A warm-up pass does the first full syncs; the measured passes are incremental. Wall time is measured
without tracemalloc; `peak_mb` comes from a second pass under tracemalloc. `rate_limited_calls`
counts 429 answers from the emulators (0 = every provider limit respected).
"""

from __future__ import annotations

import os
import time
import tracemalloc
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import create_engine, text, update

from providers._emulator.kit import EmulatorKit
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.xero.emulator.kit import XeroKit

NAME = "worker_1000_connections"
PER_PROVIDER = 500
LATENCY_S = 0.1
CONCURRENCY = 48
POSTGRES = os.environ.get("NUDGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def run() -> dict[str, float]:
    from connector.bootstrap import Services
    from connector.config import settings_for_tests
    from connector.ports import SystemClock, TokenSet
    from connector.registry import Registry
    from connector.storage import Store
    from connector.storage.tables import Connection
    from connector.vault.keyring import Vault, generate_key
    from connector.vault.tokens import seal_tokens
    from connector.worker.scheduler import Lease, Worker
    from connector.worker.turn import run_connection

    kits: dict[str, EmulatorKit] = {"quickbooks": QuickBooksKit(), "xero": XeroKit()}
    for kit in kits.values():
        kit.start(process=True)  # the real per-tenant limits on; tracemalloc measures the worker only
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store.from_url(POSTGRES, schema=schema, pool_size=CONCURRENCY + 4)
    try:
        store.upgrade()
        providers = {key: kit.settings("http://127.0.0.1/cb") for key, kit in kits.items()}
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
                for key, kit in kits.items():
                    name = f"Bench {key} {n}"
                    tenant = kit.seed_company(name, customers=3, invoices=5)
                    row = uow.connections.add(org.id, key, tenant, name, next_run_at=now)
                    seal_tokens(vault, row, TokenSet.from_response(kit.grant(tenant), now))
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
        for kit in kits.values():
            kit.set_latency(LATENCY_S)
            kit.clear_calls()
        elapsed, synced = one_pass()
        tracemalloc.start()
        one_pass()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        calls = [kit.calls() for kit in kits.values()]
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
        for kit in kits.values():
            kit.stop()
