"""Sign in / sign up with Xero: OpenID Connect ID-token verification (JWKS fetch, RS256, claims).

`identify` is ProviderSpec.identify. It trusts nothing in the token until its RS256 signature
matches a key from the JWKS of the configured identity host; only then are `iss`, `aud`, the
lifetime and the nonce checked. No message quotes the token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connector.errors import AuthError, Transient
from connector.ports import Identity, ProviderSettings, TokenSet
from providers.xero.constants import ID_TOKEN_LEEWAY, IDENTITY_TIMEOUT, ISSUER, JWKS_PATH, JWKS_URL, PROVIDER_KEY


def jwks_url(settings: ProviderSettings) -> str:
    """Where the identity host publishes its signing keys (the emulator's when `identity_base` is set)."""
    return f"{settings.identity_base.rstrip('/')}{JWKS_PATH}" if settings.identity_base else JWKS_URL


def _refuse(reason: str) -> AuthError:
    return AuthError(f"Xero's sign-in could not be verified ({reason}); start again.", provider=PROVIDER_KEY)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fetch_jwks(settings: ProviderSettings) -> list[dict[str, Any]]:
    try:
        response = requests.get(
            jwks_url(settings), headers={"Accept": "application/json"}, timeout=IDENTITY_TIMEOUT, allow_redirects=False
        )
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
    claims = _verified_claims(settings, tokens.id_token)
    _check_issuer_and_audience(settings, claims)
    _check_lifetime(claims, now)
    _check_nonce(claims, nonce)
    return _identity(claims)


def _verified_claims(settings: ProviderSettings, token: str) -> dict[str, Any]:
    """The claims of an ID token whose RS256 signature matches one of Xero's keys."""
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
    return claims


def _check_issuer_and_audience(settings: ProviderSettings, claims: Mapping[str, Any]) -> None:
    issuer = str(settings.options.get("oidc_issuer") or ISSUER)
    if claims.get("iss") != issuer:
        raise _refuse("the ID token comes from another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.client_id not in audiences:
        raise _refuse("the ID token was issued to another application")
    if len(audiences) > 1 and claims.get("azp") != settings.client_id:
        raise _refuse("the ID token was issued to another application")


def _check_lifetime(claims: Mapping[str, Any], now: datetime) -> None:
    moment = now.timestamp()
    expires, issued, not_before = _int_claim(claims, "exp"), _int_claim(claims, "iat"), _int_claim(claims, "nbf")
    if expires is None or issued is None:
        raise _refuse("the ID token has no lifetime")
    if expires + ID_TOKEN_LEEWAY < moment:
        raise _refuse("the ID token has expired")
    if issued - ID_TOKEN_LEEWAY > moment or (not_before is not None and not_before - ID_TOKEN_LEEWAY > moment):
        raise _refuse("the ID token is not valid yet")


def _check_nonce(claims: Mapping[str, Any], nonce: str) -> None:
    claimed_nonce = claims.get("nonce")
    if (nonce or claimed_nonce is not None) and (
        not isinstance(claimed_nonce, str) or not hmac.compare_digest(claimed_nonce.encode(), nonce.encode())
    ):
        raise _refuse("the sign-in does not belong to this browser session (nonce mismatch)")


def _identity(claims: Mapping[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _refuse("the ID token names no user")
    email = claims.get("email")
    name = claims.get("name") or " ".join(
        str(part) for part in (claims.get("given_name"), claims.get("family_name")) if isinstance(part, str) and part
    )
    return Identity(subject=subject, email=email if isinstance(email, str) else "", name=str(name or ""))
