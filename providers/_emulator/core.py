"""Clock, call log, fault plan and rate limits shared by the provider emulators (thread-safe)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


class EmulatorClock:
    """The emulator's notion of now: real time shifted by an offset, or frozen; moved by the admin API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        """Current emulated instant, aware UTC."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime, *, frozen: bool = False) -> None:
        """Jump to `moment` (aware); frozen clocks stay there until moved again."""
        if moment.tzinfo is None:
            raise ValueError("emulator clock needs an aware datetime")
        with self._lock:
            if frozen:
                self._frozen = moment.astimezone(UTC)
            else:
                self._frozen = None
                self._offset = moment.astimezone(UTC) - datetime.now(UTC)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (or back) by `delta`; returns the new now."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
                return self._frozen
            self._offset += delta
            return datetime.now(UTC) + self._offset

    def describe(self) -> dict[str, Any]:
        """Clock state for the admin API."""
        return {"now": self.now().isoformat(), "frozen": self._frozen is not None}


@dataclass
class Fault:
    """One injected fault: matches calls by method and path substring, fires `times` times.

    kind: "status" (answer `status` with `body`, plus any `headers`, e.g. {"Retry-After": "1"} on a
    429), "delay" (sleep `seconds` then serve normally), "delay_after" (serve the request — any write
    is carried out and remembered for idempotent replay — then sleep `seconds` before the answer
    leaves: the window in which a client dies after the provider acted but before it heard back),
    "malformed" (truncated JSON), "html" (an HTML error page with `status`), "revoke" (the provider
    treats the tenant's grant as revoked), "disconnect" (close the socket without answering),
    "drop_after" (serve the request — any write is carried out and remembered for idempotent replay —
    then close the socket without answering: the provider committed, the client saw the connection drop).
    A fault fires on every `every`-th matching call, `times` times (then it is removed).
    """

    kind: str
    path: str = ""
    method: str = ""
    status: int = 500
    body: str = ""
    seconds: float = 0.0
    times: int = 1
    every: int = 1  # fire on every Nth matching call (probabilistic-free "10% of calls" = every=10)
    headers: dict[str, str] = field(default_factory=dict)  # added to "status" answers
    seen: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method.upper() == method.upper()) and self.path in path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        allowed = {"kind", "path", "method", "status", "body", "seconds", "times", "every", "headers"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if data.get("kind") not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {data.get('kind')!r}")
        headers = data.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("fault headers must map names to strings")
        return cls(**data)

    def hold_answer(self) -> None:
        """Called once the request has been carried out, before its answer is sent: `delay_after` waits,
        `drop_after` closes the connection so the answer never leaves."""
        if self.kind == "delay_after" and self.seconds > 0:
            time.sleep(self.seconds)
        elif self.kind == "drop_after":
            _drop_connection()


FAULT_KINDS = frozenset({"status", "delay", "delay_after", "drop_after", "malformed", "html", "revoke", "disconnect"})


def _drop_connection() -> None:
    """Shut the socket of the request being served (werkzeug's dev server) down in both directions."""
    from flask import has_request_context, request

    sock = request.environ.get("werkzeug.socket") if has_request_context() else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator answered."""

    at: str
    method: str
    path: str
    query: str
    tenant: str
    status: int
    category: str  # "data", "oauth", "admin", "other"
    request_id: str = ""


@dataclass
class RateLimits:
    """Per-tenant limits; 0 disables a limit."""

    per_minute: int = 0
    concurrent: int = 0
    per_day: int = 0
    app_per_minute: int = 0


@dataclass(frozen=True)
class LimitDecision:
    """Outcome of admitting one call: allowed, or which limit refused it and for how long."""

    allowed: bool
    problem: str = ""  # "minute", "concurrent", "day", "appminute"
    retry_after: int = 0
    remaining_minute: int = -1
    remaining_day: int = -1
    remaining_app_minute: int = -1


@dataclass
class _TenantUsage:
    minute: deque[float] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class EmulatorCore:
    """State every emulator shares; provider apps call `admit`/`release` around each data call."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.clock = EmulatorClock()
        self.limits = limits or RateLimits()
        self.latency_s = 0.0
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._calls: list[CallRecord] = []
        self._usage: dict[str, _TenantUsage] = {}
        self._app_minute: deque[float] = deque()

    # -- faults -----------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this call (consuming one of its `times`), or None."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                fault.seen += 1
                if fault.seen % max(fault.every, 1):
                    continue
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    # -- call log -----------------------------------------------------------------------------
    def record(self, record: CallRecord) -> None:
        with self._lock:
            self._calls.append(record)

    def calls(self, category: str | None = None, tenant: str | None = None) -> list[CallRecord]:
        with self._lock:
            return [
                c
                for c in self._calls
                if (category is None or c.category == category) and (tenant is None or c.tenant == tenant)
            ]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- limits (measured on the real monotonic clock: limits are about wall time) --------------
    def admit(self, tenant: str) -> LimitDecision:
        """Count one call against `tenant`'s limits; a refused call is not counted."""
        now = time.monotonic()
        limits = self.limits
        with self._lock:
            usage = self._usage.setdefault(tenant, _TenantUsage())
            for window, span in ((usage.minute, 60.0), (usage.day, 86400.0), (self._app_minute, 60.0)):
                while window and now - window[0] >= span:
                    window.popleft()
            if limits.concurrent and usage.in_flight >= limits.concurrent:
                return LimitDecision(False, "concurrent", 1)
            if limits.per_day and len(usage.day) >= limits.per_day:
                return LimitDecision(False, "day", int(86400 - (now - usage.day[0])) + 1, remaining_day=0)
            if limits.per_minute and len(usage.minute) >= limits.per_minute:
                return LimitDecision(False, "minute", int(60 - (now - usage.minute[0])) + 1, 0)
            if limits.app_per_minute and len(self._app_minute) >= limits.app_per_minute:
                wait = int(60 - (now - self._app_minute[0])) + 1
                return LimitDecision(False, "appminute", wait, remaining_app_minute=0)
            usage.minute.append(now)
            usage.day.append(now)
            self._app_minute.append(now)
            usage.in_flight += 1
            return LimitDecision(
                True,
                remaining_minute=(limits.per_minute - len(usage.minute)) if limits.per_minute else -1,
                remaining_day=(limits.per_day - len(usage.day)) if limits.per_day else -1,
                remaining_app_minute=(limits.app_per_minute - len(self._app_minute)) if limits.app_per_minute else -1,
            )

    def release(self, tenant: str) -> None:
        """End of an admitted call (frees a concurrency slot)."""
        with self._lock:
            usage = self._usage.get(tenant)
            if usage and usage.in_flight > 0:
                usage.in_flight -= 1

    def reset_usage(self) -> None:
        with self._lock:
            self._usage.clear()
            self._app_minute.clear()

    def pause(self) -> None:
        """Sleep the configured added latency (simulates a distant API)."""
        if self.latency_s > 0:
            time.sleep(self.latency_s)
