"""OpenID Connect against the emulator: discovery, JWKS, and `identify` refusing every forged ID token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.errors import AuthError
from connector.ports import Identity, ProviderSettings, TokenSet
from providers.xero import PROVIDER
from providers.xero.emulator import XeroEmulator
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ISSUER, sign_jwt
from providers.xero.openid import identify

NONCE = "n0nce-for-this-browser"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tokens(id_token: str) -> TokenSet:
    return TokenSet("at", "rt", datetime.now(UTC) + timedelta(minutes=30), id_token=id_token)


def _claims(now: datetime, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": DEFAULT_CLIENT_ID,
        "sub": "user-123",
        "email": "someone@example.com",
        "given_name": "Some",
        "family_name": "One",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "nonce": NONCE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(xero: XeroEmulator, claims: dict[str, Any]) -> str:
    return sign_jwt(xero.state.signing_key, xero.state.key_id, claims)


def test_discovery_and_jwks_describe_the_rs256_key(xero: XeroEmulator) -> None:
    discovery = requests.get(f"{xero.url}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == ISSUER
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert discovery["token_endpoint"] == f"{xero.url}/connect/token"
    assert discovery["authorization_endpoint"].startswith(xero.url)
    jwks = requests.get(discovery["jwks_uri"], timeout=10).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["kid"] == xero.state.key_id
    assert "d" not in key  # the public half only


def test_the_token_endpoints_id_token_verifies(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Id Org")
    body = xero.grant([tenant])
    header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["kid"] == xero.state.key_id
    identity = identify(settings, _tokens(body["id_token"]), "", datetime.now(UTC))
    user = xero.state.default_user
    assert identity == Identity(user.user_id, user.email, f"{user.given_name} {user.family_name}")
    assert PROVIDER.identify is identify


def test_a_good_token_gives_the_identity(xero: XeroEmulator, settings: ProviderSettings) -> None:
    now = datetime.now(UTC)
    identity = identify(settings, _tokens(_signed(xero, _claims(now))), NONCE, now)
    assert identity == Identity("user-123", "someone@example.com", "Some One")


def _forgeries(xero: XeroEmulator, now: datetime) -> dict[str, str]:
    claims = _claims(now)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": xero.state.key_id}).encode())
    hs_sig = hmac.new(DEFAULT_CLIENT_SECRET.encode(), f"{hs_header}.{payload}".encode(), hashlib.sha256).digest()
    good = _signed(xero, claims)
    head, _body, sig = good.split(".")
    tampered = _b64(json.dumps({**claims, "sub": "someone-else"}).encode())
    return {
        "wrong key": sign_jwt(other_key, xero.state.key_id, claims),
        "wrong key, other kid": sign_jwt(other_key, "attacker", claims),
        "alg none": f"{header_none}.{payload}.",
        "HS256 with the client secret": f"{hs_header}.{payload}.{_b64(hs_sig)}",
        "tampered claims": f"{head}.{tampered}.{sig}",
        "wrong aud": _signed(xero, _claims(now, aud="someone-elses-app")),
        "wrong iss": _signed(xero, _claims(now, iss="https://evil.example")),
        "expired": _signed(
            xero,
            _claims(
                now, iat=int((now - timedelta(hours=1)).timestamp()), exp=int((now - timedelta(minutes=10)).timestamp())
            ),
        ),
        "issued in the future": _signed(xero, _claims(now, iat=int((now + timedelta(hours=1)).timestamp()))),
        "wrong nonce": _signed(xero, _claims(now, nonce="another-browser")),
        "no nonce": _signed(xero, _claims(now, nonce=None)),
        "no sub": _signed(xero, _claims(now, sub=None)),
        "garbage": "not-a-jwt",
        "empty": "",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong key",
        "wrong key, other kid",
        "alg none",
        "HS256 with the client secret",
        "tampered claims",
        "wrong aud",
        "wrong iss",
        "expired",
        "issued in the future",
        "wrong nonce",
        "no nonce",
        "no sub",
        "garbage",
        "empty",
    ],
)
def test_forged_id_tokens_are_refused(xero: XeroEmulator, settings: ProviderSettings, case: str) -> None:
    now = datetime.now(UTC)
    token = _forgeries(xero, now)[case]
    with pytest.raises(AuthError) as caught:
        identify(settings, _tokens(token), NONCE, now)
    message = caught.value.user_message
    assert "could not be verified" in message
    if token:
        assert token not in message
        assert token.split(".")[0] not in message


def test_small_clock_skew_is_tolerated(xero: XeroEmulator, settings: ProviderSettings) -> None:
    now = datetime.now(UTC)
    token = _signed(xero, _claims(now, iat=int((now + timedelta(seconds=30)).timestamp())))
    assert identify(settings, _tokens(token), NONCE, now).subject == "user-123"
