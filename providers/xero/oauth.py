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

import base64
import binascii
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token

from connector.domain.model import ConnectionInfo
from connector.errors import AuthError, ProviderError, RateLimited, Rejected, Transient
from connector.ports import Identity, ProviderSettings, TokenSet, TokenSource

PROVIDER_KEY = "xero"
AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"
REVOKE_URL = "https://identity.xero.com/connect/revocation"
CONNECTIONS_BASE = "https://api.xero.com"
DEFAULT_SCOPES = (
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.transactions",
    "accounting.contacts",
    "accounting.settings.read",
)
# OpenID Connect. Issuer and JWKS location of real Xero [unverified: not in docs/provider-api-facts.md; the
# discovery document at https://identity.xero.com/.well-known/openid-configuration names them].
ISSUER = "https://identity.xero.com"
JWKS_PATH = "/.well-known/openid-configuration/jwks"
JWKS_URL = f"{ISSUER}{JWKS_PATH}"
ID_TOKEN_LEEWAY = 120  # seconds of clock skew tolerated on exp / iat / nbf
REFRESH_TOKEN_LIFETIME = timedelta(days=60)  # docs/provider-api-facts.md §2.1: unused, it dies after 60 days
SDK_TOKEN_KEYS = ("access_token", "scope", "expires_in", "token_type", "expires_at", "refresh_token", "id_token")
TIMEOUT = (5, 30)


def token_url(settings: ProviderSettings) -> str:
    return f"{settings.identity_base.rstrip('/')}/connect/token" if settings.identity_base else TOKEN_URL


def revoke_url(settings: ProviderSettings) -> str:
    return f"{settings.identity_base.rstrip('/')}/connect/revocation" if settings.identity_base else REVOKE_URL


def connections_base(settings: ProviderSettings) -> str:
    return settings.identity_base.rstrip("/") if settings.identity_base else CONNECTIONS_BASE


def jwks_url(settings: ProviderSettings) -> str:
    return f"{settings.identity_base.rstrip('/')}{JWKS_PATH}" if settings.identity_base else JWKS_URL


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
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        raise Transient(f"Xero could not be reached to {what} ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
    return _token_result(response, now, what)


def _token_result(response: requests.Response, now: datetime, what: str) -> TokenSet:
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
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        raise Transient(f"Xero could not be reached to revoke ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
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


class _FixedTokens:
    """A TokenSource over tokens just issued (the OAuth callback): never refreshes."""

    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    def current(self) -> TokenSet:
        return self._tokens

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        raise AuthError("Xero refused the token just issued; connect again.", provider=PROVIDER_KEY)


def connect(settings: ProviderSettings, callback_params: Mapping[str, str], tokens: TokenSet) -> list[ConnectionInfo]:
    """One ConnectionInfo per organisation the user authorised, from GET /connections (IdentityApi)."""
    from xero_python.exceptions import HTTPStatusException
    from xero_python.identity import IdentityApi

    identity = IdentityApi(api_client(_FixedTokens(tokens), settings), base_url=connections_base(settings))
    try:
        rows = identity.get_connections(_request_timeout=TIMEOUT)
    except HTTPStatusException as exc:
        status = int(exc.status or 0)
        if status in (401, 403):
            raise AuthError("Xero refused to list the connected organisations.", provider=PROVIDER_KEY) from None
        if status >= 500 or status == 429:
            raise Transient(f"Xero failed to list connections (HTTP {status}).", provider=PROVIDER_KEY) from None
        raise Rejected(f"Xero rejected the connections request (HTTP {status}).", provider=PROVIDER_KEY) from None
    except (OSError, ValueError) as exc:
        raise Transient(f"Xero could not be reached ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
    result = []
    for row in rows or []:
        tenant_type = getattr(row.tenant_type, "value", row.tenant_type)
        result.append(
            ConnectionInfo(
                provider=PROVIDER_KEY,
                tenant_id=str(row.tenant_id),
                name=str(row.tenant_name or ""),
                tenant_type=str(tenant_type or "ORGANISATION"),
                extra={"connection_id": str(row.id or ""), "auth_event_id": str(row.auth_event_id or "")},
            )
        )
    return result


# -- OpenID Connect: who consented ----------------------------------------------------------------
def _refuse(reason: str) -> AuthError:
    return AuthError(f"Xero's sign-in could not be verified ({reason}); start again.", provider=PROVIDER_KEY)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fetch_jwks(settings: ProviderSettings) -> list[dict[str, Any]]:
    try:
        response = requests.get(jwks_url(settings), headers={"Accept": "application/json"}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise Transient(
            f"Xero could not be reached to check the sign-in ({type(exc).__name__}).", provider=PROVIDER_KEY
        ) from None
    if response.status_code != 200:
        raise Transient(f"Xero's signing keys could not be read (HTTP {response.status_code}).", provider=PROVIDER_KEY)
    try:
        keys = response.json().get("keys")
    except (ValueError, AttributeError):
        keys = None
    if not isinstance(keys, list):
        raise Transient("Xero's signing keys were unreadable.", provider=PROVIDER_KEY)
    return [key for key in keys if isinstance(key, dict)]


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey | None:
    try:
        e = int.from_bytes(_unb64(str(jwk["e"])), "big")
        n = int.from_bytes(_unb64(str(jwk["n"])), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError, binascii.Error):
        return None


def _signature_ok(settings: ProviderSettings, kid: str, signing_input: bytes, signature: bytes) -> bool:
    candidates = [
        jwk
        for jwk in _fetch_jwks(settings)
        if jwk.get("kty") == "RSA"
        and jwk.get("use", "sig") == "sig"
        and jwk.get("alg", "RS256") == "RS256"
        and (not kid or jwk.get("kid") == kid)
    ]
    for jwk in candidates:
        key = _rsa_key(jwk)
        if key is None:
            continue
        try:
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False


def _int_claim(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"malformed {name}")
    return int(value)


def identify(settings: ProviderSettings, tokens: TokenSet, nonce: str, now: datetime) -> Identity:
    """The Xero user behind `tokens`, from its ID token, verified as OpenID Connect requires.

    RS256 only (`alg: none`, HS256 and anything else are refused), signature against the key named by
    `kid` in the JWKS of `identity_base`, `iss`, `aud` == client id, `exp` / `iat` / `nbf` within
    ID_TOKEN_LEEWAY of `now`, and `nonce`. Failures raise AuthError; no message quotes the token.
    """
    token = tokens.id_token
    if not token:
        raise _refuse("Xero sent no ID token; the openid scope is needed")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise _refuse("the ID token is malformed")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise _refuse("the ID token is malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _refuse("the ID token is malformed")
    if header.get("alg") != "RS256":
        raise _refuse("the ID token is not signed with RS256")
    kid = header.get("kid") or ""
    if not isinstance(kid, str):
        raise _refuse("the ID token names no valid key")
    if not signature or not _signature_ok(settings, kid, f"{parts[0]}.{parts[1]}".encode(), signature):
        raise _refuse("the ID token's signature does not match Xero's keys")
    issuer = str(settings.options.get("oidc_issuer") or ISSUER)
    if claims.get("iss") != issuer:
        raise _refuse("the ID token comes from another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.client_id not in audiences:
        raise _refuse("the ID token was issued to another application")
    if len(audiences) > 1 and claims.get("azp") != settings.client_id:
        raise _refuse("the ID token was issued to another application")
    moment = now.timestamp()
    expires, issued, not_before = _int_claim(claims, "exp"), _int_claim(claims, "iat"), _int_claim(claims, "nbf")
    if expires is None or issued is None:
        raise _refuse("the ID token has no lifetime")
    if expires + ID_TOKEN_LEEWAY < moment:
        raise _refuse("the ID token has expired")
    if issued - ID_TOKEN_LEEWAY > moment or (not_before is not None and not_before - ID_TOKEN_LEEWAY > moment):
        raise _refuse("the ID token is not valid yet")
    claimed_nonce = claims.get("nonce")
    if (nonce or claimed_nonce is not None) and (
        not isinstance(claimed_nonce, str) or not hmac.compare_digest(claimed_nonce.encode(), nonce.encode())
    ):
        raise _refuse("the sign-in does not belong to this browser session (nonce mismatch)")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _refuse("the ID token names no user")
    email = claims.get("email")
    name = claims.get("name") or " ".join(
        str(part) for part in (claims.get("given_name"), claims.get("family_name")) if isinstance(part, str) and part
    )
    return Identity(subject=subject, email=email if isinstance(email, str) else "", name=str(name or ""))
