"""Three `nudge worker` processes over 10,000 connections (5,000 QuickBooks companies, 5,000 Xero organisations) on
PostgreSQL, polling at rest every 6 hours, while webhooks arrive for 1 % of the connections a minute for 10 minutes.

Set-up (timed as `setup_s`): both emulators as child processes with their real per-tenant (and Xero's per-app)
limits on; a fresh PostgreSQL schema (dropped afterwards); a config file in a temp folder naming the emulators,
the schema, the at-rest schedule (`scheduler.sync_interval_minutes: 360`, `full_reconcile_hours: 24`, set here so
the bench does not depend on the defaults; every other scheduler key is the product default) and one cadence, with
the vault key, web secret and webhook keys in the processes' environment only. Each tenant has one customer and
three open invoices due 30, 60 and 90 days ahead, so nothing is due to be chased at rest. The warm-up (an
in-process Worker at high concurrency, as `worker_1000_connections` does) runs every connection's first full sync;
then `next_run_at` is spread uniformly over the next 6 hours, the steady state of a 6-hour poll, so about 1/36 of
the connections fall due during the 10 measured minutes.

The measured window: three `nudge worker` subprocesses and `nudge serve` (the web app receiving webhooks). Each
minute, 100 connections not picked before (so every webhook is one connection's only news) get a real change in
their ledger through the emulator's admin API, then a correctly signed delivery over HTTP to
`/webhooks/<provider>`, spread evenly across the minute. Four changes in five are a 1.00 payment on an open invoice
(visible once the invoice's balance in Nudge's store is the lower one); one in five is an invoice a user enters
already 10 days overdue (visible once its row exists), which the cadence's catch-up chases at once: one reminder
email (maildir outbox) and one note in the ledger, written by whichever worker holds the connection.

Metrics:
- `p95_webhook_to_synced_s` / `p50_...`: from the instant a delivery is sent to the first poll (every 0.5 s) of the
  store that shows its change; a change never shown counts with the time until observation ended.
- `missed_intervals`: connections whose spread `next_run_at` fell inside the window (and at least TOLERANCE before
  its end) without a successful sync finished by `next_run_at` + TOLERANCE, where TOLERANCE is one
  `scheduler.tick_seconds` (product default 30 s) plus 2 minutes; a webhook's earlier sync counts, since it
  restarts the 6-hour interval. Plus every connection whose latest successful sync is older than the 6-hour
  interval when the window ends.
- `duplicate_effects`: turns of one connection started while another turn of it had not finished (the
  `connection.turn_started/finished` activities of the window, any worker), done actions sharing a key, reminder
  emails beyond one per entered invoice, and notes beyond one of the same text on an entered invoice in its ledger.
- `webhooks`, `webhooks_unsynced`, `syncs` (successful syncs in the window), `connection_errors` (in the window),
  `rate_limited_calls` (429 answers of both emulators after the warm-up), `reminders_sent`, `notes_written`,
  `worker_processes`, `connections`, `setup_s` (emulators, schema, seeding, connecting) and `warmup_s`.

Before the worker woke early for what falls due between ticks, this scenario missed its p95 (81.8 s, p50 63.8 s):
a webhook's connection waited for its 30 s debounce and then for the next 30 s tick, behind batches of
`max_connections_per_tick` (20) that capped the three workers at about 120 connections a minute.

NUDGE_BENCH_POSTGRES_URL names the server (default the local one). NUDGE_BENCH_WORKERS_CONNECTIONS and
NUDGE_BENCH_WORKERS_MINUTES shrink the run for a quick look (default 10,000 and 10); the targets hold the issue's
figures either way.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import create_engine, func, select, text, update

from bench.targets import Target, at_most
from bench.workers_support import readings
from bench.workers_support.ledgers import Change, Kit, Tenant, enter_overdue_invoice, note_duplicates, pay, seed_tenant
from bench.workers_support.ledgers import webhook_body as delivery_body
from providers._emulator.kit import free_port
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.xero.emulator.kit import XeroKit

NAME = "workers_10k_connections"
CONNECTIONS = int(os.environ.get("NUDGE_BENCH_WORKERS_CONNECTIONS", "10000"))
MINUTES = int(os.environ.get("NUDGE_BENCH_WORKERS_MINUTES", "10"))
WEBHOOK_SHARE_PER_MINUTE = 0.01
ENTERED_EVERY = 5  # one change in five is an overdue invoice a user enters; the rest are payments
WORKER_PROCESSES = 3
SYNC_INTERVAL = timedelta(minutes=360)
FULL_RECONCILE_HOURS = 24
GRACE = timedelta(minutes=2)  # a due connection must be synced within scheduler.tick_seconds plus this
WARMUP_CONCURRENCY = 32  # threads, each holding a PostgreSQL connection (the server's default limit is 100)
SEED_THREADS = 16
POLL_SECONDS = 0.5
POSTGRES = os.environ.get("NUDGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NUDGE = str(Path(sys.executable).with_name("nudge"))
CADENCE = {
    "time_zone": "UTC",
    "send_time": "00:00",
    "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "23:59"},
    "catch_up": "latest",
    "steps": [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue reminder sent by Nudge"}],
}


def targets(metrics: dict[str, float]) -> list[Target]:
    return [
        Target(
            f"p95_webhook_to_synced_s < 60 (is {metrics['p95_webhook_to_synced_s']:g})",
            metrics["p95_webhook_to_synced_s"] < 60,
        ),
        at_most(metrics, "missed_intervals", 0),
        at_most(metrics, "duplicate_effects", 0),
    ]


def _schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"


def _write_config(folder: Path, database_url: str, kits: dict[str, Kit], web_port: int) -> Path:
    """The config every process reads; secrets are ${...} references to the environment."""
    providers: dict[str, Any] = {}
    for key, kit in kits.items():
        settings = kit.settings(f"http://127.0.0.1:{web_port}/oauth/{key}/callback")
        providers[key] = {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "redirect_uri": settings.redirect_uri,
            "webhook_key": "${QBO_WEBHOOK_VERIFIER}" if key == "quickbooks" else "${XERO_WEBHOOK_KEY}",
            "environment": settings.environment,
            "api_base": settings.api_base,
            "identity_base": settings.identity_base,
        }
    config = {
        "mode": "development",  # the providers are local emulators over plain http
        "instance_path": str(folder),
        "log_level": "WARNING",
        "database": {"url": database_url},
        "vault": {"active_key": "k1", "keys": {"k1": "${NUDGE_VAULT_KEY}"}},
        "web": {
            "secret_key": "${NUDGE_SECRET_KEY}",
            "base_url": f"http://127.0.0.1:{web_port}",
            "host": "127.0.0.1",
            "port": web_port,
            "session_cookie_secure": False,
        },
        "mail": {"backend": "maildir", "outbox_path": str(folder / "outbox"), "from_address": "billing@nudge.example"},
        "scheduler": {
            "sync_interval_minutes": int(SYNC_INTERVAL.total_seconds() // 60),
            "full_reconcile_hours": FULL_RECONCILE_HOURS,
        },
        "providers": providers,
        "cadences": {"bench": CADENCE},
        "policies": {"templates": ["firm"]},
    }
    path = folder / "nudge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _environment() -> dict[str, str]:
    from connector.vault.keyring import generate_key

    return {
        "NUDGE_VAULT_KEY": generate_key(),
        "NUDGE_SECRET_KEY": generate_key(),
        "QBO_WEBHOOK_VERIFIER": uuid.uuid4().hex,
        "XERO_WEBHOOK_KEY": uuid.uuid4().hex,
    }


def _seed(kits: dict[str, Kit]) -> list[Tenant]:
    """CONNECTIONS tenants, half in each emulator, seeded over the admin APIs by a few threads."""
    today = datetime.now(UTC).date()
    jobs = [(kit, n) for n in range(CONNECTIONS // len(kits)) for kit in kits.values()]
    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        return list(pool.map(lambda job: seed_tenant(job[0], job[1], today), jobs))


def _connect(services: Any, tenants: list[Tenant]) -> dict[str, int]:
    """A connection per tenant with its tokens sealed; tenant id -> connection id."""
    from connector.ports import TokenSet
    from connector.vault.tokens import seal_tokens

    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    with services.store.unit_of_work() as uow:
        org = uow.organizations.add("Bench practice")
        for tenant in tenants:
            row = uow.connections.add(
                org.id, tenant.provider, tenant.tenant_id, f"Bench {tenant.tenant_id}", cadence="bench", next_run_at=now
            )
            seal_tokens(services.vault, row, TokenSet.from_response(tenant.grant, now))
            ids[tenant.tenant_id] = row.id
        uow.commit()
    return ids


def _warm_up(services: Any) -> None:
    """Every connection's first (full) sync, by an in-process Worker; ticks again after provider limits."""
    from connector.storage.tables import Connection
    from connector.worker.scheduler import Lease, Worker
    from connector.worker.turn import run_connection

    def process(connection_id: int, lease: Lease) -> None:
        run_connection(services, connection_id, lease.owner, reminders=None, renew=lease.renew)

    # Short leases: a turn whose release failed (the database refused a connection) is taken again within
    # minutes, not after the default 10.
    scheduler = replace(
        services.settings.scheduler, max_connections_per_tick=CONNECTIONS, jitter_seconds=1, lease_seconds=120
    )
    worker = Worker(
        services.store, process, scheduler, services.clock, owner="bench-warm-up", concurrency=WARMUP_CONCURRENCY
    )
    synced: set[int] = set()
    deadline = time.monotonic() + 1800
    while len(synced) < CONNECTIONS:
        report = worker.tick()
        synced.update(report.succeeded)
        if len(synced) >= CONNECTIONS:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up: {CONNECTIONS - len(synced)} connection(s) never synced; e.g. {report.failed}")
        with services.store.unit_of_work() as uow:
            soonest = uow.session.scalar(select(func.min(Connection.next_run_at)))  # the synced are 6 h ahead
        if soonest is not None:
            time.sleep(min(max((soonest - datetime.now(UTC)).total_seconds(), 0.0), 60.0))


def _spread(services: Any, start: datetime, rng: random.Random) -> dict[int, datetime]:
    """Each connection's next poll, uniform over the 6-hour interval from `start`; id -> instant.

    The warm-up's worker has finished: a lease it could not release (the database refused it a connection)
    is dropped here rather than left to expire in the window."""
    from connector.storage.tables import Connection

    with services.store.unit_of_work() as uow:
        ids = list(uow.session.scalars(select(Connection.id)))
        due = {cid: start + timedelta(seconds=rng.uniform(0, SYNC_INTERVAL.total_seconds())) for cid in ids}
        uow.session.execute(
            update(Connection),
            [{"id": cid, "next_run_at": at, "lease_owner": "", "lease_until": None} for cid, at in due.items()],
        )
        uow.commit()
    return due


def _open_invoices(services: Any) -> dict[int, tuple[str, Any]]:
    """One open invoice per connection (its external id and balance), from the store after the warm-up."""
    from connector.storage.tables import Invoice

    with services.store.unit_of_work() as uow:
        rows = uow.session.execute(
            select(Invoice.connection_id, Invoice.external_id, Invoice.balance)
            .where(Invoice.balance > 0)
            .order_by(Invoice.connection_id, Invoice.external_id)
        ).all()
    chosen: dict[int, tuple[str, Any]] = {}
    for connection_id, external_id, balance in rows:
        chosen.setdefault(connection_id, (external_id, balance))
    return chosen


def _start(config: Path, env: dict[str, str], folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """`nudge --config CONFIG ARGS` with its output in FOLDER/NAME.log (a pipe would fill and block it)."""
    log = (folder / f"{name}.log").open("wb")
    # Our own console script with our own arguments: no untrusted input reaches the command.
    return subprocess.Popen(
        [NUDGE, "--config", str(config), *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(folder)
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("nudge serve exited before it answered")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError("nudge serve did not answer within 60 s")


class Deliveries:
    """The measured webhooks: what changed, when it was sent, when the store first showed it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[int, Change]] = {}  # sent, not yet shown by the store
        self.changes: dict[int, Change] = {}  # every webhook's change, by number
        self.sent_at: dict[int, float] = {}
        self.seen_at: dict[int, float] = {}
        self.failed: list[str] = []
        self.done_sending = threading.Event()


def _send(deliveries: Deliveries, fleet: Fleet, signature_headers: dict[str, str], rng: random.Random) -> None:
    """Each minute, 1 % of the connections: change its ledger, then deliver the signed webhook."""
    env, kits, tenants, invoices, web_url = fleet.env, fleet.kits, fleet.tenants, fleet.invoices, fleet.web_url
    keys = {"quickbooks": env["QBO_WEBHOOK_VERIFIER"], "xero": env["XERO_WEBHOOK_KEY"]}
    per_minute = max(1, round(CONNECTIONS * WEBHOOK_SHARE_PER_MINUTE))
    picked = rng.sample(sorted(tenants), per_minute * MINUTES)
    today = datetime.now(UTC).date()
    started = time.monotonic()
    session = requests.Session()
    try:
        for number, connection_id in enumerate(picked):
            time.sleep(max(0.0, started + number * 60 / per_minute - time.monotonic()))
            tenant = tenants[connection_id]
            kit = kits[tenant.provider]
            if number % ENTERED_EVERY == ENTERED_EVERY - 1:
                change = enter_overdue_invoice(kit, tenant, f"W{number:05d}", today)
            else:
                invoice, balance = invoices[connection_id]
                change = pay(kit, tenant.tenant_id, invoice, balance)
            body = delivery_body(change, datetime.now(UTC))
            headers = {
                "Content-Type": "application/json",
                signature_headers[tenant.provider]: kit.sign_webhook(body, keys[tenant.provider]),
            }
            with deliveries.lock:
                deliveries.pending[number] = (connection_id, change)
                deliveries.changes[number] = change
                deliveries.sent_at[number] = time.time()
            answer = session.post(f"{web_url}/webhooks/{tenant.provider}", data=body, headers=headers, timeout=30)
            if answer.status_code != 200:
                deliveries.failed.append(f"{tenant.provider} webhook answered {answer.status_code}")
    finally:
        deliveries.done_sending.set()


def _watch(deliveries: Deliveries, store: Any, stop: threading.Event) -> None:
    """Poll the store for the pending changes until stopped; note the instant each first shows."""
    while not stop.is_set():
        with deliveries.lock:
            pending = dict(deliveries.pending)
        polled = time.time()
        for number in readings.visible(store, pending):
            with deliveries.lock:
                deliveries.seen_at[number] = polled
                deliveries.pending.pop(number, None)
        stop.wait(POLL_SECONDS)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)  # nearest rank
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _rate_limited(kits: dict[str, Kit]) -> int:
    return sum(1 for kit in kits.values() for call in kit.calls() if call["status"] == 429)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@dataclass
class Fleet:
    """What the measured window runs against: the emulators, the store, the config and the seeded connections."""

    kits: dict[str, Kit]
    services: Any
    folder: Path
    config: Path
    env: dict[str, str]
    web_port: int
    tenants: dict[int, Tenant]  # by connection id
    invoices: dict[int, tuple[str, Any]]  # one open invoice (external id, balance) by connection id

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def tolerance(self) -> timedelta:
        """How long after falling due a connection may wait for its sync: a tick plus GRACE."""
        return timedelta(seconds=self.services.settings.scheduler.tick_seconds) + GRACE


@dataclass
class Window:
    """What happened in the measured window."""

    start: datetime
    end: datetime
    due: dict[int, datetime]  # each connection's spread next poll
    deliveries: Deliveries
    observed_end: float


def _measure(fleet: Fleet, processes: list[subprocess.Popen[bytes]], rng: random.Random) -> Window:
    """Start `nudge serve` and the workers, send the webhooks and watch the store; stop them all."""
    process_env = {**os.environ, **fleet.env, "NUDGE_CONFIG": str(fleet.config)}
    processes.append(_start(fleet.config, process_env, fleet.folder, "web", "serve"))
    _wait_ready(fleet.web_url, processes[0])
    start = datetime.now(UTC)
    due = _spread(fleet.services, start, rng)
    for n in range(WORKER_PROCESSES):
        processes.append(_start(fleet.config, process_env, fleet.folder, f"worker-{n}", "worker"))
    deliveries = Deliveries()
    stop_watching = threading.Event()
    headers = {key: fleet.services.registry.spec(key).webhook_signature_header for key in fleet.kits}
    sender = threading.Thread(target=_send, args=(deliveries, fleet, headers, rng), name="bench-webhooks")
    watcher = threading.Thread(
        target=_watch, args=(deliveries, fleet.services.store, stop_watching), name="bench-watch"
    )
    sender.start()
    watcher.start()
    sender.join()
    end = start + timedelta(minutes=MINUTES)
    # The last webhooks and the last connections due get their tolerance, then watching stops.
    observe_until = max(datetime.now(UTC), end) + fleet.tolerance
    while datetime.now(UTC) < observe_until:
        with deliveries.lock:
            if not deliveries.pending and datetime.now(UTC) >= end + fleet.tolerance:
                break
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"a nudge process exited during the window; see {fleet.folder}/*.log")
        time.sleep(1)
    stop_watching.set()
    watcher.join()
    observed_end = time.time()
    _stop_all(processes)
    if deliveries.failed:
        raise RuntimeError(f"{len(deliveries.failed)} webhook(s) refused, e.g. {deliveries.failed[0]}")
    return Window(start, end, due, deliveries, observed_end)


def _effects(fleet: Fleet, window: Window) -> dict[str, int]:
    """The window's effects and their duplicates (see the module docstring)."""
    store = fleet.services.store
    actions_done, duplicate_actions = readings.duplicate_actions(store)
    entered = {number: c for number, c in window.deliveries.changes.items() if c.kind == "entered"}
    emails, duplicate_emails = readings.duplicate_emails(fleet.folder / "outbox", [f"W{n:05d}" for n in entered])
    notes = duplicate_notes = 0
    for change in entered.values():
        found, extra = note_duplicates(fleet.kits[change.provider], change.tenant_id, change.invoice_id)
        notes += found
        duplicate_notes += extra
    overlaps = readings.overlapping_turns(store, window.start)
    return {
        "duplicates": overlaps + duplicate_actions + duplicate_emails + duplicate_notes,
        "actions_done": actions_done,
        "emails": emails,
        "notes": notes,
    }


def _metrics(fleet: Fleet, window: Window) -> dict[str, float]:
    from connector.storage.tables import Activity

    store = fleet.services.store
    deliveries = window.deliveries
    latencies = [deliveries.seen_at.get(n, window.observed_end) - sent for n, sent in deliveries.sent_at.items()]
    window_due = {cid: at for cid, at in window.due.items() if at <= window.end}
    syncs = readings.successful_syncs(store, window.start)
    last_sync = readings.last_successful_sync(store)
    missed = readings.missed_intervals(
        window_due, syncs, last_sync, window.due, window.end, fleet.tolerance, SYNC_INTERVAL
    )
    effects = _effects(fleet, window)
    with store.unit_of_work() as uow:
        errors = uow.session.scalar(
            select(func.count()).where(Activity.kind == "connection.error", Activity.at >= window.start)
        )
    return {
        "p95_webhook_to_synced_s": round(_percentile(latencies, 0.95), 1),
        "p50_webhook_to_synced_s": round(statistics.median(latencies), 1) if latencies else 0.0,
        "missed_intervals": float(missed),
        "duplicate_effects": float(effects["duplicates"]),
        "webhooks": float(len(latencies)),
        "webhooks_unsynced": float(len(deliveries.sent_at) - len(deliveries.seen_at)),
        "syncs": float(sum(len(finished) for finished in syncs.values())),
        "due_at_rest_in_window": float(len(window_due)),
        "connection_errors": float(errors or 0),
        "rate_limited_calls": float(_rate_limited(fleet.kits)),
        "actions_done": float(effects["actions_done"]),
        "reminders_sent": float(effects["emails"]),
        "notes_written": float(effects["notes"]),
        "worker_processes": float(WORKER_PROCESSES),
        "connections": float(len(fleet.tenants)),
    }


def run() -> dict[str, float]:
    from connector.bootstrap import build
    from connector.config import load_settings

    setup_started = time.perf_counter()
    rng = random.Random(13)
    kits: dict[str, Kit] = {"quickbooks": QuickBooksKit(), "xero": XeroKit()}
    for kit in kits.values():
        kit.start(process=True)  # with the real per-tenant limits (and Xero's per-app limit) on
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    processes: list[subprocess.Popen[bytes]] = []
    folder = Path(tempfile.mkdtemp(prefix="nudge-workers-bench-"))
    services: Any = None
    try:
        env = _environment()
        web_port = free_port()
        config = _write_config(folder, _schema_url(schema), kits, web_port)
        settings = load_settings(str(config), environ={**os.environ, **env})
        # The warm-up's threads each hold a database connection: a pool to match (the workers use the config's).
        services = build(replace(settings, database=replace(settings.database, pool_size=WARMUP_CONCURRENCY + 4)))
        services.store.upgrade()
        tenants = _seed(kits)
        ids = _connect(services, tenants)
        setup_s = time.perf_counter() - setup_started
        warmup_started = time.perf_counter()
        _warm_up(services)
        warmup_s = time.perf_counter() - warmup_started
        for kit in kits.values():
            kit.clear_calls()
        by_connection = {ids[tenant.tenant_id]: tenant for tenant in tenants}
        fleet = Fleet(kits, services, folder, config, env, web_port, by_connection, _open_invoices(services))
        metrics = _metrics(fleet, _measure(fleet, processes, rng))
        metrics.update({"setup_s": round(setup_s, 1), "warmup_s": round(warmup_s, 1)})
        shutil.rmtree(folder)  # kept after a failure: its *.log files say what the processes did
        return metrics
    finally:
        _stop_all(processes)
        if services is not None:
            services.store.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        for kit in kits.values():
            kit.stop()
