"""The HTTP side of the QuickBooks adapter: python-quickbooks with limits, retries, refresh and errors.

python-quickbooks (docs/provider-api-facts.md §3.2) keeps a fixed bearer token, hides HTTP status and headers, and
maps Fault codes to its own exceptions. `QboClient` therefore subclasses `QuickBooks` and overrides
`process_request` (the SDK's single HTTP choke point) to add: the per-connection rate limiter
(500/min, 10 concurrent, §1.6), `Retry-After` on 429, jittered backoff on 5xx and network faults,
and one token refresh + retry on 401. `translate()` turns SDK exceptions into connector.errors.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from quickbooks import QuickBooks
from quickbooks import exceptions as qbex

from connector.errors import AuthError, ConfigError, NotFound, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSet, TokenSource
from connector.ratelimit.tenant import TenantLimiters, TenantRateLimiter
from providers.quickbooks.constants import (
    API_BASE,
    MAX_CONCURRENT,
    MAX_RETRIES,
    MAX_RETRY_AFTER_S,
    MINOR_VERSION,
    PROVIDER_KEY,
    QBO_ID_MAX_DIGITS,
    RATE_PER_MINUTE,
    REQUEST_ID_MAX,
    RETRY_BASE_S,
    TIMEOUT_S,
)
from providers.quickbooks.oauth import auth_client

RETRIED_STATUSES = (500, 502, 503, 504)


class StaleObject(Rejected):
    """QBO Fault 5010 Stale Object Error: the SyncToken sent is not the current one."""


class Duplicate(Rejected):
    """QBO Fault 6240 Duplicate Name / 6140 Duplicate Document Number."""


def quote(value: str) -> str:
    """A query-language string literal: quotes and backslashes escaped (docs/design.md "Secrets")."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def digits(value: str, what: str = "id") -> str:
    """`value` if it is a QBO id (ASCII digits only); anything else is refused before reaching a query or URL."""
    text = str(value)
    # str.isdigit() accepts "²" and "١٢٣": ids are ASCII 0-9 only (RS-33).
    if not text.isascii() or not text.isdigit() or len(text) > QBO_ID_MAX_DIGITS:
        raise Rejected(f"Not a QuickBooks {what}: expected digits.", provider=PROVIDER_KEY)
    return text


def request_id(key: str, suffix: str = "") -> str:
    """A deterministic `requestid` ≤ 50 chars for an action key (long keys are hashed)."""
    rid = f"{key}{suffix}"
    if len(rid) <= REQUEST_ID_MAX and rid.isascii() and rid.isprintable():
        return rid
    return hashlib.sha256(key.encode()).hexdigest()[: REQUEST_ID_MAX - len(suffix)] + suffix


_LIMITERS: TenantLimiters[TenantRateLimiter] = TenantLimiters()


def limiter_for(api_base: str, realm: str, per_minute: int, concurrent: int) -> TenantRateLimiter:
    """The process-wide limiter of one connection (realm on one API host)."""
    return _LIMITERS.get((api_base, realm), lambda: TenantRateLimiter(per_minute=per_minute, concurrent=concurrent))


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _check_transport(url: str) -> None:
    """HTTPS only; plain http is allowed for a loopback emulator, for this client alone (RS-36)."""
    if urlsplit(url).scheme != "https" and not _is_loopback(url):
        raise ConfigError(
            f"quickbooks.api_base must be an https:// URL (plain http only for a local emulator), not {url[:80]!r}"
        )


_FAULT_MAX_BYTES = 16 * 1024  # a Fault answer is small; larger 200s are data and never inspected
_XML_THROTTLE = re.compile(r"<(?:\w+:)?Error\b[^>]*\bcode\s*=\s*[\"']0*3001[\"']|ThrottleExceeded", re.IGNORECASE)


def is_throttled(response: requests.Response) -> bool:
    """True for a QBO rate-limit answer: HTTP 429, or a 200/403 whose JSON or XML Fault has code 3001 (RS-20)."""
    if response.status_code == 429:
        return True
    content = response.content or b""
    if response.status_code not in (200, 403) or len(content) > _FAULT_MAX_BYTES:
        return False
    text = content.decode("utf-8", "replace")
    if "fault" not in text.lower():
        return False
    if text.lstrip().startswith("<"):
        return _XML_THROTTLE.search(text) is not None
    try:
        payload = json.loads(text)
    except ValueError:
        return False
    fault = (payload.get("Fault") or payload.get("fault")) if isinstance(payload, dict) else None
    errors = (fault.get("Error") or fault.get("error")) if isinstance(fault, dict) else None
    if not isinstance(errors, list):
        return False
    return any(isinstance(e, dict) and str(e.get("code") or "").lstrip("0") == "3001" for e in errors)


def retry_after_seconds(response: requests.Response) -> float | None:
    """The `Retry-After` header in seconds when it is a plain number, else None."""
    header = response.headers.get("Retry-After", "").strip()
    return float(header) if header and header.replace(".", "", 1).isdigit() else None


def _fault_code(exc: qbex.QuickbooksException) -> int:
    try:
        return int(exc.error_code)
    except (TypeError, ValueError):
        return 0


# Fault codes that mean the grant no longer covers this company (docs/provider-api-facts.md §1.5: AuthorizationFault).
_AUTHORIZATION_FAULTS = (3100, 3200)
_THROTTLE_FAULT = 3001  # ThrottleExceeded, sent as HTTP 403 with an XML or JSON Fault body (§3.3, RS-20)


def translate_exception(exc: qbex.QuickbooksException) -> ProviderError:
    """A connector error for an SDK exception (by Fault code, docs/provider-api-facts.md §1.5 and §3.2)."""
    code = _fault_code(exc)
    message = str(getattr(exc, "message", "") or "")[:160]
    if isinstance(exc, qbex.AuthorizationException) or 0 < code < 500 or code in _AUTHORIZATION_FAULTS:
        return AuthError(
            "QuickBooks refused this connection's authorization; reconnect it.", provider=PROVIDER_KEY, status=401
        )
    if code == _THROTTLE_FAULT:
        return RateLimited("QuickBooks' rate limit was reached; the sync continues later.", provider=PROVIDER_KEY)
    if code == 10000:
        return _unreadable(message)
    return _by_fault_code(code, message)


def _unreadable(message: str) -> Transient:
    if message.startswith("Error reading json response"):
        # Truncated JSON or an HTML error page: the SDK puts the raw body into the message — dropped here.
        return Transient("QuickBooks sent an unreadable response; it will be retried.", provider=PROVIDER_KEY)
    if message.startswith("Error returned with status code"):
        return Transient("QuickBooks answered with an unexpected status; it will be retried.", provider=PROVIDER_KEY)
    return Transient("QuickBooks had a system fault (10000); it will be retried.", provider=PROVIDER_KEY)


def _by_fault_code(code: int, message: str) -> ProviderError:
    if code == 610:
        return NotFound("The QuickBooks record no longer exists (610 Object Not Found).", provider=PROVIDER_KEY)
    if code == 5010:
        return StaleObject("The QuickBooks record changed meanwhile (5010 Stale Object Error).", provider=PROVIDER_KEY)
    if code in (6240, 6140):
        return Duplicate(f"QuickBooks already has a record with that name or number ({code}).", provider=PROVIDER_KEY)
    if code >= 10000:
        return Transient(f"QuickBooks had a system fault ({code}); it will be retried.", provider=PROVIDER_KEY)
    return Rejected(f"QuickBooks refused the request ({code}: {message}).", provider=PROVIDER_KEY, status=400)


class _SdkQuickBooks(QuickBooks):  # untyped SDK base
    """python-quickbooks whose every HTTP request goes through its owning QboClient."""

    owner: QboClient

    def process_request(
        self, request_type: str, url: str, headers: Any = "", params: Any = "", data: Any = ""
    ) -> requests.Response:
        return self.owner.send(request_type, url, headers or {}, params or {}, data)


class QboClient:
    """One connection's python-quickbooks client (built lazily: no network until the first call)."""

    def __init__(
        self,
        realm: str,
        token_source: TokenSource,
        settings: ProviderSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.realm = digits(realm, "company id")
        self.token_source = token_source
        self.settings = settings
        options = dict(settings.options or {})
        self.max_retries = int(options.get("max_retries", MAX_RETRIES))
        self.retry_base_s = float(options.get("retry_base_s", RETRY_BASE_S))
        self.max_retry_after_s = float(options.get("max_retry_after_s", MAX_RETRY_AFTER_S))
        self.timeout_s = float(options.get("timeout_s", TIMEOUT_S))
        self.api_base = (settings.api_base or API_BASE).rstrip("/")
        self.limiter = limiter_for(
            self.api_base,
            self.realm,
            int(options.get("rate_per_minute", RATE_PER_MINUTE)),
            int(options.get("max_concurrent", MAX_CONCURRENT)),
        )
        self.calls = 0  # counted under _calls_lock: a full reconcile reads pages on several threads
        self._calls_lock = threading.Lock()
        # `time` of the last answer that carried one: QuickBooks' now, in the offset it answers the company in.
        self.server_time = ""
        self._sleep = sleep
        self._qb: _SdkQuickBooks | None = None
        self._access_token = ""
        self._lock = threading.Lock()
        self._http = requests.Session()  # every request passes allow_redirects=False (RS-36)

    def __repr__(self) -> str:
        return f"QboClient(realm={self.realm!r}, api_base={self.api_base!r})"

    # -- construction ------------------------------------------------------------------------
    @property
    def qb(self) -> _SdkQuickBooks:
        with self._lock:
            if self._qb is None:
                _check_transport(self.api_base)
                tokens = self.token_source.current()
                # AuthClient is built from the cached discovery document, once per client (§3.2).
                client = auth_client(
                    self.settings,
                    access_token=tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    realm_id=self.realm,
                )
                qb = _SdkQuickBooks(
                    auth_client=client,
                    refresh_token=tokens.refresh_token,
                    company_id=self.realm,
                    minorversion=MINOR_VERSION,
                )
                qb.owner = self
                # Our own plain session, not the SDK's OAuth2Session: that one needs the process-wide
                # OAUTHLIB_INSECURE_TRANSPORT for the loopback emulator (§3.2). The bearer header is set per
                # request in _attempt, and https is enforced by _check_transport for this client only (RS-36).
                qb.session = self._http
                qb.use_decimal = True  # amounts parse as Decimal, never float
                # No constructor argument for the API host: set the instance attributes (§3.2).
                qb.api_url_v3 = self.api_base
                qb.sandbox_api_url_v3 = self.api_base
                self._access_token = tokens.access_token
                self._qb = qb
            return self._qb

    def _new_session(self, tokens: TokenSet) -> None:
        qb = self.qb
        qb.auth_client.access_token = tokens.access_token
        qb.auth_client.refresh_token = tokens.refresh_token
        qb.session = self._http
        self._access_token = tokens.access_token

    # -- transport ------------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        return self.retry_base_s * (2**attempt) * random.uniform(0.5, 1.5)  # jittered exponential

    def send(
        self, method: str, url: str, headers: dict[str, str], params: dict[str, Any], data: Any
    ) -> requests.Response:
        """One SDK request with limits, retries and the 401 → refresh → retry-once rule."""
        refreshed = False
        attempt = 0
        while True:
            response = self._attempt(method, url, headers, params, data, attempt)
            if response is not None and response.status_code == 401 and not refreshed:
                refreshed = True
                self._new_session(self.token_source.refreshed(self._access_token))
                continue
            if response is not None:
                wait = self._retry_wait(response, attempt)
                if wait is None:
                    return response
                self._sleep(wait)
            attempt += 1

    def _attempt(
        self, method: str, url: str, headers: dict[str, str], params: dict[str, Any], data: Any, attempt: int
    ) -> requests.Response | None:
        """One HTTP exchange within the realm's limits; None after a network fault that will be retried."""
        qb = self.qb
        if qb.session is not self._http or self._access_token != self.token_source.current().access_token:
            self._new_session(self.token_source.current())
        _check_transport(url)
        headers["Authorization"] = "Bearer " + self._access_token
        try:
            with self.limiter.call():
                with self._calls_lock:
                    self.calls += 1
                return self._http.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    data=data,
                    timeout=self.timeout_s,
                    allow_redirects=False,  # a redirect is never followed (RS-36)
                )
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt < self.max_retries:
                self._sleep(self._backoff(attempt))
                return None
            raise Transient("QuickBooks could not be reached; it will be retried.", provider=PROVIDER_KEY) from exc

    def _retry_wait(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `response`, None to hand it to the SDK, or the error to raise."""
        status = response.status_code
        if status == 401:
            raise AuthError(
                "QuickBooks rejected the refreshed access token; reconnect.", provider=PROVIDER_KEY, status=401
            )
        if 300 <= status < 400:
            where = urlsplit(response.headers.get("Location", "")).hostname or "another address"
            raise Rejected(
                f"QuickBooks answered with a redirect to {where[:80]}; Nudge does not follow redirects "
                "(check quickbooks.api_base).",
                provider=PROVIDER_KEY,
                status=status,
            )
        if is_throttled(response):
            # 429, or ThrottleExceeded (3001) as a JSON or XML Fault on a 403 or even a 200 (RS-20).
            given = retry_after_seconds(response)
            wait = given if given is not None else self._backoff(attempt)
            if attempt < self.max_retries and wait <= self.max_retry_after_s:
                self.limiter.record_wait(wait)  # slept by `send` through this client's sleep
                return wait
            raise RateLimited(
                "QuickBooks' rate limit was reached; the sync continues later.",
                provider=PROVIDER_KEY,
                retry_after=max(wait, 1.0),
            )
        if status in RETRIED_STATUSES:
            if attempt < self.max_retries:
                return self._backoff(attempt)
            raise Transient(
                f"QuickBooks failed with HTTP {status}; it will be retried.", provider=PROVIDER_KEY, status=status
            )
        return None

    @contextmanager
    def translate(self) -> Iterator[None]:
        """Run SDK calls, turning its exceptions (and shape surprises) into connector.errors."""
        try:
            yield
        except ProviderError:
            raise
        except qbex.QuickbooksException as exc:
            raise translate_exception(exc) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise Transient("QuickBooks' response was cut off; it will be retried.", provider=PROVIDER_KEY) from exc
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise Transient("QuickBooks sent a response of an unexpected shape.", provider=PROVIDER_KEY) from exc

    # -- calls -------------------------------------------------------------------------------------
    def _note_time(self, result: Any) -> None:
        stamp = result.get("time") if isinstance(result, dict) else None
        if isinstance(stamp, str) and stamp:
            self.server_time = stamp

    def _url(self, path: str) -> str:
        return f"{self.api_base}/company/{self.realm}/{path}"

    def query(self, select: str) -> dict[str, Any]:
        """QueryResponse of one query (POST, Content-Type application/text: docs/provider-api-facts.md §3.2)."""
        with self.translate():
            result = self.qb.query(select)
            self._note_time(result)
            return _dict(result.get("QueryResponse"), "QueryResponse") | {"_time": result.get("time")}

    def batch(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        """(BatchItemResponse list, server time) for ≤ 30 items (docs/provider-api-facts.md §1.6); one API call."""
        with self.translate():
            result = self.qb.batch_operation(json.dumps({"BatchItemRequest": items}))
            responses = result["BatchItemResponse"]
            if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
                raise TypeError("BatchItemResponse")
            return responses, str(result.get("time") or "")

    def cdc(self, entities: str, changed_since: str) -> dict[str, Any]:
        with self.translate():
            return _dict(self.qb.change_data_capture(entities, changed_since), "CDC")

    def read(self, entity: str, ident: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        with self.translate():
            result = self.qb.get_single_object(entity, pk=digits(ident), params=params)
            self._note_time(result)
            return _dict(result[entity], entity)

    def company_info(self) -> dict[str, Any]:
        with self.translate():
            result = self.qb.get_single_object("CompanyInfo", pk=self.realm)
            self._note_time(result)
            return _dict(result["CompanyInfo"], "CompanyInfo")

    def home_currency(self) -> str:
        """The company's home currency (Preferences.CurrencyPrefs.HomeCurrency): invoices in it carry no
        CurrencyRef in the samples (payloads/qbo_invoice_*.json), so it must be known per company."""
        with self.translate():
            result = self.qb.get(f"{self.qb.api_url}/company/{self.realm}/preferences")
            prefs = _dict(result.get("Preferences"), "Preferences")
            return str(((prefs.get("CurrencyPrefs") or {}).get("HomeCurrency") or {}).get("value") or "").upper()

    def create(self, entity: str, body: str, rid: str) -> dict[str, Any]:
        with self.translate():
            return _dict(self.qb.create_object(entity, body, request_id=rid)[entity], entity)

    def update(self, entity: str, body: str, rid: str) -> dict[str, Any]:
        with self.translate():
            return _dict(self.qb.update_object(entity, body, request_id=rid)[entity], entity)

    def post(
        self, path: str, body: str | None, rid: str, params: dict[str, str], content_type: str = "application/json"
    ) -> dict[str, Any]:
        with self.translate():
            result = self.qb.post(self._url(path), body, content_type=content_type, params=params, request_id=rid)
            return _dict(result, path)

    def pdf(self, entity: str, ident: str) -> bytes:
        with self.translate():
            content = self.qb.download_pdf(entity, digits(ident))
            return bytes(content)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object")
    return value
