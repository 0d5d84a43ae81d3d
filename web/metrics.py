"""GET /metrics: Nudge's operational figures in the Prometheus text format, for a bearer token from the config.

`metrics.token` (default `$NUDGE_METRICS_TOKEN`) unset: the endpoint does not exist (404). Set: the request must
carry `Authorization: Bearer <token>` (compared in constant time), else 401. The figures are computed from the
database at scrape time by one collector (connector.storage.figures: one aggregate query per family), so every web
process answers the same whatever worker did the work. Each app has its own CollectorRegistry (never the
process-wide default): two apps in one process (the tests) never collide. Labels are providers, outcomes and
states only — never an organization, a client or a tenant — each mapped onto a fixed set ("other" for anything
unexpected), so the number of series stays bounded.
"""

from __future__ import annotations

import hmac
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from flask import Blueprint, Flask, Response, abort, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from connector.domain.model import ActionState
from connector.errors import StorageError
from connector.registry import available_provider_names
from connector.storage import Store
from connector.storage.figures import (
    SyncFigures,
    WebhookFigures,
    actions_by_state,
    oldest_due_planned,
    sync_figures,
    webhook_figures,
)

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

REGISTRY_KEY = "nudge.metrics.registry"
TOKEN_KEY = "nudge.metrics.token"
OTHER = "other"
SYNC_OUTCOMES = ("ok", "failed")
WEBHOOK_OUTCOMES = ("accepted", "failed")
ACTION_STATES = tuple(state.value for state in ActionState)
Family = CounterMetricFamily | GaugeMetricFamily


class DatabaseCollector(Collector):
    """Every Nudge metric family, read from the database at each scrape."""

    def __init__(self, store: Store, now: Callable[[], datetime], providers: Sequence[str]) -> None:
        self.store = store
        self.now = now
        self.providers = tuple(sorted(providers))

    def describe(self) -> Iterable[Metric]:
        """The families without samples: registering the collector reads nothing from the database."""
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        """The families with their samples (StorageError when the database does not answer)."""
        with self.store.unit_of_work() as uow:
            syncs = sync_figures(uow)
            states = actions_by_state(uow)
            now = self.now()
            oldest = oldest_due_planned(uow, now)
            webhooks = webhook_figures(uow)
        families = self._families()
        self._add_syncs(families, syncs)
        for state, count in _bounded_counts(states.items(), ACTION_STATES).items():
            families["actions"].add_metric([state], count)
        families["lag"].add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        self._add_webhooks(families, webhooks)
        return list(families.values())

    def _families(self) -> dict[str, Family]:
        """Every family, empty, by the key `collect` fills it under."""
        return {
            "syncs": CounterMetricFamily(
                "nudge_syncs", "Finished syncs of connections, by provider and outcome.", labels=["provider", "outcome"]
            ),
            "calls": CounterMetricFamily(
                "nudge_provider_calls", "API calls made to the provider by finished syncs.", labels=["provider"]
            ),
            "waits": CounterMetricFamily(
                "nudge_rate_limit_waits",
                "Times a worker waited for a provider's rate limit (the turns of finished syncs).",
                labels=["provider"],
            ),
            "wait_seconds": CounterMetricFamily(
                "nudge_rate_limit_wait_seconds",
                "Seconds workers spent waiting for a provider's rate limit (the turns of finished syncs).",
                labels=["provider"],
            ),
            "actions": GaugeMetricFamily("nudge_actions", "Outbox actions by state.", labels=["state"]),
            "lag": GaugeMetricFamily(
                "nudge_outbox_lag_seconds",
                "Seconds since the oldest due action still planned (active connections) fell due; 0 when none.",
            ),
            "webhooks": GaugeMetricFamily(
                "nudge_webhook_deliveries",
                "Webhook deliveries kept (scheduler.webhook_retention_days), by provider and outcome.",
                labels=["provider", "outcome"],
            ),
            "webhook_last": GaugeMetricFamily(
                "nudge_webhook_last_received_timestamp_seconds",
                "Unix time of the newest webhook delivery kept, by provider.",
                labels=["provider"],
            ),
        }

    def _provider(self, provider: str) -> str:
        return provider if provider in self.providers else OTHER

    def _add_syncs(self, families: dict[str, Family], figures: Iterable[SyncFigures]) -> None:
        syncs: dict[tuple[str, str], int] = {(p, o): 0 for p in self.providers for o in SYNC_OUTCOMES}
        calls: dict[str, int] = dict.fromkeys(self.providers, 0)
        waits: dict[str, int] = dict.fromkeys(self.providers, 0)
        seconds: dict[str, float] = dict.fromkeys(self.providers, 0.0)
        for figure in figures:
            provider = self._provider(figure.provider)
            outcome = figure.outcome if figure.outcome in SYNC_OUTCOMES else OTHER
            syncs[(provider, outcome)] = syncs.get((provider, outcome), 0) + figure.syncs
            calls[provider] = calls.get(provider, 0) + figure.calls
            waits[provider] = waits.get(provider, 0) + figure.limit_waits
            seconds[provider] = seconds.get(provider, 0.0) + figure.limit_wait_seconds
        for (provider, outcome), count in sorted(syncs.items()):
            families["syncs"].add_metric([provider, outcome], count)
        for provider in sorted(calls):
            families["calls"].add_metric([provider], calls[provider])
            families["waits"].add_metric([provider], waits[provider])
            families["wait_seconds"].add_metric([provider], seconds[provider])

    def _add_webhooks(self, families: dict[str, Family], figures: Iterable[WebhookFigures]) -> None:
        deliveries: dict[tuple[str, str], int] = {(p, o): 0 for p in self.providers for o in WEBHOOK_OUTCOMES}
        newest: dict[str, datetime] = {}
        for figure in figures:
            provider = self._provider(figure.provider)
            outcome = figure.outcome if figure.outcome in WEBHOOK_OUTCOMES else OTHER
            key = (provider, outcome)
            deliveries[key] = deliveries.get(key, 0) + figure.deliveries
            last = figure.last_received_at
            if last is not None and (provider not in newest or last > newest[provider]):
                newest[provider] = last
        for (provider, outcome), count in sorted(deliveries.items()):
            families["webhooks"].add_metric([provider, outcome], count)
        for provider, last in sorted(newest.items()):
            families["webhook_last"].add_metric([provider], last.timestamp())


def _bounded_counts(counts: Iterable[tuple[str, int]], known: Sequence[str]) -> dict[str, int]:
    """`counts` with every label outside `known` folded into "other" (each known label present, 0 if absent)."""
    bounded: dict[str, int] = defaultdict(int, dict.fromkeys(known, 0))
    for label, count in counts:
        bounded[label if label in known else OTHER] += count
    return dict(bounded)


def init_app(app: Flask, token: str, store: Store, now: Callable[[], datetime]) -> None:
    """Give `app` its own metrics registry over `store` and the /metrics route guarded by `token`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, now, available_provider_names()))
    app.extensions[REGISTRY_KEY] = registry
    app.extensions[TOKEN_KEY] = token
    app.register_blueprint(bp)


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    token: str = current_app.extensions[TOKEN_KEY]
    if not token:
        abort(404)  # not configured: the endpoint does not exist
    if not _authorized(token):
        return Response(
            "a bearer token is required\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    registry: CollectorRegistry = current_app.extensions[REGISTRY_KEY]
    try:
        body = generate_latest(registry)
    except StorageError as exc:
        # The error text may name the database URL: log only its kind, return nothing of it.
        log.warning("metrics: database unreachable (%s)", type(exc).__name__)
        return Response("database unreachable\n", status=503, mimetype="text/plain")
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
