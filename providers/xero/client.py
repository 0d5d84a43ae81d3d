"""xero-python wired for Nudge: base URLs, token routing, limits, retries and error translation.

Facts doc §3.3: `AccountingApi(api_client, base_url=...)` / `IdentityApi(..., base_url=...)` point the SDK
at the emulator; the SDK speaks urllib3 directly (so tests use a real loopback server, not `responses`).
Reads use `_preload_content=False` so the raw JSON (PascalCase, the shape `mapping` reads) is parsed
once with exact decimals, instead of through the SDK's model objects.
Limits (docs/provider-api-facts.md §2.4): 5 concurrent, 60/min, 5000/day per tenant; the limiter waits when
`X-MinLimit-Remaining` reaches 0 instead of provoking a 429, honours `Retry-After` /
`X-Rate-Limit-Problem` when one happens, and gives up with RateLimited(limit="day") on the daily one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import urllib3
from xero_python.accounting import AccountingApi
from xero_python.exceptions import HTTPStatusException, OAuth2Error
from xero_python.identity import IdentityApi

from connector.errors import AuthError, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSource
from providers.xero.oauth import NudgeOAuth2Token, api_client, connections_base

PROVIDER_KEY = "xero"
API_BASE = "https://api.xero.com/api.xro/2.0"
TIMEOUT = (5, 60)  # (connect, read) seconds, as the SDK's `_request_timeout` accepts them
MAX_LIMIT_RETRIES = 4
MAX_TRANSIENT_RETRIES = 3


class NotFound(ProviderError):
    """Xero answered 404 for the requested record (adapters decide what that means)."""


def seconds_to_next_utc_day(now: datetime) -> float:
    """Seconds from `now` to the next UTC midnight (when a daily limit is assumed to reset)."""
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max((tomorrow - now).total_seconds(), 1.0)


class RateLimiter:
    """Per-tenant limiter shared by every client of that tenant in this process."""

    def __init__(
        self,
        *,
        per_minute: int = 60,
        concurrent: int = 5,
        max_wait: float = 90.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.per_minute = per_minute
        self.max_wait = max_wait
        self._sleep = sleep
        self._monotonic = monotonic
        self._wall = wall
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self.minute_remaining: int | None = None
        self.day_remaining: int | None = None
        self.app_remaining: int | None = None
        self.waited = 0.0

    def before_call(self) -> None:
        """Wait (or refuse) so the next call fits the limits the last answer reported."""
        with self._lock:
            now = self._monotonic()
            while self._recent and now - self._recent[0] >= 60:
                self._recent.popleft()
            if self.day_remaining is not None and self.day_remaining <= 0:
                raise RateLimited(
                    "Xero's daily call limit for this organisation is used up; syncing resumes tomorrow.",
                    provider=PROVIDER_KEY,
                    retry_after=seconds_to_next_utc_day(self._wall()),
                    limit="day",
                )
            wait = 0.0
            exhausted = (self.minute_remaining is not None and self.minute_remaining <= 0) or (
                self.app_remaining is not None and self.app_remaining <= 0
            )
            if exhausted or (self.per_minute and len(self._recent) >= self.per_minute):
                wait = (self._recent[0] + 60 - now) if self._recent else 60.0
            if wait > self.max_wait:
                raise RateLimited(
                    "Xero's per-minute limit is reached.", provider=PROVIDER_KEY, retry_after=wait, limit="minute"
                )
        if wait > 0:
            self.waited += wait
            self._sleep(wait)
            with self._lock:
                self.minute_remaining = None
                self.app_remaining = None
        with self._lock:
            self._recent.append(self._monotonic())

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the tenant's concurrent-call slots."""
        with self._slots:
            yield

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Remember the remaining-calls headers of an answer."""
        if not headers:
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            for header, attr in (
                ("x-minlimit-remaining", "minute_remaining"),
                ("x-daylimit-remaining", "day_remaining"),
                ("x-appminlimit-remaining", "app_remaining"),
            ):
                if header in lowered:
                    with suppress(ValueError):
                        setattr(self, attr, int(lowered[header]))

    def on_429(self, headers: Mapping[str, str] | None) -> float:
        """Seconds to wait before retrying a 429, or RateLimited when waiting here is pointless."""
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        problem = lowered.get("x-rate-limit-problem", "").strip().lower()
        try:
            retry_after = float(lowered.get("retry-after", ""))
        except ValueError:
            retry_after = 0.0
        self.observe(headers)
        if problem == "day":
            with self._lock:
                self.day_remaining = 0
            raise RateLimited(
                "Xero's daily call limit for this organisation is used up; syncing resumes tomorrow.",
                provider=PROVIDER_KEY,
                retry_after=retry_after or seconds_to_next_utc_day(self._wall()),
                limit="day",
            )
        if problem == "concurrent":
            return retry_after or 1.0
        wait = retry_after or 60.0
        if wait > self.max_wait:
            raise RateLimited(
                f"Xero's {problem or 'minute'} limit is reached.",
                provider=PROVIDER_KEY,
                retry_after=wait,
                limit=problem or "minute",
            )
        return wait

    def sleep(self, seconds: float, *, window_passed: bool = False) -> None:
        """Wait `seconds`; `window_passed`: the wait was Xero's Retry-After, so old counts are stale."""
        self.waited += seconds
        self._sleep(seconds)
        if window_passed:
            with self._lock:
                self.minute_remaining = None
                self.app_remaining = None


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(tenant_id: str, per_minute: int = 60) -> RateLimiter:
    """The process-wide limiter of one tenant (created on first use; `per_minute` from the settings)."""
    with _limiters_lock:
        limiter = _limiters.get(tenant_id)
        if limiter is None:
            limiter = _limiters[tenant_id] = RateLimiter(per_minute=per_minute)
        return limiter


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (lower-case keys), raw body and, for JSON, the parsed payload."""

    status: int
    headers: dict[str, str]
    data: bytes
    payload: Any = None

    def json(self) -> Any:
        """The body parsed with exact decimals (Transient when it is not JSON)."""
        if self.payload is not None:
            return self.payload
        try:
            return json.loads(self.data, parse_float=Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Transient("Xero answered with a malformed body.", provider=PROVIDER_KEY, status=self.status) from None


def _validation_messages(body: bytes | None) -> str:
    try:
        payload = json.loads(body or b"")
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return ""
    messages: list[str] = []
    if isinstance(payload, dict):
        for element in payload.get("Elements") or []:
            for error in (element or {}).get("ValidationErrors") or []:
                if error.get("Message"):
                    messages.append(str(error["Message"]))
        if not messages and payload.get("Message"):
            messages.append(str(payload["Message"]))
        if not messages and payload.get("Detail"):
            messages.append(str(payload["Detail"]))
    return "; ".join(messages)[:500]


class XeroClient:
    """One tenant's Accounting API through xero-python, with Nudge's policies around every call."""

    def __init__(
        self,
        tenant_id: str,
        token_source: TokenSource,
        settings: ProviderSettings,
        *,
        limiter: RateLimiter | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.tenant_id = tenant_id
        self._source = token_source
        self._sdk = api_client(token_source, settings)
        self._token: NudgeOAuth2Token = self._sdk.configuration.oauth2_token
        self.accounting = AccountingApi(self._sdk, base_url=settings.api_base.rstrip("/") or API_BASE)
        self.identity = IdentityApi(self._sdk, base_url=connections_base(settings))
        self.limiter = limiter or limiter_for(tenant_id, int(settings.options.get("rate_per_minute", 60)))
        self._jitter = jitter
        self._calls = 0
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"XeroClient(tenant={self.tenant_id!r})"

    @property
    def calls(self) -> int:
        """API calls made by this client (every attempt counts)."""
        return self._calls

    def call(self, method: str, *args: Any, retry_writes: bool = False, **kwargs: Any) -> Answer:
        """Run `AccountingApi.<method>(tenant, *args, **kwargs)`; translate every failure to connector.errors.

        GETs (and writes carrying an Idempotency-Key, `retry_writes=True`) are retried on 5xx and
        network faults with jittered backoff; every call is retried once after a 401 with a refreshed token.
        """
        function = getattr(self.accounting, method)
        limit_retries = transient_retries = 0
        auth_retried = False
        while True:
            self.limiter.before_call()
            with self._calls_lock:
                self._calls += 1
            try:
                with self.limiter.slot():
                    response = function(
                        self.tenant_id, *args, _preload_content=False, _request_timeout=TIMEOUT, **kwargs
                    )
            except HTTPStatusException as exc:
                status = int(exc.status or 0)
                headers = dict(exc.headers or {})
                self.limiter.observe(headers)
                if status == 401 and not auth_retried:
                    auth_retried = True
                    self._source.refreshed(self._token.last_used())
                    continue
                if status == 401:
                    raise AuthError(
                        "Xero no longer accepts this connection's token; reconnect the organisation.",
                        provider=PROVIDER_KEY,
                        status=401,
                    ) from None
                if status == 403:
                    raise AuthError(
                        "Xero refused access to this organisation (disconnected or missing permission); reconnect it.",
                        provider=PROVIDER_KEY,
                        status=403,
                    ) from None
                if status == 429:
                    wait = self.limiter.on_429(headers)
                    limit_retries += 1
                    if limit_retries > MAX_LIMIT_RETRIES:
                        raise RateLimited(
                            "Xero kept rate-limiting this organisation.", provider=PROVIDER_KEY, retry_after=wait
                        ) from None
                    self.limiter.sleep(wait, window_passed=True)
                    continue
                if status == 404:
                    raise NotFound("Xero has no such record.", provider=PROVIDER_KEY, status=404) from None
                if status >= 500 or status == 0:
                    transient_retries += 1
                    if (method.startswith("get") or retry_writes) and transient_retries < MAX_TRANSIENT_RETRIES:
                        self.limiter.sleep(self._backoff(transient_retries))
                        continue
                    raise Transient(f"Xero failed (HTTP {status}).", provider=PROVIDER_KEY, status=status) from None
                detail = _validation_messages(exc.body)
                raise Rejected(
                    f"Xero rejected the request (HTTP {status}){': ' + detail if detail else ''}.",
                    provider=PROVIDER_KEY,
                    status=status,
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                transient_retries += 1
                if (method.startswith("get") or retry_writes) and transient_retries < MAX_TRANSIENT_RETRIES:
                    self.limiter.sleep(self._backoff(transient_retries))
                    continue
                raise Transient(f"Xero could not be reached ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
            except OAuth2Error:
                raise AuthError(
                    "The Xero token could not be used; reconnect the organisation.", provider=PROVIDER_KEY
                ) from None
            headers = {k.lower(): v for k, v in response.headers.items()}
            self.limiter.observe(headers)
            data = bytes(response.data or b"")
            payload = None
            if "json" in headers.get("content-type", "") and data:
                try:
                    payload = json.loads(data, parse_float=Decimal)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    transient_retries += 1
                    if (method.startswith("get") or retry_writes) and transient_retries < MAX_TRANSIENT_RETRIES:
                        self.limiter.sleep(self._backoff(transient_retries))
                        continue
                    raise Transient("Xero answered with a malformed body.", provider=PROVIDER_KEY) from None
            return Answer(int(response.status), headers, data, payload)

    def _backoff(self, attempt: int) -> float:
        return min(0.25 * (2 ** (attempt - 1)), 4.0) * (0.5 + self._jitter())
