"""RS-38: the database goes away mid-run and comes back; the SQLite file is locked by another writer.

- PostgreSQL restart seen by a real `nudge worker` and by /healthz: the worker's database traffic goes
  through a TCP proxy in front of the server; "restart" closes every connection and refuses new ones for
  a few seconds, then accepts again (what clients of a restarting server see). The worker keeps running,
  its ticks retry, every reminder intent ends done (or, for the one email whose outcome could not be
  recorded, uncertain), none is sent twice; /healthz answers 503 "degraded" while the database is away
  and 200 "ok" once it is back.
- The killed-server-connections case at the Worker level (moved here from tests/service/test_scheduler).
- SQLite: another writer holds the file's write lock for longer than the busy timeout; the worker survives
  the "database is locked" ticks and finishes everything once, afterwards.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from connector.config import load_settings
from connector.worker.scheduler import Lease, Worker
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.clock import FakeClock
from tests.support.databases import Database
from tests.support.pipeline import rules
from tests.support.scheduler import SETTINGS, due_connections
from tests.support.workers import (
    SmtpSink,
    actions,
    add_overdue_customers,
    connect,
    nudge,
    nudge_database,
    organization,
    services_for,
    smtp_sink,
    wait_for,
    write_config,
    write_lock,
)
from web import create_app
from web.extensions import SERVICES_KEY

REMINDERS = 12
RULES = rules([{"id": "late", "offset": 3, "remind": "firm"}], cadence="outage", catch_up=None)
SCHEDULER = {"tick_seconds": 1, "lease_seconds": 3, "concurrency": 1}


class Proxy:
    """A TCP proxy to PostgreSQL that can be taken down (every connection closed, new ones refused) and up."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        listener = self.listener
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        self.listener.close()
        self.accepting.join(5)
        with self.lock:
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def up(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def close(self) -> None:
        self.down()


Scene = tuple[QuickBooksKit, SmtpSink, Path, str, Proxy | None]


@contextmanager
def scene(
    tmp_path: Path, kind: str, *, via_proxy: bool
) -> Iterator[tuple[QuickBooksKit, SmtpSink, Path, str, Proxy | None]]:
    """An emulator company with REMINDERS overdue customers, connected; the config's URL maybe via a proxy."""
    with QuickBooksKit() as emulator, smtp_sink() as sink, nudge_database(kind, tmp_path) as url:
        proxy = Proxy(("127.0.0.1", 5432)) if via_proxy else None
        worker_url = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}") if proxy else url
        realm = emulator.add_company("Outage Co", "USD")
        add_overdue_customers(emulator, realm, REMINDERS, number="O", amount="90.00", days_late=6)
        config = write_config(tmp_path, worker_url, emulator, sink.port, RULES, scheduler=SCHEDULER)
        services = services_for(config)
        try:
            connect(services, emulator, realm, organization(services), "outage")
        finally:
            services.store.dispose()
        try:
            yield emulator, sink, config, url, proxy
        finally:
            if proxy is not None:
                proxy.close()


def _settled(config_url: str) -> bool:
    engine = create_engine(config_url)
    try:
        with engine.connect() as connection:
            open_rows = connection.execute(
                text("SELECT count(*) FROM actions WHERE state IN ('planned', 'running', 'sending')")
            ).scalar()
            total = connection.execute(text("SELECT count(*) FROM actions")).scalar()
    finally:
        engine.dispose()
    return total == REMINDERS and open_rows == 0


def _assert_each_intent_once(config: Path, sink: SmtpSink) -> Counter[str]:
    """Every reminder done (or uncertain: sent, outcome not recorded), none planned or lost, none sent twice."""
    services = services_for(config)
    try:
        rows = actions(services)
    finally:
        services.store.dispose()
    states = Counter(row.state for row in rows)
    assert len(rows) == REMINDERS
    assert set(states) <= {"done", "uncertain"}, states
    received = sink.message_ids()
    assert len(received) == len(set(received))
    assert {row.external_ref for row in rows if row.state == "done"} <= set(received)
    assert states["done"] <= len(received) <= REMINDERS
    return states


def _stop(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err[-2000:]
    assert "Traceback" not in err


def test_rs38_postgres_restart_worker_survives_and_health_degrades_then_recovers(tmp_path: Path) -> None:
    """RS-38: the scheduler survives and jobs retry; no intent is lost or duplicated; health shows degraded,
    then recovers."""
    with scene(tmp_path, "postgresql", via_proxy=True) as (_, sink, config, direct_url, proxy):
        assert proxy is not None
        app = create_app(load_settings(str(config)))  # the web app on the worker's database, through the proxy
        client = app.test_client()
        assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
        held = 4  # the email in flight when the database goes away

        def hold_one() -> None:
            if len(sink.received) == held - 1:
                sink.hold_next()

        sink.on_data = hold_one
        worker = nudge(config, "worker")
        try:
            wait_for(
                lambda: (len(sink.received) >= held and sink.entered.is_set()) or worker.poll() is not None,
                120,
                "the 4th email in DATA",
            )
            assert worker.poll() is None, worker.communicate()
            proxy.down()  # the database restarts while an email is in flight
            sink.release()  # "250": the worker cannot record it now
            degraded = client.get("/healthz")
            assert degraded.status_code == 503
            assert degraded.json == {"status": "degraded", "database": "unreachable"}
            time.sleep(3)  # a few ticks fail against the absent database
            assert worker.poll() is None  # the scheduler survived
            proxy.up()
            wait_for(lambda: _settled(direct_url), 120, "every reminder settled after the restart")
            assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
            _stop(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=30)
            app.extensions[SERVICES_KEY].store.dispose()
        states = _assert_each_intent_once(config, sink)
        assert states == {"done": REMINDERS - 1, "uncertain": 1}  # the one in flight is listed for review, not re-sent
        assert len(sink.received) == REMINDERS


def test_rs38_sqlite_locked_by_another_writer_worker_survives_and_finishes_once(tmp_path: Path) -> None:
    """RS-38 (SQLite variant): the scheduler survives a write lock held past the busy timeout; jobs retry; no intent
    is lost or duplicated."""
    with scene(tmp_path, "sqlite", via_proxy=False) as (_, sink, config, url, _proxy):
        worker = nudge(config, "worker")
        try:
            wait_for(lambda: len(sink.received) >= 2, 120, "the first emails")
            with write_lock(url):
                time.sleep(12)  # longer than the 10 s busy timeout: the worker's writes fail with "database is locked"
                assert worker.poll() is None
            wait_for(lambda: _settled(url), 120, "every reminder settled after the lock")
            _stop(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=30)
        _assert_each_intent_once(config, sink)


# -- the Worker against killed server connections (moved from tests/service/test_scheduler.py) ---------------------
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LEASE_PROBE = timedelta(seconds=1)


def test_rs38_killed_server_connections_fail_one_turn_and_the_next_tick_retries(postgres_database: Database) -> None:
    """RS-38: the scheduler survives and jobs retry (no intent lost).

    Every server connection of the worker is killed (as a PostgreSQL restart does): the tick that hits
    it fails without taking the worker down, and the next tick carries on with nothing lost."""
    store = postgres_database.store(pool_size=4, application_name="nudge-restart-test")
    admin = create_engine(postgres_database.url)
    try:
        store.upgrade()
        ids = due_connections(store, 3, T0)
        processed: list[int] = []

        def restart_database() -> None:
            with admin.begin() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'nudge-restart-test'"
                    )
                )

        def process(connection_id: int, lease: Lease) -> None:
            lease.renew()  # idle pooled connections killed by an earlier restart are replaced (pre-ping)
            if not processed:
                processed.append(-connection_id)
                with store.unit_of_work() as uow:
                    uow.connections.by_id(connection_id)
                    restart_database()  # the database goes away in the middle of this turn's transaction
                    uow.connections.claim_due("w9", T0, LEASE_PROBE, 1)  # a real query: StorageError, the turn fails
            processed.append(connection_id)

        clock = FakeClock(T0)
        worker = Worker(store, process, SETTINGS, clock, owner="w1")
        first = worker.tick()  # survives: one connection fails, the others are processed
        assert len(first.claimed) == 3
        assert len(first.failed) == 1  # the turn the outage hit failed, alone
        clock.moment = T0 + timedelta(hours=2)
        second = worker.tick()
        done = {cid for cid in processed if cid > 0}
        assert done == set(ids)  # nothing lost: the one that failed ran again at the next tick
        assert set(second.succeeded) | set(first.succeeded) == set(ids)
    finally:
        store.dispose()
        admin.dispose()
