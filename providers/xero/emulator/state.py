"""Everything an emulated Xero remembers: organisations, the OAuth world, idempotency, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import secrets
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers._emulator import EmulatorCore
from providers.xero.emulator.ledger import Ledger
from providers.xero.emulator.wire import new_id

ACCESS_TTL = timedelta(minutes=30)  # docs/provider-api-facts.md §2.1: expires_in 1800
REFRESH_TTL = timedelta(days=60)  # docs/provider-api-facts.md §2.1: an unused refresh token dies after 60 days
REFRESH_GRACE = timedelta(minutes=30)  # docs/provider-api-facts.md §2.1: a superseded token is retryable 30 min
CODE_TTL = timedelta(minutes=5)

ISSUER = "https://identity.xero.com"  # what real Xero puts in `iss` [unverified]; the emulator mimics it
DEFAULT_CLIENT_ID = "nudge-emulator-client"
DEFAULT_CLIENT_SECRET = "nudge-emulator-secret"  # a fixture value for the local emulator, not a credential


@dataclass
class Client:
    secret: str
    redirect_uris: list[str] = field(default_factory=list)  # empty: any http(s) URI is accepted


@dataclass
class Grant:
    grant_id: str
    client_id: str
    user_id: str
    scope: list[str]
    tenants: list[str]
    auth_event_id: str
    revoked: bool = False


@dataclass
class RefreshRecord:
    grant_id: str
    issued_at: datetime
    superseded_at: datetime | None = None
    revoked: bool = False


@dataclass
class Throttle:
    """A limit one tenant has hit on purpose (admin `throttle`): 429s naming `problem` until `until`."""

    problem: str  # "minute" or "day" (X-Rate-Limit-Problem)
    until: datetime  # emulator time at which the limit resets (Retry-After counts down to it)
    times: int = 0  # > 0: only that many refusals, then the throttle is gone; 0: until `until`


@dataclass
class StoredResponse:
    status: int
    body: bytes
    content_type: str
    fingerprint: str


@dataclass
class User:
    user_id: str
    email: str
    given_name: str
    family_name: str


class XeroState:
    """Shared, lock-guarded state of one emulator instance."""

    def __init__(self, core: EmulatorCore, *, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self.core = core
        self.lock = threading.RLock()
        self.ledgers: dict[str, Ledger] = {}
        self.clients: dict[str, Client] = {client_id: Client(client_secret, list(redirect_uris))}
        self.users: dict[str, User] = {}
        self.default_user = self.add_user("owner@demo.example", "Olivia", "Owner")
        # ID tokens are signed RS256 with a key made at start-up, published at the JWKS URI.
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(8)
        self.codes: dict[str, dict[str, Any]] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, tuple[str, datetime]] = {}
        self.refresh_tokens: dict[str, RefreshRecord] = {}
        self.connections: list[dict[str, Any]] = []
        self.strict_refresh = False  # True: no 30-minute grace for a superseded refresh token
        self.refresh_count = 0
        self.idempotency: dict[tuple[str, str], StoredResponse] = {}
        self.throttles: dict[str, Throttle] = {}  # tenant id -> a limit it has hit (docs: §2.4)
        self.webhook_url = ""
        self.webhook_key = ""
        self.webhook_log: list[dict[str, Any]] = []
        self._sequence = 0
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._deliverer: threading.Thread | None = None

    def now(self) -> datetime:
        return self.core.clock.now()

    # -- organisations ------------------------------------------------------------------------
    def add_tenant(
        self,
        name: str,
        *,
        tenant_id: str = "",
        tenant_type: str = "ORGANISATION",
        currency: str = "NZD",
        country: str = "",
        region: str = "",
        time_zone: str = "",
    ) -> Ledger:
        """A new organisation in `country` (default NZ), `region` and `time_zone` (IANA, default Pacific/Auckland)."""
        if time_zone:
            try:
                ZoneInfo(time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {time_zone!r}") from None
        with self.lock:
            ledger = Ledger(
                tenant_id=tenant_id or new_id(),
                name=name,
                tenant_type=tenant_type,
                currency=currency,
                short_code=f"!{secrets.token_hex(3)}",
                country_code=(country or "NZ").upper(),
                region=region,
                time_zone=time_zone or "Pacific/Auckland",
            )
            self.ledgers[ledger.tenant_id] = ledger
            return ledger

    def throttled(self, tenant_id: str) -> tuple[str, int] | None:
        """(X-Rate-Limit-Problem, Retry-After seconds) while `tenant_id` is over a limit set by `throttle`."""
        throttle = self.throttles.get(tenant_id)
        if throttle is None:
            return None
        left = (throttle.until - self.now()).total_seconds()
        if left <= 0:
            del self.throttles[tenant_id]
            return None
        if throttle.times > 0:
            throttle.times -= 1
            if throttle.times == 0:
                del self.throttles[tenant_id]
        return throttle.problem, max(int(left + 0.999), 1)

    def add_user(self, email: str, given: str, family: str) -> User:
        user = User(new_id(), email, given, family)
        self.users[user.user_id] = user
        return user

    # -- OAuth --------------------------------------------------------------------------------
    def issue_tokens(self, grant: Grant, *, nonce: str = "", with_id_token: bool = True) -> dict[str, Any]:
        """A token response (payload xero_token_response.json shape): 30-minute access, rotating refresh."""
        now = self.now()
        access = self.access_token(grant, now)
        refresh = "xrt_" + secrets.token_urlsafe(32)
        self.access_tokens[access] = (grant.grant_id, now + ACCESS_TTL)
        self.refresh_tokens[refresh] = RefreshRecord(grant.grant_id, now)
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": " ".join(grant.scope),
        }
        if with_id_token and "openid" in grant.scope:
            body["id_token"] = self.id_token(grant, nonce, now)
        return body

    def access_token(self, grant: Grant, now: datetime) -> str:
        """An access token as Xero issues them: an RS256 JWT whose `authentication_event_id` names the consent
        (the `authEventId` of the connections it made; GET /connections?authEventId=… lists just those)."""
        user = self.users[grant.user_id]
        claims: dict[str, Any] = {
            "nbf": int(now.timestamp()),
            "exp": int((now + ACCESS_TTL).timestamp()),
            "iss": ISSUER,
            "aud": f"{ISSUER}/resources",
            "client_id": grant.client_id,
            "sub": user.user_id,
            "auth_time": int(now.timestamp()),
            "xero_userid": user.user_id,
            "global_session_id": grant.auth_event_id,
            "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id,
            "scope": list(grant.scope),
        }
        return sign_jwt(self.signing_key, self.key_id, claims)

    def id_token(self, grant: Grant, nonce: str, now: datetime) -> str:
        """An RS256 JWT signed with the emulator's key (`kid` in the header; public key at the JWKS URI)."""
        user = self.users[grant.user_id]
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": grant.client_id,
            "sub": user.user_id,
            "xero_userid": user.user_id,
            "email": user.email,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "preferred_username": user.email,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
            "auth_time": int(now.timestamp()),
            "global_session_id": grant.auth_event_id,
        }
        if nonce:
            claims["nonce"] = nonce
        return sign_jwt(self.signing_key, self.key_id, claims)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set with the public half of the signing key."""
        numbers = self.signing_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.key_id,
                    "e": _b64int(numbers.e),
                    "n": _b64int(numbers.n),
                }
            ]
        }

    def approve(self, client_id: str, tenants: list[str], scope: list[str], user_id: str = "") -> Grant:
        """A user consented for `tenants`: one grant, and a connection per tenant (docs/provider-api-facts.md §2.1)."""
        now = self.now()
        user_id = user_id or self.default_user.user_id
        grant = Grant(new_id(), client_id, user_id, scope, list(tenants), new_id())
        self.grants[grant.grant_id] = grant
        for tenant_id in tenants:
            ledger = self.ledgers[tenant_id]
            existing = next(
                (
                    c
                    for c in self.connections
                    if c["tenantId"] == tenant_id and c["_client"] == client_id and c["_user"] == user_id
                ),
                None,
            )
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f0")
            if existing:
                existing.update(authEventId=grant.auth_event_id, updatedDateUtc=stamp)
            else:
                self.connections.append(
                    {
                        "id": new_id(),
                        "authEventId": grant.auth_event_id,
                        "tenantId": tenant_id,
                        "tenantType": ledger.tenant_type,
                        "tenantName": ledger.name,
                        "createdDateUtc": stamp,
                        "updatedDateUtc": stamp,
                        "_client": client_id,
                        "_user": user_id,
                    }
                )
        return grant

    def grant_for_access(self, token: str) -> tuple[Grant | None, str]:
        """The live grant behind a bearer token, or (None, reason)."""
        entry = self.access_tokens.get(token)
        if entry is None:
            return None, "AuthenticationUnsuccessful"
        grant_id, expires_at = entry
        grant = self.grants.get(grant_id)
        if grant is None or grant.revoked:
            return None, "AuthenticationUnsuccessful"
        if self.now() >= expires_at:
            return None, f"TokenExpired: token expired at {expires_at.strftime('%m/%d/%Y %H:%M:%S')}"
        return grant, ""

    def connected(self, grant: Grant, tenant_id: str) -> bool:
        return any(
            c["tenantId"] == tenant_id and c["_client"] == grant.client_id and c["_user"] == grant.user_id
            for c in self.connections
        )

    def revoke_tenant(self, tenant_id: str) -> None:
        """Fault "revoke": every grant reaching `tenant_id` dies (its refresh tokens give invalid_grant)."""
        for grant in self.grants.values():
            if tenant_id in grant.tenants or not tenant_id:
                self.revoke_grant(grant)

    def revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        for record in self.refresh_tokens.values():
            if record.grant_id == grant.grant_id:
                record.revoked = True
        self.connections = [
            c for c in self.connections if not (c["_client"] == grant.client_id and c["_user"] == grant.user_id)
        ]

    # -- webhooks -----------------------------------------------------------------------------
    def drain_events(self) -> None:
        """Turn the ledgers' change records into one signed delivery (when a webhook URL is set)."""
        events = []
        now = self.now()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
        for ledger in self.ledgers.values():
            for category, resource_id, kind in ledger.events:
                plural = {"INVOICE": "Invoices", "CONTACT": "Contacts", "CREDITNOTE": "CreditNotes"}[category]
                events.append(
                    {
                        # Never to be fetched by Nudge (docs/design.md "Secrets"); kept in the real host's shape.
                        "resourceUrl": f"https://api.xero.com/api.xro/2.0/{plural}/{resource_id}",
                        "resourceId": resource_id,
                        "eventDateUtc": stamp,
                        "eventType": kind,
                        "eventCategory": category,
                        "tenantId": ledger.tenant_id,
                        "tenantType": ledger.tenant_type,
                    }
                )
            ledger.events.clear()
        if not events or not self.webhook_url:
            return
        first = self._sequence + 1
        self._sequence += len(events)
        body = {
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": self._sequence,
            "entropy": "".join(secrets.choice(string.ascii_uppercase) for _ in range(20)),
        }
        self._send(json.dumps(body).encode())

    def sign(self, body: bytes, key: str | None = None) -> str:
        """The x-xero-signature of `body` under `key` (default: the configured webhook key)."""
        return sign_webhook(body, key if key is not None else self.webhook_key)

    def _send(self, body: bytes) -> None:
        if self._deliverer is None or not self._deliverer.is_alive():
            self._deliverer = threading.Thread(target=self._deliver_loop, name="xero-webhooks", daemon=True)
            self._deliverer.start()
        self._outbox.put(body)

    def _deliver_loop(self) -> None:
        import requests

        while True:
            body = self._outbox.get()
            try:
                if body is None:
                    return
                status = 0
                try:
                    response = requests.post(
                        self.webhook_url,
                        data=body,
                        headers={"Content-Type": "application/json", "x-xero-signature": self.sign(body)},
                        timeout=5,
                    )
                    status = response.status_code
                except requests.RequestException:
                    status = 0
                with self.lock:
                    self.webhook_log.append({"body": json.loads(body), "status": status})
            finally:
                self._outbox.task_done()

    def flush_webhooks(self) -> None:
        """Wait until every queued delivery was attempted."""
        self._outbox.join()

    def intent_to_receive(self, url: str = "") -> dict[str, Any]:
        """Xero's validation run: well and badly signed empty deliveries (docs/provider-api-facts.md §2.6)."""
        import requests

        target = url or self.webhook_url
        attempts = []
        for correct in (True, False, True, False):
            body = json.dumps(
                {
                    "events": [],
                    "lastEventSequence": 0,
                    "firstEventSequence": 0,
                    "entropy": "".join(secrets.choice(string.ascii_uppercase) for _ in range(20)),
                }
            ).encode()
            signature = self.sign(body) if correct else self.sign(body, "not-" + self.webhook_key)
            try:
                response = requests.post(
                    target,
                    data=body,
                    headers={"Content-Type": "application/json", "x-xero-signature": signature},
                    timeout=5,
                )
                status, text = response.status_code, response.text
            except requests.RequestException:
                status, text = 0, ""
            expected = 200 if correct else 401
            ok = status == expected and (not correct or text == "")
            attempts.append({"signed_correctly": correct, "status": status, "ok": ok})
        return {"passed": all(a["ok"] for a in attempts), "attempts": attempts}

    def close(self) -> None:
        if self._deliverer is not None and self._deliverer.is_alive():
            self._outbox.put(None)
            self._deliverer.join(timeout=5)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def sign_jwt(key: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any], *, alg: str = "RS256") -> str:
    """A compact JWS over `claims` signed RS256 with `key` (tests also use it to forge tokens)."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def sign_webhook(body: bytes, key: str) -> str:
    """x-xero-signature: base64(HMAC-SHA256(raw body, webhook key)) (docs/provider-api-facts.md §2.6)."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
