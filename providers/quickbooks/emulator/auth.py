"""OAuth 2.0 state of the QuickBooks emulator: apps, grants, codes, access and refresh tokens.

Behaviour (docs/provider-api-facts.md §1.1): access tokens live 3600 s; every refresh issues a new refresh token and the
previous one keeps working for 24 h (`grace_s`), or dies at first use of its successor in strict mode;
a dead, expired or revoked refresh token answers 400 `{"error_description":"Token invalid","error":"invalid_grant"}`.

OpenID Connect (docs/signin.md): with the `openid` scope the token response carries an RS256 ID token signed
with a key made at start-up (published at the JWKS URI), issued by Intuit's issuer, for the consenting
emulated Intuit user (`sub`, `email`, `email_verified`, `nonce`, `realmid` when the accounting scope was
granted). A code issued with a PKCE `code_challenge` is only exchanged with the matching S256 verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers._emulator import EmulatorClock

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# Intuit's issuer, as its discovery documents name it (production and sandbox alike; docs/signin.md).
ISSUER = "https://oauth.platform.intuit.com/op/v1"
ID_TOKEN_TTL = timedelta(hours=1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any], *, alg: str = "RS256") -> str:
    """A compact JWS over `claims` signed RS256 with `key` (tests also use it to forge tokens)."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 §4.2)."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


@dataclass
class IntuitUser:
    """One emulated Intuit account that can sign in on the consent page."""

    sub: str
    email: str
    given_name: str
    family_name: str
    email_verified: bool = True


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
    user: str = ""  # the IntuitUser.sub who consented ("" : the default user)


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
    nonce: str = ""
    challenge: str = ""
    challenge_method: str = ""


@dataclass
class OAuthState:
    clock: EmulatorClock
    settings: OAuthSettings = field(default_factory=OAuthSettings)
    apps: dict[str, str] = field(default_factory=dict)  # client_id -> client_secret
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access: dict[str, tuple[Grant, datetime]] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    users: dict[str, IntuitUser] = field(default_factory=dict)  # sub -> user, in the order added
    signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key_id: str = field(default_factory=lambda: secrets.token_hex(8))
    issuer: str = ISSUER

    def __post_init__(self) -> None:
        for email, given, family in (
            ("owner@intuit-demo.example", "Olivia", "Owner"),
            ("accountant@intuit-demo.example", "Arthur", "Accountant"),
            ("client@intuit-demo.example", "Clara", "Client"),
        ):
            self.add_user(email, given, family)

    def add_user(self, email: str, given: str, family: str, *, email_verified: bool = True) -> IntuitUser:
        """A new emulated Intuit user (a fresh `sub`, as Intuit's are opaque and stable)."""
        user = IntuitUser(secrets.token_hex(16), email, given, family, email_verified)
        with self._lock:
            self.users[user.sub] = user
        return user

    def user_list(self) -> list[IntuitUser]:
        with self._lock:
            return list(self.users.values())

    @property
    def default_user(self) -> IntuitUser:
        return next(iter(self.users.values()))

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set: the public half of the signing key only."""
        numbers = self.signing_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.key_id,
                    "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
                    "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                }
            ]
        }

    def _user_of(self, grant: Grant) -> IntuitUser:
        return self.users.get(grant.user) or self.default_user

    def id_token(self, grant: Grant, nonce: str) -> str:
        """An RS256 ID token for the consenting user (realmid only with the accounting scope)."""
        now = self.clock.now()
        user = self._user_of(grant)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [grant.client_id],
            "sub": user.sub,
            "iat": int(now.timestamp()),
            "exp": int((now + ID_TOKEN_TTL).timestamp()),
            "auth_time": int(now.timestamp()),
        }
        if "email" in grant.scopes:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        if "profile" in grant.scopes:
            claims["given_name"] = user.given_name
            claims["family_name"] = user.family_name
        if ACCOUNTING_SCOPE in grant.scopes and grant.realm:
            claims["realmid"] = grant.realm
        if nonce:
            claims["nonce"] = nonce
        return sign_jwt(self.signing_key, self.key_id, claims)

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The userinfo answer for a live access token with the openid scope (Intuit's camelCase keys)."""
        with self._lock:
            entry = self._access.get(access_token)
        if entry is None or entry[0].revoked or entry[1] < self.clock.now() or "openid" not in entry[0].scopes:
            return None
        grant = entry[0]
        user = self._user_of(grant)
        body: dict[str, Any] = {"sub": user.sub}
        if "email" in grant.scopes:
            body.update(email=user.email, emailVerified=user.email_verified)
        if "profile" in grant.scopes:
            body.update(givenName=user.given_name, familyName=user.family_name)
        return body

    def check_client(self, client_id: str, client_secret: str) -> None:
        expected = self.apps.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed")

    def issue_code(
        self,
        realm: str,
        client_id: str,
        scopes: tuple[str, ...],
        redirect_uri: str,
        *,
        user: str = "",
        nonce: str = "",
        challenge: str = "",
        challenge_method: str = "",
    ) -> str:
        code = "AB" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                Grant(realm, client_id, scopes, user=user),
                redirect_uri,
                self.clock.now() + timedelta(minutes=5),
                nonce,
                challenge,
                challenge_method,
            )
        return code

    def _issue(self, grant: Grant, nonce: str = "") -> dict[str, object]:
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
            body["id_token"] = self.id_token(grant, nonce)
        return body

    def grant_tokens(
        self, realm: str, client_id: str, scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)
    ) -> dict[str, object]:
        """Tokens for a fresh grant without the browser round trip (admin API, tests, bench)."""
        with self._lock:
            return self._issue(Grant(realm, client_id, scopes))

    def exchange(self, client_id: str, code: str, redirect_uri: str, code_verifier: str = "") -> dict[str, object]:
        with self._lock:
            entry = self._codes.pop(code, None)  # single use
            if entry is None or entry.expires_at < self.clock.now() or entry.grant.client_id != client_id:
                raise invalid_grant()
            if entry.redirect_uri != redirect_uri:
                raise OAuthError(400, "invalid_grant", "Redirect URI mismatch")
            if entry.challenge:
                expected = s256(code_verifier) if entry.challenge_method == "S256" else code_verifier
                if not code_verifier or not hmac.compare_digest(expected, entry.challenge):
                    raise OAuthError(400, "invalid_grant", "PKCE verification failed")
            return self._issue(entry.grant, entry.nonce)

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
