"""Sign in with Intuit against the QuickBooks emulator: discovery, JWKS, PKCE and `identify` refusing forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.errors import AuthError, ProviderError
from connector.ports import Identity, ProviderSettings, TokenSet
from providers.quickbooks import PROVIDER, oauth
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle
from providers.quickbooks.emulator.auth import ACCOUNTING_SCOPE, ISSUER, s256, sign_jwt
from providers.quickbooks.openid import identify

NONCE = "n0nce-for-this-browser"
SCOPES = (ACCOUNTING_SCOPE, "openid", "profile", "email")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tokens(id_token: str, access_token: str = "at") -> TokenSet:
    return TokenSet(access_token, "rt", datetime.now(UTC) + timedelta(minutes=30), id_token=id_token)


def _claims(now: datetime, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [DEFAULT_CLIENT_ID],
        "sub": "intuit-user-123",
        "email": "someone@example.com",
        "email_verified": True,
        "given_name": "Some",
        "family_name": "One",
        "realmid": "9130350000000001",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "nonce": NONCE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(qbo: EmulatorHandle, claims: dict[str, Any]) -> str:
    return sign_jwt(qbo.emulator.oauth.signing_key, qbo.emulator.oauth.key_id, claims)


def _consented_tokens(qbo: EmulatorHandle, settings: ProviderSettings, realm: str, **code: Any) -> TokenSet:
    """The tokens of a consent at the emulator (code issued as the consent page would), exchanged by Nudge."""
    code_value = qbo.emulator.oauth.issue_code(realm, DEFAULT_CLIENT_ID, SCOPES, settings.redirect_uri, **code)
    return oauth.exchange_code(settings, {"code": code_value, "realmId": realm}, "", datetime.now(UTC))


def test_discovery_and_jwks_describe_the_rs256_key(qbo: EmulatorHandle) -> None:
    discovery = requests.get(qbo.discovery_url, timeout=10).json()
    assert discovery["issuer"] == ISSUER == "https://oauth.platform.intuit.com/op/v1"
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert discovery["userinfo_endpoint"] == f"{qbo.url}/v1/openid_connect/userinfo"
    (key,) = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert (key["kty"], key["alg"], key["kid"]) == ("RSA", "RS256", qbo.emulator.oauth.key_id)
    assert "d" not in key  # the public half only


def test_a_consents_id_token_verifies_with_the_chosen_user_and_realm(
    qbo: EmulatorHandle, settings: ProviderSettings
) -> None:
    realm = qbo.store.add_company("Id Co").realm
    user = qbo.emulator.oauth.add_user("picked@example.com", "Pia", "Picked")
    tokens = _consented_tokens(qbo, settings, realm, user=user.sub, nonce=NONCE)
    header = json.loads(base64.urlsafe_b64decode(tokens.id_token.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "kid": qbo.emulator.oauth.key_id, "typ": "JWT"}
    claims = json.loads(base64.urlsafe_b64decode(tokens.id_token.split(".")[1] + "=="))
    assert claims["realmid"] == realm
    assert claims["nonce"] == NONCE
    identity = identify(settings, tokens, NONCE, datetime.now(UTC))
    assert identity == Identity(user.sub, "picked@example.com", "Pia Picked", email_verified=True)
    assert PROVIDER.identify is identify
    assert PROVIDER.supports_pkce


def test_the_email_comes_from_userinfo_when_the_token_lacks_it(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    realm = qbo.store.add_company("Userinfo Co").realm
    user = qbo.emulator.oauth.add_user("fromuserinfo@example.com", "Uma", "Info", email_verified=False)
    issued = _consented_tokens(qbo, settings, realm, user=user.sub, nonce=NONCE)
    now = datetime.now(UTC)
    bare = _signed(qbo, _claims(now, sub=user.sub, email=None, email_verified=None, given_name=None, family_name=None))
    identity = identify(settings, _tokens(bare, issued.access_token), NONCE, now)
    assert identity == Identity(user.sub, "fromuserinfo@example.com", "Uma Info", email_verified=False)
    with pytest.raises(AuthError, match="names another user"):
        identify(settings, _tokens(_signed(qbo, _claims(now, email=None)), issued.access_token), NONCE, now)


def test_pkce_s256_is_sent_and_checked(qbo: EmulatorHandle, settings: ProviderSettings) -> None:
    url = PROVIDER.authorization_url(settings, "state-1", s256("the-verifier"))
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge"] == [s256("the-verifier")]
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) == set(SCOPES)
    realm = qbo.store.add_company("Pkce Co").realm
    challenge = {"challenge": s256("the-verifier"), "challenge_method": "S256"}
    for wrong in ("", "another-verifier"):
        code = qbo.emulator.oauth.issue_code(realm, DEFAULT_CLIENT_ID, SCOPES, settings.redirect_uri, **challenge)
        with pytest.raises(ProviderError):
            oauth.exchange_code(settings, {"code": code, "realmId": realm}, wrong, datetime.now(UTC))
    code = qbo.emulator.oauth.issue_code(realm, DEFAULT_CLIENT_ID, SCOPES, settings.redirect_uri, **challenge)
    tokens = oauth.exchange_code(settings, {"code": code, "realmId": realm}, "the-verifier", datetime.now(UTC))
    assert tokens.access_token


def _forgeries(qbo: EmulatorHandle, now: datetime) -> dict[str, str]:
    claims = _claims(now)
    key_id = qbo.emulator.oauth.key_id
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    payload = _b64(json.dumps(claims).encode())
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id}).encode())
    hs_sig = hmac.new(DEFAULT_CLIENT_SECRET.encode(), f"{hs_header}.{payload}".encode(), hashlib.sha256).digest()
    head, _body, sig = _signed(qbo, claims).split(".")
    tampered = _b64(json.dumps({**claims, "sub": "someone-else"}).encode())
    long_ago = now - timedelta(hours=2)
    return {
        "wrong signature (another key)": sign_jwt(other_key, key_id, claims),
        "tampered claims": f"{head}.{tampered}.{sig}",
        "wrong aud": _signed(qbo, _claims(now, aud=["someone-elses-app"])),
        "wrong iss": _signed(qbo, _claims(now, iss="https://evil.example")),
        "expired": _signed(
            qbo,
            _claims(now, iat=int(long_ago.timestamp()), exp=int((long_ago + timedelta(hours=1)).timestamp())),
        ),
        "alg none": f"{header_none}.{payload}.",
        "HS256 with the client secret": f"{hs_header}.{payload}.{_b64(hs_sig)}",
        "wrong nonce": _signed(qbo, _claims(now, nonce="another-browser")),
        "no nonce": _signed(qbo, _claims(now, nonce=None)),
        "garbage": "not-a-jwt",
        "empty": "",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong signature (another key)",
        "tampered claims",
        "wrong aud",
        "wrong iss",
        "expired",
        "alg none",
        "HS256 with the client secret",
        "wrong nonce",
        "no nonce",
        "garbage",
        "empty",
    ],
)
def test_forged_id_tokens_are_refused(qbo: EmulatorHandle, settings: ProviderSettings, case: str) -> None:
    now = datetime.now(UTC)
    token = _forgeries(qbo, now)[case]
    with pytest.raises(AuthError) as caught:
        identify(settings, _tokens(token), NONCE, now)
    message = caught.value.user_message
    assert message.startswith("Intuit's sign-in could not be verified (")
    if token:
        assert token not in message
        assert token.split(".")[0] not in message
