"""Xero OAuth 2: authorize URL, code exchange, refresh, revocation, and the SDK's token plumbing.

Facts doc §2.1 and §3.3:
- xero-python has no code exchange and hard-codes its token URLs, so the token endpoint is called
  here with `requests` against `identity_base` (the emulator) or identity.xero.com.
- The SDK reads tokens through a getter before every call and refreshes on its own when
  `expires_at < now + 60 s`. `NudgeOAuth2Token` routes that refresh to the connection's
  TokenSource (which owns the lock and persistence), so the SDK never spends a refresh token itself.
- The dict handed to the SDK holds only the keys `update_token` accepts, `scope` as a list.
- The SDK's debug output is never switched on: it prints bearer tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token

from connector.errors import AuthError, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSet, TokenSource
from providers.xero.constants import (
    AUTHORIZE_URL,
    CONNECTIONS_BASE,
    DEFAULT_SCOPES,
    IDENTITY_TIMEOUT,
    PROVIDER_KEY,
    REFRESH_TOKEN_LIFETIME,
    REVOKE_URL,
    TOKEN_URL,
)

SDK_TOKEN_KEYS = ("access_token", "scope", "expires_in", "token_type", "expires_at", "refresh_token", "id_token")


def token_url(settings: ProviderSettings) -> str:
    return f"{settings.identity_base.rstrip('/')}/connect/token" if settings.identity_base else TOKEN_URL


def revoke_url(settings: ProviderSettings) -> str:
    return f"{settings.identity_base.rstrip('/')}/connect/revocation" if settings.identity_base else REVOKE_URL


def connections_base(settings: ProviderSettings) -> str:
    return settings.identity_base.rstrip("/") if settings.identity_base else CONNECTIONS_BASE


def scopes(settings: ProviderSettings) -> tuple[str, ...]:
    return tuple(settings.scopes) or DEFAULT_SCOPES


def authorization_url(settings: ProviderSettings, state: str, code_challenge: str) -> str:
    """Where to send the user to consent (PKCE S256 when `code_challenge` is given)."""
    base = f"{settings.identity_base.rstrip('/')}/connect/authorize" if settings.identity_base else AUTHORIZE_URL
    params = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": " ".join(scopes(settings)),
        "state": state,
    }
    if code_challenge:
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    return f"{base}?{urlencode(params)}"


def _token_call(settings: ProviderSettings, form: dict[str, str], now: datetime, what: str) -> TokenSet:
    try:
        response = requests.post(
            token_url(settings),
            data=form,
            auth=(settings.client_id, settings.client_secret),
            headers={"Accept": "application/json"},
            timeout=IDENTITY_TIMEOUT,
            allow_redirects=False,  # a 307 would re-post the code or refresh token to wherever it points
        )
    except requests.RequestException as exc:
        raise Transient(f"Xero could not be reached to {what} ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
    return _token_result(response, now, what)


def refuse_redirect(response: requests.Response, what: str) -> None:
    """Raise Rejected for a redirect answer: Nudge never follows one from Xero's identity host (RS-36)."""
    if response.is_redirect or 300 <= response.status_code < 400:
        raise Rejected(
            f"Xero answered the {what} with a redirect (HTTP {response.status_code}), which Nudge does not follow; "
            "check the Xero identity host in the configuration.",
            provider=PROVIDER_KEY,
            status=response.status_code,
        )


def _token_result(response: requests.Response, now: datetime, what: str) -> TokenSet:
    refuse_redirect(response, what)
    status = response.status_code
    if status == 200:
        try:
            body = response.json()
            tokens = TokenSet.from_response(body, now)
        except (ValueError, KeyError):
            raise Transient(f"Xero answered the {what} with an unreadable body.", provider=PROVIDER_KEY) from None
        return TokenSet(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            refresh_expires_at=tokens.refresh_expires_at or now.astimezone(UTC) + REFRESH_TOKEN_LIFETIME,
            scope=tokens.scope,
            id_token=tokens.id_token,
            token_type=tokens.token_type,
        )
    error = ""
    try:
        error = str(response.json().get("error") or "")
    except ValueError:
        error = ""
    # Only the OAuth error code is kept: bodies and headers of token calls never reach messages or logs.
    if error in ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"):
        raise AuthError(
            f"Xero refused to {what} ({error}); reconnect the Xero organisation.", provider=PROVIDER_KEY, status=status
        )
    if status == 429:
        raise RateLimited(
            f"Xero rate-limited the {what}.",
            provider=PROVIDER_KEY,
            retry_after=float(response.headers.get("Retry-After") or 60),
        )
    if status >= 500:
        raise Transient(f"Xero failed the {what} (HTTP {status}).", provider=PROVIDER_KEY, status=status)
    raise Rejected(f"Xero rejected the {what} (HTTP {status} {error}).", provider=PROVIDER_KEY, status=status)


def exchange_code(
    settings: ProviderSettings, callback_params: Mapping[str, str], code_verifier: str, now: datetime
) -> TokenSet:
    """Trade the callback's `code` for tokens (xero-python has no code exchange: docs/provider-api-facts.md §3.3)."""
    if callback_params.get("error"):
        raise AuthError(f"Xero access was not granted ({callback_params['error'][:40]}).", provider=PROVIDER_KEY)
    code = callback_params.get("code", "")
    if not code:
        raise Rejected("The Xero callback carried no authorisation code.", provider=PROVIDER_KEY)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    return _token_call(settings, form, now, "exchange the authorisation code")


def refresh(settings: ProviderSettings, tokens: TokenSet, now: datetime) -> TokenSet:
    """Spend the refresh token once; the answer carries a NEW refresh token to store before anything else."""
    if not tokens.refresh_token:
        raise AuthError("No Xero refresh token is stored; reconnect the Xero organisation.", provider=PROVIDER_KEY)
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    return _token_call(settings, form, now, "refresh the access token")


def revoke(settings: ProviderSettings, tokens: TokenSet) -> None:
    """Revoke the refresh token (which removes all of that user's connections: docs/provider-api-facts.md §2.1)."""
    token = tokens.refresh_token or tokens.access_token
    if not token:
        return
    try:
        response = requests.post(
            revoke_url(settings),
            data={"token": token},
            auth=(settings.client_id, settings.client_secret),
            timeout=IDENTITY_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise Transient(f"Xero could not be reached to revoke ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
    refuse_redirect(response, "revocation")
    if response.status_code >= 500:
        raise Transient(f"Xero failed the revocation (HTTP {response.status_code}).", provider=PROVIDER_KEY)
    if response.status_code not in (200, 204, 400):  # 400: already invalid, which is what we wanted
        raise Rejected(f"Xero rejected the revocation (HTTP {response.status_code}).", provider=PROVIDER_KEY)


# -- the SDK side ------------------------------------------------------------------------------------
def sdk_token(tokens: TokenSet, now: float | None = None) -> dict[str, Any]:
    """The dict xero-python's `update_token` accepts (docs/provider-api-facts.md §3.3): no other key, scope a list."""
    expires_at = tokens.expires_at.timestamp()
    moment = time.time() if now is None else now
    return {
        "access_token": tokens.access_token,
        "scope": list(tokens.scope),
        "expires_in": max(int(expires_at - moment), 0),
        "token_type": "Bearer",
        "expires_at": expires_at,
        "refresh_token": tokens.refresh_token,
        "id_token": tokens.id_token or None,
    }


class NudgeOAuth2Token(OAuth2Token):
    """OAuth2Token whose refresh goes through the TokenSource, never through the SDK's TokenApi.

    The SDK would otherwise POST the refresh to identity.xero.com itself (hard-coded URL) and only
    tell us afterwards through the saver — racing other threads and processes for one rotating token.
    """

    def __init__(self, source: TokenSource, settings: ProviderSettings) -> None:
        super().__init__(client_id=settings.client_id, client_secret=settings.client_secret)
        self._source = source
        self._lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        return "NudgeOAuth2Token(<redacted>)"

    def create_auth_settings(self, api_client: Any) -> dict[str, Any]:
        """The Authorization header for one call, from local variables (the instance is shared by threads)."""
        # The TokenSource is the one judge of expiry, on Nudge's clock (which tests and the demo move):
        # current() already refreshed if the token dies within its margin.
        tokens = self._source.current()
        with self._lock:  # keep the SDK-visible attributes coherent for code that reads them
            self.update_token(**sdk_token(tokens))
        self._local.access_token = tokens.access_token
        return {"type": "oauth2", "in": "header", "key": "Authorization", "value": f"Bearer {tokens.access_token}"}

    def last_used(self) -> str:
        """The access token this thread last sent (what a 401 rejected)."""
        return str(getattr(self._local, "access_token", ""))

    def refresh_access_token(self, api_client: Any) -> bool:
        """The SDK's refresh hook: ask the TokenSource (single-flight) instead of calling Xero here."""
        with self._lock:
            rejected = self.access_token or ""
        tokens = self._source.refreshed(rejected)
        with self._lock:
            self.update_token(**sdk_token(tokens))
        api_client.set_oauth2_token(sdk_token(tokens))
        return True

    def revoke_access_token(self, api_client: Any) -> bool:  # pragma: no cover - Nudge revokes via oauth.revoke
        raise ProviderError("revoke through providers.xero.oauth.revoke", provider=PROVIDER_KEY)


def api_client(source: TokenSource, settings: ProviderSettings) -> ApiClient:
    """An ApiClient whose token getter reads the TokenSource and whose saver is a harmless hand-back."""
    # xero-python's Configuration has metaclass TypeWithDefault: every `Configuration(...)` returns a
    # copy of the FIRST instance ever built and ignores its arguments [code: api_client/configuration.py].
    # Passing oauth2_token= would therefore share the first connection's token object with every other
    # connection. Set the attributes on the copy instead.
    configuration = Configuration()
    configuration.oauth2_token = NudgeOAuth2Token(source, settings)
    configuration.debug = False  # never on: SDK debug output prints bearer tokens (docs/provider-api-facts.md §3.3)

    def getter() -> dict[str, Any]:
        return sdk_token(source.current())

    def saver(_token: dict[str, Any]) -> None:
        # The TokenSource already stored the rotated tokens before handing them over; nothing to do.
        return None

    client = ApiClient(configuration, pool_threads=1, oauth2_token_getter=getter, oauth2_token_saver=saver)
    # [test] xero-python's urllib3 PoolManager keeps urllib3's default Retry, which silently sleeps for
    # `Retry-After` and repeats 429/503 answers (a daily-limit 429 would block for hours). Nudge's
    # limiter decides instead: no status retries, no redirects, one retry of a failed connect.
    client.rest_client.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(
        total=None, connect=1, read=0, redirect=0, status=0, other=0, respect_retry_after_header=False
    )
    return client


class LocalTokenSource:
    """An in-process, single-flight TokenSource over `oauth.refresh` (tests, bench, demo).

    Production uses the connector's database-backed TokenSource, which also locks the row across
    processes; this one only serialises threads of one process.
    """

    def __init__(
        self,
        settings: ProviderSettings,
        tokens: TokenSet,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_refresh: Callable[[TokenSet], None] | None = None,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._clock = clock
        self._on_refresh = on_refresh
        self._lock = threading.Lock()
        self.refresh_calls = 0

    def __repr__(self) -> str:
        return f"LocalTokenSource({self._tokens!r})"

    def current(self) -> TokenSet:
        with self._lock:
            if self._tokens.expires_within(60, self._clock()):
                self._refresh_locked()
            return self._tokens

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        with self._lock:
            if self._tokens.access_token == rejected_access_token:
                self._refresh_locked()
            return self._tokens

    def _refresh_locked(self) -> None:
        self.refresh_calls += 1
        self._tokens = refresh(self._settings, self._tokens, self._clock())
        if self._on_refresh is not None:
            self._on_refresh(self._tokens)


def tokens_from_response(body: Mapping[str, Any], now: datetime) -> TokenSet:
    """TokenSet from a token-endpoint body (e.g. the emulator's /__admin/grant answer)."""
    tokens = TokenSet.from_response(body, now)
    return TokenSet(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        refresh_expires_at=now.astimezone(UTC) + REFRESH_TOKEN_LIFETIME,
        scope=tokens.scope,
        id_token=tokens.id_token,
        token_type=tokens.token_type,
    )


class FixedTokens:
    """A TokenSource over tokens just issued (the OAuth callback, before the connection is stored)."""

    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    def __repr__(self) -> str:
        return "FixedTokens(<redacted>)"

    def current(self) -> TokenSet:
        """The tokens as issued: they are fresh, so nothing is refreshed."""
        return self._tokens

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        """Never refreshes: a token refused seconds after issue means the grant itself is bad."""
        raise AuthError("Xero refused the token just issued; connect again.", provider=PROVIDER_KEY)
