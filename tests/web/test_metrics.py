"""GET /metrics: the Prometheus text, for the configured bearer token only, with the figures the database holds.

The figures are seeded as rows (sync runs, actions, webhook deliveries) on SQLite and PostgreSQL and read back
through the real text format (prometheus_client's own parser), so a wrong query, a wrong label or a broken
exposition all fail here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from connector.bootstrap import Services
from connector.config import MetricsSettings, Settings, settings_for_tests
from connector.domain.model import ActionState
from connector.registry import Registry
from connector.storage import Store
from connector.storage.tables import Action, Connection, Organization, SyncRun, WebhookDelivery
from connector.vault import redaction
from tests.support.clock import FakeClock
from tests.support.databases import Database
from tests.support.net import free_port
from web import create_app

TOKEN = "metrics-token-0123456789abcdef"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


_BASE = settings_for_tests("sqlite://")  # one vault key for the module: two apps over one database agree


def _settings(store: Store, token: str) -> Settings:
    return replace(
        _BASE,
        database=replace(_BASE.database, url=store.engine.url.render_as_string(hide_password=False)),
        metrics=MetricsSettings(token=token),
    )


def _app(store: Store, token: str = TOKEN) -> Flask:
    settings = _settings(store, token)
    services = Services(settings=settings, store=store, registry=Registry({}, {}), clock=FakeClock(NOW))
    return create_app(settings, services)


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    result = database.store()
    result.create_all()
    try:
        yield result
    finally:
        result.dispose()


def _scrape(app: Flask) -> Samples:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _one(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _seed(store: Store) -> dict[str, int]:
    """Two QuickBooks connections (one disconnected), one Xero, one of a provider not installed here."""
    with store.unit_of_work() as uow:
        org = Organization(name="Tenant Name Never In A Label")
        uow.session.add(org)
        uow.session.flush()
        ids: dict[str, int] = {}
        for key, provider, status in (
            ("qbo", "quickbooks", "active"),
            ("qbo_gone", "quickbooks", "disconnected"),
            ("xero", "xero", "active"),
            ("odd", "freshbooks", "active"),
        ):
            row = Connection(
                organization_id=org.id,
                provider=provider,
                tenant_id=f"tenant-{key}",
                name=f"Client {key}",
                status=status,
            )
            uow.session.add(row)
            uow.session.flush()
            ids[key] = row.id
        runs = [  # connection, outcome, calls, waits, seconds
            ("qbo", "ok", 10, 1, 2.5),
            ("qbo", "ok", 5, 0, 0.0),
            ("qbo_gone", "failed", 3, 2, 1.0),
            ("qbo", "running", 99, 9, 9.0),  # not finished: counted nowhere
            ("xero", "ok", 7, 3, 61.25),
            ("xero", "failed", 1, 0, 0.0),
            ("odd", "ok", 4, 0, 0.0),
        ]
        for key, outcome, calls, waits, seconds in runs:
            uow.session.add(
                SyncRun(
                    connection_id=ids[key],
                    started_at=NOW - timedelta(hours=1),
                    finished_at=None if outcome == "running" else NOW - timedelta(minutes=59),
                    calls=calls,
                    outcome=outcome,
                    limit_waits=waits,
                    limit_wait_seconds=seconds,
                )
            )
        actions = [  # connection, state, scheduled at
            ("qbo", "planned", NOW - timedelta(minutes=30)),  # the oldest due on an active connection
            ("qbo", "planned", NOW - timedelta(minutes=5)),
            ("qbo", "planned", NOW + timedelta(days=2)),  # not due yet
            ("qbo_gone", "planned", NOW - timedelta(days=3)),  # disconnected: waits for a person, not a worker
            ("xero", "done", NOW - timedelta(days=1)),
            ("xero", "done", NOW - timedelta(days=1)),
            ("xero", "awaiting_approval", NOW - timedelta(days=1)),
            ("xero", "uncertain", NOW - timedelta(days=1)),
            ("odd", "failed", NOW - timedelta(days=1)),
        ]
        for n, (key, state, at) in enumerate(actions):
            uow.session.add(
                Action(key=f"k{n}", connection_id=ids[key], kind="remind", state=state, scheduled_at=at, payload={})
            )
        deliveries = [
            ("quickbooks", "accepted", NOW - timedelta(minutes=10)),
            ("quickbooks", "accepted", NOW - timedelta(minutes=2)),
            ("quickbooks", "failed", NOW - timedelta(minutes=20)),
            ("xero", "accepted", NOW - timedelta(hours=3)),
        ]
        for n, (provider, outcome, at) in enumerate(deliveries):
            uow.session.add(WebhookDelivery(provider=provider, event_id=f"e{n}", received_at=at, outcome=outcome))
        uow.commit()
    return ids


def test_the_figures_are_the_seeded_rows(store: Store) -> None:
    _seed(store)
    samples = _scrape(_app(store))

    assert _one(samples, "nudge_syncs_total", provider="quickbooks", outcome="ok") == 2
    assert _one(samples, "nudge_syncs_total", provider="quickbooks", outcome="failed") == 1
    assert _one(samples, "nudge_syncs_total", provider="xero", outcome="ok") == 1
    assert _one(samples, "nudge_syncs_total", provider="xero", outcome="failed") == 1
    assert _one(samples, "nudge_syncs_total", provider="other", outcome="ok") == 1  # freshbooks: not installed
    assert not [key for key in samples if key[0] == "nudge_syncs_total" and ("outcome", "running") in key[1]]

    assert _one(samples, "nudge_provider_calls_total", provider="quickbooks") == 18
    assert _one(samples, "nudge_provider_calls_total", provider="xero") == 8
    assert _one(samples, "nudge_provider_calls_total", provider="other") == 4
    assert _one(samples, "nudge_rate_limit_waits_total", provider="quickbooks") == 3
    assert _one(samples, "nudge_rate_limit_waits_total", provider="xero") == 3
    assert _one(samples, "nudge_rate_limit_wait_seconds_total", provider="quickbooks") == pytest.approx(3.5)
    assert _one(samples, "nudge_rate_limit_wait_seconds_total", provider="xero") == pytest.approx(61.25)

    assert _one(samples, "nudge_actions", state="planned") == 4
    assert _one(samples, "nudge_actions", state="done") == 2
    assert _one(samples, "nudge_actions", state="awaiting_approval") == 1
    assert _one(samples, "nudge_actions", state="uncertain") == 1
    assert _one(samples, "nudge_actions", state="failed") == 1
    assert _one(samples, "nudge_actions", state="running") == 0  # every state is listed, 0 when none
    assert _one(samples, "nudge_outbox_lag_seconds") == 30 * 60

    assert _one(samples, "nudge_webhook_deliveries", provider="quickbooks", outcome="accepted") == 2
    assert _one(samples, "nudge_webhook_deliveries", provider="quickbooks", outcome="failed") == 1
    assert _one(samples, "nudge_webhook_deliveries", provider="xero", outcome="accepted") == 1
    assert _one(samples, "nudge_webhook_deliveries", provider="xero", outcome="failed") == 0
    newest = _one(samples, "nudge_webhook_last_received_timestamp_seconds", provider="quickbooks")
    assert newest == (NOW - timedelta(minutes=2)).timestamp()

    labels = {value for _, pairs in samples for _, value in pairs}
    bounded = {"quickbooks", "xero", "other", "ok", "failed", "accepted"} | {state.value for state in ActionState}
    assert labels <= bounded
    assert not any("Client" in value or "tenant" in value or "Tenant" in value for value in labels)


def test_an_empty_database_gives_zeros_for_every_known_series(store: Store) -> None:
    samples = _scrape(_app(store))
    assert _one(samples, "nudge_syncs_total", provider="quickbooks", outcome="ok") == 0
    assert _one(samples, "nudge_provider_calls_total", provider="xero") == 0
    assert _one(samples, "nudge_rate_limit_waits_total", provider="xero") == 0
    assert _one(samples, "nudge_actions", state="planned") == 0
    assert _one(samples, "nudge_outbox_lag_seconds") == 0
    assert _one(samples, "nudge_webhook_deliveries", provider="quickbooks", outcome="accepted") == 0
    assert not [key for key in samples if key[0] == "nudge_webhook_last_received_timestamp_seconds"]


def test_a_request_without_the_token_gets_401_and_learns_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(store)
    client = _app(store).test_client()
    with caplog.at_level(logging.DEBUG):
        answers = [
            client.get("/metrics"),
            client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789abcdef"}),
            client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
            client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            client.get("/metrics", headers={"Authorization": TOKEN}),
            client.get(f"/metrics?token={TOKEN}"),
        ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "nudge_" not in answer.text
        assert TOKEN not in answer.text
    assert TOKEN not in caplog.text
    ok = client.get("/metrics", headers={"Authorization": f"bearer  {TOKEN}"})  # the scheme is case-insensitive
    assert ok.status_code == 200
    assert "nudge_actions" in ok.text


def test_without_a_configured_token_the_endpoint_does_not_exist(store: Store) -> None:
    client = _app(store, token="").test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_the_token_is_a_registered_secret(store: Store) -> None:
    _app(store, token="metrics-token-only-this-test-uses-42")
    assert "metrics-token-only-this-test-uses-42" not in redaction.redact("token metrics-token-only-this-test-uses-42")
    assert "metrics-token-only-this-test-uses-42" not in repr(_settings(store, "metrics-token-only-this-test-uses-42"))


def test_each_app_has_its_own_registry_and_none_uses_the_global_one(store: Store) -> None:
    _seed(store)
    first, second = _app(store), _app(store)  # the default registry would refuse the second (duplicate series)
    assert _scrape(first) == _scrape(second)
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("nudge_")]


def test_a_database_that_does_not_answer_gives_503_without_details(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+psycopg://nudge:pw-hunter2-secret@127.0.0.1:{free_port()}/nudge"
    settings = replace(settings_for_tests(url), metrics=MetricsSettings(token=TOKEN))
    with caplog.at_level(logging.WARNING):
        answer = create_app(settings).test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 503
    assert answer.text == "database unreachable\n"
    assert "metrics: database unreachable" in caplog.text
    assert "pw-hunter2-secret" not in caplog.text
