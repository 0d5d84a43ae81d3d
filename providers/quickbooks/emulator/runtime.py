"""The state one running QuickBooks emulator holds, and how its views reach it (`current()`)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from typing import Any

from flask import Response, current_app

from providers._emulator import EmulatorCore, RateLimits
from providers.quickbooks.emulator.auth import OAuthSettings, OAuthState
from providers.quickbooks.emulator.notify import Notifier, WebhookConfig
from providers.quickbooks.emulator.store import QboFault, Store

DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
EXTENSION = "qbo_emulator"  # the app.extensions key of the app's Emulator


class Usage:
    """Per-realm load as clients send it: the most requests in flight at once and the most in any minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._arrivals: dict[str, deque[float]] = {}
        self._peak_minute: dict[str, int] = {}

    def arrive(self, realm: str) -> None:
        """One request of `realm` arrived (counted before any limit answers it)."""
        now = time.monotonic()
        with self._lock:
            self._in_flight[realm] = self._in_flight.get(realm, 0) + 1
            self._peak[realm] = max(self._peak.get(realm, 0), self._in_flight[realm])
            window = self._arrivals.setdefault(realm, deque())
            window.append(now)
            while window and now - window[0] >= 60.0:
                window.popleft()
            self._peak_minute[realm] = max(self._peak_minute.get(realm, 0), len(window))

    def leave(self, realm: str) -> None:
        """That request was answered."""
        with self._lock:
            self._in_flight[realm] = max(0, self._in_flight.get(realm, 0) - 1)

    def describe(self, realm: str) -> dict[str, int]:
        """{peak_concurrent, peak_per_minute, in_flight} of one realm."""
        with self._lock:
            return {
                "peak_concurrent": self._peak.get(realm, 0),
                "peak_per_minute": self._peak_minute.get(realm, 0),
                "in_flight": self._in_flight.get(realm, 0),
            }

    def reset(self) -> None:
        """Forget every realm's peaks."""
        with self._lock:
            self._peak.clear()
            self._arrivals.clear()
            self._peak_minute.clear()


# json.dumps(body, separators=(",", ":")) without the cycle check (answers are trees), made once: a page of
# 1000 invoices is some 20,000 containers.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class Emulator:
    """Everything one running QuickBooks emulator holds: core (clock, faults, calls, limits), data, OAuth."""

    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        limits: RateLimits | None = None,
        oauth: OAuthSettings | None = None,
        webhook: WebhookConfig | None = None,
    ) -> None:
        # QBO limits: 500 requests/min per realm, 10 concurrent (docs/provider-api-facts.md §1.6).
        self.core = EmulatorCore(limits or RateLimits(per_minute=500, concurrent=10))
        self.store = Store(self.core.clock)
        self.usage = Usage()
        self.oauth = OAuthState(self.core.clock, oauth or OAuthSettings())
        self.oauth.apps.update(clients or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self.notifier = Notifier(webhook or WebhookConfig())
        self.store.listeners.append(self.notifier)
        self.base_url = ""  # set once serving; used in discovery and links

    def json(self, body: Any, status: int = 200) -> Response:
        response = Response(_ENCODER.encode(body), status=status, mimetype="application/json")
        response.headers["intuit_tid"] = uuid.uuid4().hex[:24]
        return response


def current() -> Emulator:
    """The Emulator of the app handling the current request."""
    emulator: Emulator = current_app.extensions[EXTENSION]
    return emulator


def fault_response(emu: Emulator, fault: QboFault, realm: str = "") -> Response:
    """A QuickBooks Fault body for `fault`, timed in the realm's zone."""
    company = emu.store.companies.get(realm)
    return emu.json(fault.body(emu.store.response_time(company)), fault.status)
