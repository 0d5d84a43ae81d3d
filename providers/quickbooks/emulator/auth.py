"""OAuth 2.0 state of the QuickBooks emulator: apps, grants, codes, access and refresh tokens.

Behaviour (docs/provider-api-facts.md §1.1): access tokens live 3600 s; every refresh issues a new refresh token and the
previous one keeps working for 24 h (`grace_s`), or dies at first use of its successor in strict mode;
a dead, expired or revoked refresh token answers 400 `{"error_description":"Token invalid","error":"invalid_grant"}`.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from providers._emulator import EmulatorClock

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class OAuthError(Exception):
    """A token-endpoint error: HTTP status and the OAuth error body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        # Same key order as the real body (payload qbo_token_error_invalid_grant.json).
        return {"error_description": self.description, "error": self.error}


def invalid_grant() -> OAuthError:
    return OAuthError(400, "invalid_grant", "Token invalid")


@dataclass
class OAuthSettings:
    access_ttl_s: int = 3600
    refresh_ttl_s: int = 8726400  # x_refresh_token_expires_in of the sample (≈ 101 days)
    grace_s: int = 86400  # previous refresh token stays valid 24 h
    strict: bool = False  # previous refresh token dies at the first use of the new one


@dataclass
class Grant:
    realm: str
    client_id: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _Refresh:
    grant: Grant
    expires_at: datetime
    superseded_at: datetime | None = None
    successor: str = ""
    dead: bool = False


@dataclass
class _Code:
    grant: Grant
    redirect_uri: str
    expires_at: datetime


@dataclass
class OAuthState:
    clock: EmulatorClock
    settings: OAuthSettings = field(default_factory=OAuthSettings)
    apps: dict[str, str] = field(default_factory=dict)  # client_id -> client_secret
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access: dict[str, tuple[Grant, datetime]] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_client(self, client_id: str, client_secret: str) -> None:
        expected = self.apps.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed")

    def issue_code(self, realm: str, client_id: str, scopes: tuple[str, ...], redirect_uri: str) -> str:
        code = "AB" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                Grant(realm, client_id, scopes), redirect_uri, self.clock.now() + timedelta(minutes=5)
            )
        return code

    def _issue(self, grant: Grant) -> dict[str, object]:
        now = self.clock.now()
        access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0." + secrets.token_urlsafe(32)
        refresh = "AB1" + secrets.token_urlsafe(36)
        self._access[access] = (grant, now + timedelta(seconds=self.settings.access_ttl_s))
        self._refresh[refresh] = _Refresh(grant, now + timedelta(seconds=self.settings.refresh_ttl_s))
        body: dict[str, object] = {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.settings.access_ttl_s,
            "x_refresh_token_expires_in": self.settings.refresh_ttl_s,
        }
        if "openid" in grant.scopes:
            body["id_token"] = "emulator_id_token"  # opaque: intuit-oauth only validates 3-part JWTs
        return body

    def grant_tokens(
        self, realm: str, client_id: str, scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)
    ) -> dict[str, object]:
        """Tokens for a fresh grant without the browser round trip (admin API, tests, bench)."""
        with self._lock:
            return self._issue(Grant(realm, client_id, scopes))

    def exchange(self, client_id: str, code: str, redirect_uri: str) -> dict[str, object]:
        with self._lock:
            entry = self._codes.pop(code, None)  # single use
            if entry is None or entry.expires_at < self.clock.now() or entry.grant.client_id != client_id:
                raise invalid_grant()
            if entry.redirect_uri != redirect_uri:
                raise OAuthError(400, "invalid_grant", "Redirect URI mismatch")
            return self._issue(entry.grant)

    def refresh(self, client_id: str, token: str) -> dict[str, object]:
        now = self.clock.now()
        with self._lock:
            entry = self._refresh.get(token)
            if entry is None or entry.dead or entry.grant.revoked or entry.grant.client_id != client_id:
                raise invalid_grant()
            if entry.expires_at < now:
                raise invalid_grant()
            expired_grace = entry.superseded_at is not None and (
                self.settings.strict or now - entry.superseded_at > timedelta(seconds=self.settings.grace_s)
            )
            if expired_grace:
                entry.dead = True
                raise invalid_grant()
            body = self._issue(entry.grant)
            if entry.superseded_at is None:
                entry.superseded_at = now
            entry.successor = str(body["refresh_token"])
            if self.settings.strict:
                entry.dead = True
            return body

    def revoke(self, client_id: str, token: str) -> None:
        with self._lock:
            grant: Grant | None = None
            if token in self._refresh:
                grant = self._refresh[token].grant
            elif token in self._access:
                grant = self._access[token][0]
            if grant is None or grant.client_id != client_id:
                raise OAuthError(400, "invalid_request", "Token invalid")
            grant.revoked = True

    def revoke_realm(self, realm: str) -> None:
        """Revoke every grant of `realm` (fault injection: the user disconnected the app)."""
        with self._lock:
            for grant, _ in self._access.values():
                if grant.realm == realm:
                    grant.revoked = True
            for entry in self._refresh.values():
                if entry.grant.realm == realm:
                    entry.grant.revoked = True

    def expire_access(self, realm: str) -> None:
        """Make every access token of `realm` expired now (tests of the 401 → refresh → retry path)."""
        with self._lock:
            past = self.clock.now() - timedelta(seconds=1)
            for token, (grant, _) in list(self._access.items()):
                if grant.realm == realm:
                    self._access[token] = (grant, past)

    def authorize(self, token: str, realm: str) -> str:
        """'' when `token` may call `realm`'s API now, else why not (for the 401 detail)."""
        with self._lock:
            entry = self._access.get(token)
            if entry is None:
                return "Token invalid"
            grant, expires_at = entry
            if grant.revoked:
                return "Token revoked"
            if expires_at < self.clock.now():
                return "Token expired"
            if grant.realm != realm:
                return "Token not valid for this company"
            return ""
