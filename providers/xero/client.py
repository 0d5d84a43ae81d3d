"""xero-python wired for Nudge: base URLs, token routing, limits, retries and error translation.

Facts doc §3.3: `AccountingApi(api_client, base_url=...)` / `IdentityApi(..., base_url=...)` point the SDK
at the emulator; the SDK speaks urllib3 directly (so tests use a real loopback server, not `responses`).
Reads use `_preload_content=False` so the raw JSON (PascalCase, the shape `mapping` reads) is parsed
once with exact decimals, instead of through the SDK's model objects.
Limits (docs/provider-api-facts.md §2.4): 5 concurrent, 60/min, 5000/day per tenant; the limiter waits when
`X-MinLimit-Remaining` reaches 0 instead of provoking a 429 and honours `Retry-After` /
`X-Rate-Limit-Problem` when one happens — but a worker thread never sleeps more than `max_wait_s`
(option, default 5 s): a longer wait is raised as RateLimited, whose `retry_after` (seconds) the
scheduler turns into the connection's next run. The daily limit blocks the tenant until its reset
instant (`Retry-After`, else the next UTC midnight) and lifts by itself once that has passed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import urllib3
from xero_python.accounting import AccountingApi
from xero_python.exceptions import HTTPStatusException, OAuth2Error
from xero_python.identity import IdentityApi

from connector.errors import (
    AuthError,
    ConfigError,
    NotFound,
    ProviderDisconnected,
    RateLimited,
    Rejected,
    Transient,
)
from connector.ports import ProviderSettings, TokenSource
from connector.ratelimit.tenant import TenantLimiters, TenantRateLimiter
from providers.xero.constants import (
    API_BASE,
    API_TIMEOUT,
    IDENTITY_TIMEOUT,
    MAX_CONCURRENT,
    MAX_LIMIT_RETRIES,
    MAX_LIMIT_WAIT_S,
    MAX_TRANSIENT_RETRIES,
    PROVIDER_KEY,
    RATE_PER_MINUTE,
)
from providers.xero.oauth import NudgeOAuth2Token, api_client, connections_base

_REMAINING_HEADERS = (
    ("x-minlimit-remaining", "minute_remaining"),
    ("x-daylimit-remaining", "day_remaining"),
    ("x-appminlimit-remaining", "app_remaining"),
)


def seconds_to_next_utc_day(now: datetime) -> float:
    """Seconds from `now` to the next UTC midnight (when a daily limit is assumed to reset)."""
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max((tomorrow - now).total_seconds(), 1.0)


def _day_limit_reached(resumes_at: datetime, now: datetime) -> RateLimited:
    return RateLimited(
        "Xero's daily API limit for this organisation is used up; Nudge resumes it when Xero's day resets.",
        provider=PROVIDER_KEY,
        retry_after=max((resumes_at - now).total_seconds(), 1.0),
        limit="day",
    )


def _seconds(text: str | None) -> float:
    """A `Retry-After` value in seconds (0 when absent, negative or not a number)."""
    try:
        value = float(text or "")
    except ValueError:
        return 0.0
    return value if value > 0 and value != float("inf") else 0.0


class RateLimiter(TenantRateLimiter):
    """The core per-tenant limiter, plus what Xero's answers say about the calls left.

    Waits when `X-MinLimit-Remaining` (or the app-wide minute count) reaches 0 instead of provoking a
    429, but never longer than `max_wait` seconds: a longer wait is handed to the scheduler as
    RateLimited (the worker thread is not held). Once the day is used up (a `day` 429, or
    `X-DayLimit-Remaining: 0`) it refuses without calling Xero until the reset instant — `Retry-After`,
    else the next UTC midnight — and then lifts the block by itself.
    """

    def __init__(
        self,
        *,
        per_minute: int = RATE_PER_MINUTE,
        concurrent: int = MAX_CONCURRENT,
        max_wait: float = MAX_LIMIT_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(per_minute=per_minute, concurrent=concurrent, sleep=sleep, monotonic=monotonic)
        self.max_wait = max_wait
        self._wall = wall
        self._headers_lock = threading.Lock()
        self.minute_remaining: int | None = None
        self.day_remaining: int | None = None
        self.app_remaining: int | None = None
        self.day_resumes_at: datetime | None = None  # while set and in the future, Xero is not called

    def extra_wait(self, now: float) -> float:
        """Refuse while the day is used up; wait out the minute when the headers say none is left."""
        self.check_day()
        with self._headers_lock:
            minute_left, app_left = self.minute_remaining, self.app_remaining
        wait = 0.0
        if (minute_left is not None and minute_left <= 0) or (app_left is not None and app_left <= 0):
            age = self.oldest_call_age(now)
            wait = 60.0 - age if age is not None else 60.0
        wait = max(wait, self.window_wait(now))
        if wait > self.max_wait:
            raise RateLimited(
                "Xero's per-minute limit is reached.", provider=PROVIDER_KEY, retry_after=wait, limit="minute"
            )
        return wait

    def check_day(self) -> None:
        """Raise RateLimited(limit="day") while the daily limit is used up; lift the block once it passed."""
        wall = self._wall()
        with self._headers_lock:
            if self.day_remaining is not None and self.day_remaining <= 0 and self.day_resumes_at is None:
                self.day_resumes_at = wall + timedelta(seconds=seconds_to_next_utc_day(wall))
            resumes_at = self.day_resumes_at
            if resumes_at is not None and wall >= resumes_at:
                self.day_resumes_at = resumes_at = None
                self.day_remaining = None
        if resumes_at is not None:
            raise _day_limit_reached(resumes_at, wall)

    def after_wait(self) -> None:
        """The minute has passed: the remaining-calls counts of the last answer are stale."""
        with self._headers_lock:
            self.minute_remaining = None
            self.app_remaining = None

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Remember the remaining-calls headers of an answer."""
        if not headers:
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._headers_lock:
            for header, attr in _REMAINING_HEADERS:
                if header in lowered:
                    with suppress(ValueError):
                        setattr(self, attr, int(lowered[header]))

    def on_429(self, headers: Mapping[str, str] | None) -> float:
        """Seconds to wait before retrying a 429, or RateLimited when waiting here is pointless."""
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        problem = lowered.get("x-rate-limit-problem", "").strip().lower()
        retry_after = _seconds(lowered.get("retry-after"))
        self.observe(headers)
        if problem == "day":
            wall = self._wall()
            resumes_at = wall + timedelta(seconds=retry_after or seconds_to_next_utc_day(wall))
            with self._headers_lock:
                self.day_remaining = 0
                self.day_resumes_at = resumes_at
            raise _day_limit_reached(resumes_at, wall)
        if problem == "concurrent":
            return min(retry_after or 1.0, self.max_wait)
        wait = retry_after or 60.0
        if wait > self.max_wait:
            raise RateLimited(
                f"Xero's {problem or 'minute'} limit is reached.",
                provider=PROVIDER_KEY,
                retry_after=wait,
                limit=problem or "minute",
            )
        return wait

    def sleep(self, seconds: float, *, window_passed: bool = False, limit: bool = True) -> None:
        """Wait `seconds`; `window_passed`: the wait was Xero's Retry-After, so old counts are stale; `limit`
        False: a back-off after a failure, not a wait for the limits (not counted as one)."""
        self.pause(seconds, limit=limit)
        if window_passed:
            self.after_wait()


_LIMITERS: TenantLimiters[RateLimiter] = TenantLimiters()


def limiter_for(
    tenant_id: str,
    per_minute: int = RATE_PER_MINUTE,
    max_wait: float = MAX_LIMIT_WAIT_S,
    *,
    wall: Callable[[], datetime] | None = None,
) -> RateLimiter:
    """The process-wide limiter of one tenant (made on first use with `per_minute`, `max_wait` and `wall`,
    the clock the daily block is timed on; later calls get that same limiter whatever they pass)."""
    return _LIMITERS.get(
        tenant_id,
        lambda: RateLimiter(per_minute=per_minute, max_wait=max_wait, wall=wall or (lambda: datetime.now(UTC))),
    )


def _option_number(options: Mapping[str, Any], name: str, default: float) -> float:
    """A non-negative number from the provider options (`default` when absent)."""
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"providers.xero.options.{name}: expected a number of seconds, got {value!r}") from None
    if not number >= 0:
        raise ConfigError(f"providers.xero.options.{name}: must not be negative")
    return number


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
        self.limiter = limiter or limiter_for(
            tenant_id,
            int(_option_number(settings.options, "rate_per_minute", RATE_PER_MINUTE)),
            _option_number(settings.options, "max_wait_s", MAX_LIMIT_WAIT_S),
        )
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
        attempts = _Attempts(retryable=method.startswith("get") or retry_writes)
        while True:
            try:
                answer = self._exchange(function, args, kwargs)
            except HTTPStatusException as exc:
                self._after_refusal(exc, attempts)
                continue
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._retry_or_raise(
                    attempts, Transient(f"Xero could not be reached ({type(exc).__name__}).", provider=PROVIDER_KEY)
                )
                continue
            except OAuth2Error:
                raise AuthError(
                    "The Xero token could not be used; reconnect the organisation.", provider=PROVIDER_KEY
                ) from None
            if answer is not None:
                return answer
            self._retry_or_raise(attempts, Transient("Xero answered with a malformed body.", provider=PROVIDER_KEY))

    def _exchange(self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Answer | None:
        """One SDK call within the tenant's limits; None when a JSON answer does not parse."""
        self.limiter.admit()
        with self._calls_lock:
            self._calls += 1
        with self.limiter.slot():
            response = function(self.tenant_id, *args, _preload_content=False, _request_timeout=API_TIMEOUT, **kwargs)
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.limiter.observe(headers)
        data = bytes(response.data or b"")
        payload = None
        if "json" in headers.get("content-type", "") and data:
            try:
                payload = json.loads(data, parse_float=Decimal)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None
        return Answer(int(response.status), headers, data, payload)

    def _after_refusal(self, exc: HTTPStatusException, attempts: _Attempts) -> None:
        """Return to retry the call (after any wait), or raise the connector error for the refusal."""
        status = status_of(exc)
        headers = dict(exc.headers or {})
        self.limiter.observe(headers)
        if status == 401 and not attempts.auth_retried:
            attempts.auth_retried = True
            self._source.refreshed(self._token.last_used())
            return
        if status in _AUTH_REFUSALS:
            raise self._auth_refusal(status) from None
        if status == 429:
            wait = self.limiter.on_429(headers)
            attempts.limit += 1
            attempts.waited += wait
            if attempts.limit > MAX_LIMIT_RETRIES or attempts.waited > self.limiter.max_wait:
                # Waiting on would hold this worker thread past `max_wait`: the scheduler resumes later.
                raise RateLimited(
                    "Xero kept rate-limiting this organisation.", provider=PROVIDER_KEY, retry_after=wait
                ) from None
            self.limiter.sleep(wait, window_passed=True)
            return
        if status == 404:
            raise NotFound("Xero has no such record.", provider=PROVIDER_KEY, status=404) from None
        if status >= 500 or status == 0:
            self._retry_or_raise(
                attempts, Transient(f"Xero failed (HTTP {status}).", provider=PROVIDER_KEY, status=status)
            )
            return
        detail = _validation_messages(exc.body)
        raise Rejected(
            f"Xero rejected the request (HTTP {status}){': ' + detail if detail else ''}.",
            provider=PROVIDER_KEY,
            status=status,
        ) from None

    def _auth_refusal(self, status: int) -> AuthError:
        """The error for a 401 (after the refresh) or 403, checked with Xero rather than assumed.

        A 403 may mean the organisation disconnected Nudge in Xero, or only a missing permission; GET
        /connections tells them apart: the tenant missing from this user's connections is a provider-side
        disconnect (ProviderDisconnected: the connection is marked disconnected), anything else needs a
        reconnect (AuthError: needs_reauth).
        """
        try:
            rows = self.identity.get_connections(_request_timeout=IDENTITY_TIMEOUT)
        except (HTTPStatusException, OAuth2Error, urllib3.exceptions.HTTPError, OSError, ValueError):
            return AuthError(_AUTH_REFUSALS[status], provider=PROVIDER_KEY, status=status)
        if any(str(getattr(row, "tenant_id", "")) == self.tenant_id for row in rows or []):
            return AuthError(_AUTH_REFUSALS[status], provider=PROVIDER_KEY, status=status)
        return ProviderDisconnected(
            "This organisation was disconnected from Nudge in Xero (Xero confirms it is no longer connected); "
            "connect it again to resume.",
            provider=PROVIDER_KEY,
            status=status,
        )

    def _retry_or_raise(self, attempts: _Attempts, error: Transient) -> None:
        """Back off before another try of a retryable call, or raise `error` once the tries are spent."""
        attempts.transient += 1
        if attempts.retryable and attempts.transient < MAX_TRANSIENT_RETRIES:
            self.limiter.sleep(self._backoff(attempts.transient), limit=False)
            return
        raise error from None

    def _backoff(self, attempt: int) -> float:
        return min(0.25 * (2 ** (attempt - 1)), 4.0) * (0.5 + self._jitter())


def status_of(exc: HTTPStatusException) -> int:
    """The HTTP status of a refusal, read from the raw answer.

    The SDK's 400 exception computes `.status` by parsing the body as JSON, so an HTML (or cut-off)
    400 body would raise JSONDecodeError from inside the error handling.
    """
    status = getattr(exc.http_resp, "status", None)
    try:
        return int(status or 0)
    except (TypeError, ValueError):
        return 0


_AUTH_REFUSALS = {
    401: "Xero no longer accepts this connection's token; reconnect the organisation.",
    403: "Xero refused access to this organisation (disconnected or missing permission); reconnect it.",
}


@dataclass
class _Attempts:
    """What one `XeroClient.call` has spent so far of its retry budgets."""

    retryable: bool
    limit: int = 0
    waited: float = 0.0  # seconds slept on 429s by this call
    transient: int = 0
    auth_retried: bool = False
