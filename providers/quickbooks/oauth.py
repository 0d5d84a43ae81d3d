"""QuickBooks OAuth 2.0 through intuit-oauth's AuthClient (docs/provider-api-facts.md §1.1, §3.2).

AuthClient fetches the OpenID discovery document in its constructor; here the document is fetched
once per URL, cached for the process, and handed to a subclass whose constructor does no network IO.
`ProviderSettings.environment` is `production`, `sandbox` or a discovery-document URL (the emulator).
Token errors become connector.errors (a dead grant is AuthError); secrets never reach a message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from intuitlib.client import AuthClient
from intuitlib.config import DISCOVERY_URL
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from intuitlib.utils import get_auth_header, send_request

from connector.errors import AuthError, ConfigError, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSet
from providers.quickbooks.constants import PROVIDER_KEY

ACCOUNTING_SCOPE = Scopes.ACCOUNTING.value
# The accounting scope plus OpenID Connect's (Sign in with Intuit; docs/signin.md): the same consent connects
# a company and says who the Intuit user is.
DEFAULT_SCOPES = (ACCOUNTING_SCOPE, Scopes.OPENID.value, Scopes.PROFILE.value, Scopes.EMAIL.value)
_DISCOVERY_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "issuer",
    "jwks_uri",
    "userinfo_endpoint",
)
TIMEOUT_S = 30.0  # token, revoke and discovery calls (intuit-oauth sets none of its own)
_discovery_cache: dict[str, dict[str, Any]] = {}
_discovery_lock = threading.Lock()


def discovery_url(settings: ProviderSettings) -> str:
    """The discovery-document URL for `settings.environment` (any other string is the URL itself)."""
    env = (settings.environment or "production").strip()
    if env.lower() in ("production", "prod"):
        return DISCOVERY_URL["production"]
    if env.lower() in ("sandbox", "sand"):
        return DISCOVERY_URL["sandbox"]
    if not env.startswith(("https://", "http://")):
        raise ConfigError(f"quickbooks.environment must be production, sandbox or a URL, not {env[:40]!r}")
    return env


def discovery_document(url: str) -> dict[str, Any]:
    """The OpenID discovery document at `url`, fetched once per process."""
    with _discovery_lock:
        cached = _discovery_cache.get(url)
    if cached is not None:
        return cached
    try:
        # A redirect is never followed: it would take Nudge's OAuth endpoints from another host (RS-36).
        response = requests.get(url, timeout=10, headers={"Accept": "application/json"}, allow_redirects=False)
    except requests.RequestException:
        raise Transient(
            "QuickBooks' sign-in service could not be reached; try again shortly.", provider=PROVIDER_KEY
        ) from None
    if response.is_redirect:
        raise Rejected(
            f"QuickBooks' discovery document answered with a redirect to {_location(response.headers)}; Nudge does "
            "not follow redirects (check quickbooks.environment).",
            provider=PROVIDER_KEY,
            status=response.status_code,
        )
    if response.status_code != 200:
        raise Transient(
            f"QuickBooks' sign-in service answered {response.status_code}; try again shortly.",
            provider=PROVIDER_KEY,
            status=response.status_code,
        )
    try:
        doc = response.json()
    except ValueError:
        raise Transient("QuickBooks' sign-in service sent an unreadable answer.", provider=PROVIDER_KEY) from None
    if not isinstance(doc, dict) or any(key not in doc for key in _DISCOVERY_KEYS):
        raise ConfigError(f"the discovery document at {url} lacks the OAuth endpoints")
    with _discovery_lock:
        _discovery_cache[url] = doc
    return doc


class CachedAuthClient(AuthClient):  # untyped SDK base
    """intuit-oauth 1.2.x AuthClient built from an already fetched discovery document.

    Mirrors `AuthClient.__init__` of intuit-oauth 1.2.6 (pinned <1.3 in pyproject), minus its
    constructor-time discovery fetch (docs/provider-api-facts.md §3.2).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        environment: str,
        discovery: Mapping[str, Any],
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        realm_id: str | None = None,
    ) -> None:
        requests.Session.__init__(self)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.environment = environment
        self.state_token = None
        self.auth_endpoint = discovery["authorization_endpoint"]
        self.token_endpoint = discovery["token_endpoint"]
        self.revoke_endpoint = discovery["revocation_endpoint"]
        self.issuer_uri = discovery["issuer"]
        self.jwks_uri = discovery["jwks_uri"]
        self.user_info_url = discovery["userinfo_endpoint"]
        self.realm_id = realm_id
        self.access_token = access_token
        self.expires_in = None
        self.refresh_token = refresh_token
        self.x_refresh_token_expires_in = None
        self.id_token = None

    def __repr__(self) -> str:
        return f"CachedAuthClient(client_id={self.client_id!r}, environment={self.environment!r})"

    def get_bearer_token(self, auth_code: str, realm_id: str | None = None, code_verifier: str = "") -> None:
        """intuit-oauth 1.2.6's `get_bearer_token` plus the PKCE `code_verifier` (RFC 7636 §4.5) when given."""
        if realm_id is not None:
            self.realm_id = realm_id
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": get_auth_header(self.client_id, self.client_secret),
        }
        body = {"grant_type": "authorization_code", "code": auth_code, "redirect_uri": self.redirect_uri}
        if code_verifier:
            body["code_verifier"] = code_verifier
        send_request("POST", self.token_endpoint, headers, self, body=urlencode(body), session=self)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Every token, revoke and userinfo call: redirects never followed (a 307 would re-post a code or
        refresh token elsewhere, RS-36) and a timeout always set."""
        kwargs["allow_redirects"] = False
        kwargs.setdefault("timeout", TIMEOUT_S)
        return super().request(method, url, *args, **kwargs)


def _location(headers: Any) -> str:
    """The host a redirect points to, for a message (never the full URL, which may carry a code)."""
    location = str(headers.get("Location", "") if headers else "")
    return (urlsplit(location).hostname or "another address")[:80]


def auth_client(
    settings: ProviderSettings,
    *,
    access_token: str | None = None,
    refresh_token: str | None = None,
    realm_id: str | None = None,
) -> CachedAuthClient:
    """An AuthClient for `settings` (no network: the discovery document comes from the cache)."""
    url = discovery_url(settings)
    return CachedAuthClient(
        settings.client_id,
        settings.client_secret,
        settings.redirect_uri,
        url,
        discovery_document(url),
        access_token=access_token,
        refresh_token=refresh_token,
        realm_id=realm_id,
    )


def _scopes(settings: ProviderSettings) -> list[Scopes]:
    names = settings.scopes or DEFAULT_SCOPES
    try:
        return [Scopes(name) for name in names]
    except ValueError:
        raise ConfigError(f"quickbooks.scopes: unknown scope in {list(names)!r}") from None


def token_error(exc: AuthClientError | requests.RequestException) -> ProviderError:
    """A connector error for a failed token-endpoint call (never carrying the response body verbatim)."""
    if isinstance(exc, requests.RequestException):
        return Transient("QuickBooks' token service could not be reached; try again shortly.", provider=PROVIDER_KEY)
    status = int(exc.status_code)
    if 300 <= status < 400:
        return Rejected(
            f"QuickBooks' token service answered with a redirect to {_location(exc.headers)}; Nudge does not "
            "follow redirects (check quickbooks.environment).",
            provider=PROVIDER_KEY,
            status=status,
        )
    try:
        error = str(json.loads(exc.content or b"{}").get("error") or "")
    except (ValueError, AttributeError):
        error = ""
    if error == "invalid_grant":
        # Dead, expired, superseded or revoked refresh token (payload qbo_token_error_invalid_grant.json).
        return AuthError(
            "QuickBooks no longer accepts this connection's authorization; reconnect it.",
            provider=PROVIDER_KEY,
            status=status,
        )
    if error == "invalid_client" or status == 401:
        return AuthError(
            "QuickBooks rejected the app's client id or secret; check the configuration.",
            provider=PROVIDER_KEY,
            status=status,
        )
    if status == 429:
        retry = exc.headers.get("Retry-After", "60") if exc.headers else "60"
        return RateLimited(
            "QuickBooks' token service is rate limiting; retrying later.",
            provider=PROVIDER_KEY,
            retry_after=float(retry) if str(retry).isdigit() else 60.0,
        )
    if status >= 500:
        return Transient(
            f"QuickBooks' token service failed ({status}); try again shortly.", provider=PROVIDER_KEY, status=status
        )
    return Rejected(
        f"QuickBooks refused the token request ({status}{', ' + error if error else ''}).",
        provider=PROVIDER_KEY,
        status=status,
    )


def _token_body(client: CachedAuthClient) -> dict[str, Any]:
    return {
        "access_token": client.access_token,
        "refresh_token": client.refresh_token,
        "expires_in": client.expires_in or 3600,
        "x_refresh_token_expires_in": client.x_refresh_token_expires_in,
        "id_token": client.id_token or "",
        "token_type": "bearer",
    }


def authorization_url(settings: ProviderSettings, state: str, code_challenge: str) -> str:
    """Where to send the user to approve access, with the PKCE S256 `code_challenge` when given.

    intuit-oauth builds the URL without PKCE; the challenge is appended (docs/signin.md: Intuit's
    authorization server ignores parameters it does not use, the emulator verifies S256).
    """
    url = str(auth_client(settings).get_authorization_url(_scopes(settings), state_token=state))
    if code_challenge:
        url += "&" + urlencode({"code_challenge": code_challenge, "code_challenge_method": "S256"})
    return url


def exchange_code(
    settings: ProviderSettings, callback_params: Mapping[str, str], code_verifier: str, now: datetime
) -> TokenSet:
    """Trade the callback's `code` for tokens (form POST with Basic auth, docs/provider-api-facts.md §1.1)."""
    if callback_params.get("error"):
        raise AuthError("The QuickBooks connection was not approved.", provider=PROVIDER_KEY)
    code = callback_params.get("code", "")
    if not code:
        raise Rejected("The QuickBooks callback carried no authorization code.", provider=PROVIDER_KEY)
    client = auth_client(settings, realm_id=callback_params.get("realmId"))
    try:
        client.get_bearer_token(code, realm_id=callback_params.get("realmId"), code_verifier=code_verifier)
    except (AuthClientError, requests.RequestException) as exc:
        raise token_error(exc) from None
    return TokenSet.from_response(_token_body(client), now)


def refresh(settings: ProviderSettings, tokens: TokenSet, now: datetime) -> TokenSet:
    """New tokens from the refresh token; the rotated refresh token must be stored at once (§1.1)."""
    client = auth_client(settings, refresh_token=tokens.refresh_token)
    try:
        client.refresh(refresh_token=tokens.refresh_token)
    except (AuthClientError, requests.RequestException) as exc:
        raise token_error(exc) from None
    return TokenSet.from_response(_token_body(client), now)


def revoke(settings: ProviderSettings, tokens: TokenSet) -> None:
    """Revoke the grant (the refresh token revokes the whole connection)."""
    client = auth_client(settings)
    try:
        client.revoke(token=tokens.refresh_token or tokens.access_token)
    except (AuthClientError, requests.RequestException) as exc:
        raise token_error(exc) from None


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
        raise AuthError("QuickBooks rejected the new access token; reconnect.", provider=PROVIDER_KEY, status=401)
