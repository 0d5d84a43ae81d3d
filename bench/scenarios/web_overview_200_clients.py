"""The web app's overview of a practice with 200 clients of 500 invoices each, on PostgreSQL, warm.

Set-up (timed as `setup_s`): a fresh PostgreSQL schema (NUDGE_BENCH_POSTGRES_URL, default the local server; dropped
afterwards), migrated with the shipped migrations, then seeded by bulk inserts: one organization with 200 clients
(QuickBooks and Xero, home currencies USD, GBP and EUR, four time zones, a few waiting for review, chased elsewhere
or needing a reconnect), 40 customers and 500 invoices each (due dates over the past 200 days and the next 30,
about two thirds paid with their payments, some open ones part-paid, a few in a second currency, a few voided), a
week of sync runs, outbox actions (done, planned over the next days, awaiting approval, failed) and open tasks;
then ANALYZE, as autovacuum would have. An owner signs in through the login form of a Flask test client (the app
in this process, on the same database).

Measured, after `WARMUP` requests of each page: `REQUESTS` requests of the overview (`/orgs/<org>/`, its first
page sorted by name, every client's figures computed) -> `overview_p95_ms` and `overview_p50_ms`, with the
statements one render sends (`overview_statements`: a fixed handful whatever the number of clients); and of an
invoice list page (`/orgs/<org>/clients/<id>/invoices`, endpoint `invoices_page.index`) -> `invoices_p95_ms`,
measured only when this build serves that page: otherwise the metric is absent and its target says so (never a
made-up figure). `client_p95_ms` (one client's page) is reported for information.
Targets (issue 15): overview_p95_ms < 300 and invoices_p95_ms < 300.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, event, insert, text

from bench.targets import Target

NAME = "web_overview_200_clients"
CLIENTS = int(os.environ.get("NUDGE_BENCH_OVERVIEW_CLIENTS", "200"))
INVOICES = int(os.environ.get("NUDGE_BENCH_OVERVIEW_INVOICES", "500"))
CUSTOMERS = 40
WARMUP = 5
REQUESTS = 40
TARGET_MS = 300.0
POSTGRES = os.environ.get("NUDGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "bench overview password"
ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "America/Los_Angeles")
CURRENCIES = ("USD", "USD", "USD", "GBP", "GBP", "EUR")
_TOKEN = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')


def targets(metrics: dict[str, float]) -> list[Target]:
    found = [
        Target(
            f"overview_p95_ms < {TARGET_MS:g} (is {metrics['overview_p95_ms']:g})",
            metrics["overview_p95_ms"] < TARGET_MS,
        )
    ]
    if "invoices_p95_ms" in metrics:
        found.append(
            Target(
                f"invoices_p95_ms < {TARGET_MS:g} (is {metrics['invoices_p95_ms']:g})",
                metrics["invoices_p95_ms"] < TARGET_MS,
            )
        )
    else:
        found.append(
            Target(
                f"invoices_p95_ms < {TARGET_MS:g}: NOT MEASURED, this build serves no invoice list page "
                "(endpoint invoices_page.index)",
                False,
            )
        )
    return found


def run() -> dict[str, float]:
    from connector.bootstrap import Services
    from connector.config import settings_for_tests
    from connector.registry import Registry
    from connector.storage import Store
    from web import create_app

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store.from_url(POSTGRES, schema=schema, pool_size=4)
    try:
        started = time.perf_counter()
        store.upgrade()
        now = datetime.now(UTC).replace(microsecond=0)
        org_id, email, client_id = _seed(store, now)
        with store.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
        setup_s = time.perf_counter() - started

        settings = settings_for_tests(POSTGRES)
        services = Services(settings=settings, store=store, registry=Registry({}, {}))
        app = create_app(settings, services)
        client = app.test_client()
        _sign_in(client, email)

        overview_url = f"/orgs/{org_id}/"
        overview_ms, statements = _measure(client, overview_url, store)
        metrics: dict[str, float] = {
            "overview_p95_ms": _p95(overview_ms),
            "overview_p50_ms": round(statistics.median(overview_ms), 1),
            "overview_statements": float(statements),
        }
        if "invoices_page.index" in app.view_functions:
            invoices_ms, _ = _measure(client, f"/orgs/{org_id}/clients/{client_id}/invoices", store)
            metrics["invoices_p95_ms"] = _p95(invoices_ms)
            metrics["invoices_p50_ms"] = round(statistics.median(invoices_ms), 1)
        else:
            print(
                f"  {NAME}: invoices_p95_ms NOT MEASURED: this build has no invoice list page "
                "(endpoint invoices_page.index); the target is reported as missed"
            )
        client_ms, _ = _measure(client, f"/orgs/{org_id}/clients/{client_id}/", store, requests=10)
        metrics.update(
            {
                "client_p95_ms": _p95(client_ms),
                "clients": float(CLIENTS),
                "invoices_per_client": float(INVOICES),
                "requests": float(REQUESTS),
                "setup_s": round(setup_s, 1),
            }
        )
        return metrics
    finally:
        store.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)


def _measure(client: Any, url: str, store: Any, *, requests: int = REQUESTS) -> tuple[list[float], int]:
    """Milliseconds of `requests` GETs of `url` after WARMUP ones, and the statements of one render."""
    for _ in range(WARMUP):
        answer = client.get(url)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url} answered {answer.status_code}")
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        client.get(url)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    samples = []
    for _ in range(requests):
        begin = time.perf_counter()
        answer = client.get(url)
        samples.append((time.perf_counter() - begin) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url} answered {answer.status_code}")
    return samples, len(counted)


def _sign_in(client: Any, email: str) -> None:
    page = client.get("/login")
    match = _TOKEN.search(page.text)
    if match is None:
        raise RuntimeError("the login page carries no CSRF token")
    answer = client.post("/login", data={"csrf_token": match.group(1), "email": email, "password": PASSWORD})
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")


def _key(*parts: object) -> str:
    return hashlib.sha1(":".join(str(part) for part in parts).encode()).hexdigest()


def _batches(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _seed(store: Any, now: datetime) -> tuple[int, str, int]:
    """The practice, its owner and its clients with their ledgers' copies; (org id, owner email, first client id)."""
    from connector.accounts.users import create_user
    from connector.domain.model import Role
    from connector.storage.tables import Action, Connection, Customer, Invoice, Payment, SyncRun, Task

    rng = random.Random(15)
    email = "owner@bench-overview.example"
    with store.unit_of_work() as uow:
        org = uow.organizations.add("Bench Overview Practice")
        other = uow.organizations.add("Another Practice")
        user = create_user(uow, email, PASSWORD, display_name="Bench Owner")
        uow.memberships.add(user.id, org.id, Role.OWNER)
        uow.commit()
        org_id, other_id = org.id, other.id

    connections = []
    for n in range(CLIENTS):
        status = "needs_reauth" if n % 50 == 7 else "active"
        chasing = "review" if n % 40 == 3 else "managed_elsewhere" if n % 70 == 5 else "active"
        limited = n % 60 == 11
        connections.append(
            {
                "organization_id": org_id,
                "provider": "quickbooks" if n % 2 == 0 else "xero",
                "tenant_id": f"bench-{n}",
                "name": f"{rng.choice(['Harbor', 'Granite', 'Beacon', 'Cedar', 'Atlas', 'Maple'])} "
                f"{rng.choice(['Design', 'Joinery', 'Dental', 'Print', 'Farms', 'Logistics'])} {n:03d}",
                "status": status,
                "chasing": chasing,
                "managed_by_organization_id": other_id if chasing == "managed_elsewhere" else None,
                "home_currency": CURRENCIES[n % len(CURRENCIES)],
                "time_zone": ZONES[n % len(ZONES)],
                "next_run_at": now + timedelta(hours=5) if limited else now + timedelta(minutes=n % 360),
                "failures": 0,
                "last_error": (
                    "Xero daily API limit reached, resumes at ... UTC"
                    if limited
                    else "QuickBooks no longer accepts this connection's authorization"
                    if status == "needs_reauth"
                    else ""
                ),
                "created_at": now - timedelta(days=400),
                "updated_at": now,
            }
        )
    with store.engine.begin() as db:
        ids = [row.id for row in db.execute(insert(Connection).returning(Connection.id), connections)]
        customers, invoices, payments, actions, tasks, runs = [], [], [], [], [], []
        today = now.date()
        for n, cid in enumerate(ids):
            home = connections[n]["home_currency"]
            for k in range(CUSTOMERS):
                customers.append(
                    {
                        "connection_id": cid,
                        "external_id": f"c{k}",
                        "name": f"Customer {k} of {n}",
                        "emails": [f"ap{k}@customer.example"],
                        "cc_emails": [],
                    }
                )
            for i in range(INVOICES):
                invoices.append(_invoice(rng, cid, i, home, today, now, payments))
            for i in range(60):  # reminders done (recovery), planned for the next days, waiting, failed
                state = "done" if i < 40 else "planned" if i < 55 else "awaiting_approval" if i < 58 else "failed"
                at = now - timedelta(days=rng.randint(1, 80)) if state == "done" else now + timedelta(hours=i * 3)
                actions.append(
                    {
                        "key": _key(cid, i),
                        "connection_id": cid,
                        "kind": "remind" if i % 3 else "note",
                        "step": "late-3",
                        "invoice_external_id": f"i{rng.randrange(INVOICES)}",
                        "customer_external_id": f"c{rng.randrange(CUSTOMERS)}",
                        "state": state,
                        "scheduled_at": at,
                        "payload": {},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            for k in range(2):
                tasks.append(
                    {
                        "organization_id": org_id,
                        "connection_id": cid,
                        "kind": "call",
                        "customer_external_id": f"c{k}",
                        "customer_name": f"Customer {k} of {n}",
                        "invoice_external_ids": [f"i{k}"],
                        "title": f"Call Customer {k}",
                        "due_on": today,
                        "state": "open",
                        "created_at": now,
                    }
                )
            for r in range(28):  # a week of 6-hour polls
                begin = now - timedelta(hours=6 * r + 1)
                runs.append(
                    {
                        "connection_id": cid,
                        "started_at": begin,
                        "finished_at": begin + timedelta(seconds=20),
                        "calls": 3,
                        "changes": rng.randint(0, 5),
                        "outcome": "ok",
                    }
                )
        for table, rows in (
            (Customer, customers),
            (Invoice, invoices),
            (Payment, payments),
            (Action, actions),
            (Task, tasks),
            (SyncRun, runs),
        ):
            for batch in _batches(rows):
                db.execute(insert(table), batch)
    return org_id, email, ids[0]


def _invoice(
    rng: random.Random, cid: int, i: int, home: str, today: date, now: datetime, payments: list[dict[str, Any]]
) -> dict[str, Any]:
    """One invoice row (and its payments appended): due over the past 200 days and the next 30."""
    due = today - timedelta(days=200) + timedelta(days=i * 230 // INVOICES)
    issued = due - timedelta(days=30)
    currency = home if i % 20 else ("EUR" if home != "EUR" else "GBP")
    total = Decimal(rng.randint(10_000, 1_000_000)) / 100
    age = (today - due).days
    roll = rng.random()
    if i % 25 == 0:
        status, balance = "voided", Decimal(0)
    elif age > 10 and roll < 0.75:
        status, balance = "paid", Decimal(0)
    else:
        status, balance = "open", total
        if roll > 0.8:  # part-paid
            balance = (total * Decimal("0.4")).quantize(Decimal("0.01"))
    paid = total - balance if status != "voided" else Decimal(0)
    if paid > 0:
        paid_on = min(due + timedelta(days=rng.randint(-5, 25)), today)
        payments.append(
            {
                "connection_id": cid,
                "kind": "payment",
                "external_id": f"p{i}",
                "invoice_external_id": f"i{i}",
                "customer_external_id": f"c{i % CUSTOMERS}",
                "amount": paid,
                "currency": currency,
                "paid_on": paid_on,
                "voided": False,
                "updated_at": now,
            }
        )
    return {
        "connection_id": cid,
        "external_id": f"i{i}",
        "number": f"INV-{cid}-{i:04d}",
        "customer_external_id": f"c{i % CUSTOMERS}",
        "customer_name": f"Customer {i % CUSTOMERS}",
        "currency": currency,
        "total": total,
        "balance": balance,
        "issue_date": issued,
        "due_date": due,
        "status": status,
        "version": "1",
        "emails": [],
        "updated_at": now,
        "first_seen_at": now - timedelta(days=300),
        "created_by_nudge": False,
    }


if __name__ == "__main__":
    print(run())
