"""One tenant's call budget: a sliding one-minute window of calls plus a cap on concurrent calls.

Providers limit calls per tenant (QuickBooks 500/min and 10 at once per realm, Xero 60/min and 5 at
once per organisation), so every client of one tenant in a process must share one limiter:
`TenantLimiters` hands out that one instance per key. Providers with richer signals (Xero's
remaining-calls headers) extend `TenantRateLimiter` through `extra_wait` and `after_wait`.

Every wait for a tenant's limits is counted (`limit_waits()`): the sync records the counts of its turn in
`sync_runs`, where GET /metrics (another process) reads how often and how long workers waited.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

WINDOW_SECONDS = 60.0
MIN_SLEEP_SECONDS = 0.01  # never spin on a zero or negative wait


@dataclass(frozen=True, slots=True)
class LimitWaits:
    """How many times calls waited for a tenant's limits and for how many seconds in all."""

    count: int = 0
    seconds: float = 0.0

    def since(self, earlier: LimitWaits) -> LimitWaits:
        """The waits counted after `earlier` (a reading of the same limiter)."""
        return LimitWaits(max(0, self.count - earlier.count), max(0.0, self.seconds - earlier.seconds))


@runtime_checkable
class CountsLimitWaits(Protocol):
    """An adapter that can tell how often its calls waited for the tenant's limits (the limiter's counters)."""

    def limit_waits(self) -> LimitWaits:
        """The counters now; subtract an earlier reading (`LimitWaits.since`) for the waits in between."""
        ...


def read_limit_waits(adapter: object) -> LimitWaits:
    """The limit-wait counters of `adapter` (zero for one that does not count them, e.g. a test fake)."""
    return adapter.limit_waits() if isinstance(adapter, CountsLimitWaits) else LimitWaits()


class TenantRateLimiter:
    """At most `per_minute` calls in any sliding minute (0: no window) and `concurrent` at once."""

    def __init__(
        self,
        *,
        per_minute: int,
        concurrent: int,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.concurrent = max(1, concurrent)
        self.waited = 0.0  # seconds spent waiting for the budget (reported by benches, tests and sync_runs)
        self.waits = 0  # how many such waits
        self._counts_lock = threading.Lock()
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.concurrent)
        self._recent: deque[float] = deque()
        self._in_flight = 0
        self.peak_in_flight = 0  # the most calls this tenant had running at once (benches and tests read it)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(per_minute={self.per_minute}, concurrent={self.concurrent})"

    def admit(self) -> None:
        """Block until the window has room for one more call, then count that call."""
        # After a sleep of `wait` seconds at least that much time has passed, whatever the clock says:
        # an injected sleep that returns at once (tests) must not make this loop spin.
        earliest = float("-inf")
        while True:
            with self._lock:
                now = max(self._monotonic(), earliest)
                while self._recent and now - self._recent[0] >= WINDOW_SECONDS:
                    self._recent.popleft()
                wait = max(self.window_wait(now), self.extra_wait(now))
                if wait <= 0:
                    self._recent.append(now)
                    return
            self.pause(max(wait, MIN_SLEEP_SECONDS))
            self.after_wait()
            earliest = now + wait

    def window_wait(self, now: float) -> float:
        """Seconds until the sliding minute has room for one more call (0: it has room now)."""
        if not self.per_minute or len(self._recent) < self.per_minute:
            return 0.0
        return self._recent[0] + WINDOW_SECONDS - now

    def extra_wait(self, now: float) -> float:
        """Seconds a subclass wants to wait beyond the window (called under the lock; may raise)."""
        return 0.0

    def after_wait(self) -> None:
        """Called after every wait for the budget (a subclass forgets what the wait made stale)."""

    def oldest_call_age(self, now: float) -> float | None:
        """Seconds since the oldest call still in the window (None when the window is empty)."""
        return now - self._recent[0] if self._recent else None

    def pause(self, seconds: float, *, limit: bool = True) -> None:
        """Sleep `seconds` through the injected sleep; a wait for the limits (`limit`) is counted."""
        if limit:
            self.record_wait(seconds)
        self._sleep(seconds)

    def record_wait(self, seconds: float) -> None:
        """Count one wait of `seconds` for the tenant's limits (the caller sleeps it through its own sleep)."""
        with self._counts_lock:
            self.waits += 1
            self.waited += seconds

    def limit_waits(self) -> LimitWaits:
        """How often and how long calls of this tenant waited for its limits since the limiter was made."""
        with self._counts_lock:
            return LimitWaits(self.waits, self.waited)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the tenant's concurrent-call slots for the duration of one call."""
        with self._slots:
            with self._lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            try:
                yield
            finally:
                with self._lock:
                    self._in_flight -= 1

    @contextmanager
    def call(self) -> Iterator[None]:
        """Admit one call through the window, then hold a concurrent slot while it runs."""
        self.admit()
        with self.slot():
            yield


LimiterT = TypeVar("LimiterT", bound=TenantRateLimiter)


class TenantLimiters(Generic[LimiterT]):
    """The process-wide limiters of one provider, one per tenant key, created on first use."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, LimiterT] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, create: Callable[[], LimiterT]) -> LimiterT:
        """The limiter of `key`, made by `create` the first time that key is asked for."""
        with self._lock:
            limiter = self._by_key.get(key)
            if limiter is None:
                limiter = self._by_key[key] = create()
            return limiter
