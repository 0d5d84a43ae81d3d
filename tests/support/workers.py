"""Helpers for tests that run real `nudge` worker processes against the in-process emulators.

A test starts a provider's emulator kit (providers._emulator.kit) and an SMTP sink (aiosmtpd) in its
own process, writes a config file naming them and a database (a SQLite file, or a throw-away PostgreSQL schema selected
with `?options=-csearch_path=...`), seeds and connects companies through the real OAuth flow, then
runs `nudge run` / `nudge worker` as subprocesses it can SIGKILL or SIGTERM. Nothing in production
code knows about these tests: the crash points are reached with emulator faults, a blocking SMTP
handler and database locks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, select, text

from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.connections.connect import begin_connect, complete_connect
from connector.storage.tables import Action
from connector.vault.keyring import generate_key
from providers._emulator.kit import EmulatorKit
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.databases import migrate, postgres_url_or_skip
from tests.support.smtp import smtp_server

ROOT = Path(__file__).resolve().parents[2]
NUDGE = str(Path(sys.executable).with_name("nudge"))


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# -- databases -------------------------------------------------------------------------------------
@contextmanager
def nudge_database(kind: str, folder: Path) -> Iterator[str]:
    """A URL for a fresh database a config file can name: a SQLite file, or a PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'nudge.sqlite3'}"
        return
    url = postgres_url_or_skip()
    url = url.replace("postgresql://", "postgresql+psycopg://", 1) if "+" not in url else url
    schema = f"w_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Hold the database's write lock on the actions table (SQLite: the whole file) until exit:
    a worker that wants to commit an action's outcome blocks on it."""
    if url.startswith("sqlite"):
        import sqlite3

        raw = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(text("LOCK TABLE actions IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


# -- SMTP -------------------------------------------------------------------------------------------
@dataclass
class SmtpSink:
    """An SMTP server that records every message (by Message-ID) and can hold one in DATA.

    `hold_next()` makes the next DATA block until `release()`: the message counts as received (the
    worst case for at-most-once: the server has it although the client never heard "250").
    `on_data` runs (in the server thread) when a message arrives, before it is answered.
    """

    received: list[bytes] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    _hold: bool = False
    _released: threading.Event = field(default_factory=threading.Event)
    on_data: Callable[[], None] | None = None
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        hold, self._hold = self._hold, False
        if self.on_data is not None:
            self.on_data()
        self.entered.set()
        while hold and not self._released.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"

    def hold_next(self) -> None:
        self.entered.clear()
        self._released.clear()
        self._hold = True

    def release(self) -> None:
        self._released.set()

    def message_ids(self) -> list[str]:
        return [str(message_from_bytes(raw, policy=policy.default)["Message-ID"]) for raw in self.received]


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    with smtp_server(sink) as port:
        sink.port = port
        try:
            yield sink
        finally:
            sink.release()


# -- config and services ----------------------------------------------------------------------------
def write_config(
    folder: Path,
    database_url: str,
    kit: EmulatorKit,
    smtp_port: int,
    rules: dict[str, Any],
    *,
    scheduler: dict[str, int],
    provider_options: dict[str, Any] | None = None,
) -> Path:
    """A complete config file for worker processes (the kit's emulator, the SMTP sink, `rules`)."""
    settings = kit.settings(
        f"http://127.0.0.1:5000/oauth/{kit.provider}/callback",
        **{
            "retry_base_s": 0.02,
            "timeout_s": 60,
            "rate_per_minute": 100_000,
            "max_concurrent": 50,
            **(provider_options or {}),
        },
    )
    config = {
        "mode": "development",  # the providers are local emulators over plain http
        "instance_path": str(folder),
        "log_level": "WARNING",
        "database": {"url": database_url, "pool_size": 10},
        "vault": {"active_key": "k1", "keys": {"k1": generate_key()}},
        "web": {"secret_key": generate_key(), "base_url": "http://127.0.0.1:5000", "session_cookie_secure": False},
        "mail": {
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_security": "none",
            "from_address": "billing@nudge.example",
            "timeout_seconds": 60,
        },
        "scheduler": {"jitter_seconds": 1, "sync_interval_minutes": 60, "full_reconcile_hours": 24, **scheduler},
        "providers": {
            kit.provider: {
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "redirect_uri": settings.redirect_uri,
                "environment": settings.environment,
                "api_base": settings.api_base,
                "identity_base": settings.identity_base,
                "options": dict(settings.options),
            }
        },
        **rules,
    }
    path = folder / "nudge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def services_for(config: Path) -> Services:
    services = build(load_settings(str(config)))
    migrate(services.store)
    return services


def organization(services: Services, name: str = "Practice") -> int:
    with services.store.unit_of_work() as uow:
        org = uow.organizations.add(name)
        uow.commit()
        return org.id


def add_overdue_customers(
    kit: EmulatorKit, tenant: str, count: int, *, number: str, amount: str, days_late: int, first: int = 0
) -> None:
    """Customers "Payer <n>" (n from `first`), each with one open invoice "<number>-<n>" of `amount` in the
    company's currency, due `days_late` days ago and issued 30 days before that."""
    due = datetime.now(UTC).date() - timedelta(days=days_late)
    for n in range(first, first + count):
        customer = kit.add_customer(tenant, f"Payer {n}", customer_email(f"Payer {n}"))
        kit.add_invoice(tenant, customer, f"{number}-{n}", Decimal(amount), "", due - timedelta(days=30), due)


# -- connecting -------------------------------------------------------------------------------------
def customer_email(name: str) -> str:
    """The accounts-payable address of a seeded customer."""
    return f"ap@{name.lower().replace(' ', '-')}.example"


def connect(
    services: Services, kit: EmulatorKit, tenant: str, org_id: int, cadence: str, *, review: bool = False
) -> int:
    """The real OAuth flow (Nudge's authorize URL, the emulator's consent page, Nudge's callback).

    A new connection starts in review; the user then starts chasing at once (`nudge approve --all`
    through connector.review, before the first sync) unless `review` keeps the review open."""
    spec, settings = services.registry.spec(kit.provider), services.registry.settings(kit.provider)
    request = begin_connect(spec, settings)
    params = kit.approve(request.url, [tenant])
    [connected] = complete_connect(
        services.store,
        services.vault,
        spec,
        settings,
        org_id,
        params,
        request.state,
        request.code_verifier,
        services.clock.now(),
    )
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connected.connection_id)
        assert connection is not None
        connection.cadence = cadence
        connection.time_zone = "UTC"
        in_review = connection.chasing == "review"  # not a ledger another organization chases
        uow.commit()
    if in_review and not review:
        from connector.review import approve

        approve(services.store, connected.connection_id, "test-user", services.clock.now())
    return connected.connection_id


@dataclass(frozen=True)
class Writes:
    """What Nudge wrote into one QuickBooks company, by the adapters' deterministic markers."""

    note_markers: list[str]  # every "[nudge <hash>]" in every invoice's PrivateNote (duplicates kept)
    fee_doc_numbers: list[str]  # DocNumber of every LF- invoice
    credit_doc_numbers: list[str]  # DocNumber of every credit memo
    credit_applications: int  # zero-amount payments linking a credit memo to an invoice


def quickbooks_writes(kit: QuickBooksKit, realm: str) -> Writes:
    import re

    entities = kit.emulator.store.company(realm).entities
    markers = [
        found
        for invoice in entities["Invoice"].values()
        for found in re.findall(r"\[nudge [0-9a-f]{8}\]", str(invoice.get("PrivateNote") or ""))
    ]
    fees = [str(i["DocNumber"]) for i in entities["Invoice"].values() if str(i.get("DocNumber", "")).startswith("LF-")]
    credits = [str(m.get("DocNumber", "")) for m in entities["CreditMemo"].values()]
    links = [
        [linked.get("TxnType") for line in p.get("Line") or [] for linked in line.get("LinkedTxn") or []]
        for p in entities["Payment"].values()
    ]
    applications = sum(1 for types in links if "CreditMemo" in types)
    return Writes(markers, fees, credits, applications)


def actions(services: Services) -> list[Action]:
    with services.store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Action).order_by(Action.id)))
        uow.session.expunge_all()
        return rows


# -- processes ----------------------------------------------------------------------------------------
def nudge(config: Path, *args: str) -> subprocess.Popen[str]:
    """Start `nudge --config CONFIG ARGS...` (its own process group, output captured)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUDGE_CONFIG=str(config))
    return subprocess.Popen(
        [NUDGE, "--config", str(config), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(config.parent),
    )


def reap(processes: Iterable[subprocess.Popen[str]]) -> None:
    """Kill what still runs and close every output pipe (no process outlives its test)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait(timeout=30)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL: no cleanup, no finally blocks, leases left behind."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
