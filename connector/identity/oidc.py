"""OpenID Connect ID-token verification, provider-neutral (docs/signin.md).

A provider's `identify` describes its identity host in an `IssuerPolicy` (issuer, JWKS URL, the client id
that must be the audience) and calls `verified_claims`. Nothing in the token is trusted until its RS256
signature matches a key of that JWKS; only then are `iss`, `aud` / `azp`, the lifetime (`exp`, `iat`,
`nbf`, with leeway) and the `nonce` checked. `alg: none`, HS256 (the client-secret confusion attack) and
every other algorithm are refused. No message quotes the token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connector.errors import AuthError, Transient

DEFAULT_LEEWAY_S = 120  # seconds of clock skew tolerated on exp / iat / nbf
DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read: the JWKS fetch


@dataclass(frozen=True)
class IssuerPolicy:
    """What an ID token must satisfy for one provider: who issues it, where its keys are, who it is for."""

    provider: str  # the provider key, for errors
    display_name: str  # "Xero", "Intuit": how messages name the identity host
    issuer: str
    jwks_url: str
    client_id: str
    leeway_s: int = DEFAULT_LEEWAY_S
    timeout: tuple[float, float] = DEFAULT_TIMEOUT

    def refuse(self, reason: str) -> AuthError:
        """The error for a token that fails a check (`reason` never quotes the token)."""
        return AuthError(
            f"{self.display_name}'s sign-in could not be verified ({reason}); start again.", provider=self.provider
        )


def unb64(text: str) -> bytes:
    """Base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verified_claims(policy: IssuerPolicy, token: str, nonce: str, now: datetime) -> dict[str, Any]:
    """The claims of `token` once signature, issuer, audience, lifetime and nonce all check out; else AuthError."""
    claims = _signed_claims(policy, token)
    _check_issuer_and_audience(policy, claims)
    _check_lifetime(policy, claims, now)
    _check_nonce(policy, claims, nonce)
    return claims


def claimed_nonce(token: str) -> str:
    """The `nonce` of an ID token WITHOUT verifying it (only for recording a nonce already verified)."""
    try:
        claims = json.loads(unb64(token.split(".")[1]))
    except (ValueError, IndexError, binascii.Error):
        return ""
    value = claims.get("nonce") if isinstance(claims, dict) else None
    return value if isinstance(value, str) else ""


def _signed_claims(policy: IssuerPolicy, token: str) -> dict[str, Any]:
    name = policy.display_name
    if not token:
        raise policy.refuse(f"{name} sent no ID token; the openid scope is needed")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise policy.refuse("the ID token is malformed")
    try:
        header = json.loads(unb64(parts[0]))
        claims = json.loads(unb64(parts[1]))
        signature = unb64(parts[2])
    except (ValueError, binascii.Error):
        raise policy.refuse("the ID token is malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise policy.refuse("the ID token is malformed")
    if header.get("alg") != "RS256":
        raise policy.refuse("the ID token is not signed with RS256")
    kid = header.get("kid") or ""
    if not isinstance(kid, str):
        raise policy.refuse("the ID token names no valid key")
    if not signature or not _signature_ok(policy, kid, f"{parts[0]}.{parts[1]}".encode(), signature):
        raise policy.refuse(f"the ID token's signature does not match {name}'s keys")
    return claims


def _fetch_jwks(policy: IssuerPolicy) -> list[dict[str, Any]]:
    name = policy.display_name
    try:
        # Never follows a redirect: the keys come from the configured host or not at all.
        response = requests.get(
            policy.jwks_url, headers={"Accept": "application/json"}, timeout=policy.timeout, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise Transient(
            f"{name} could not be reached to check the sign-in ({type(exc).__name__}).", provider=policy.provider
        ) from None
    if response.status_code != 200:
        raise Transient(
            f"{name}'s signing keys could not be read (HTTP {response.status_code}).", provider=policy.provider
        )
    try:
        keys = response.json().get("keys")
    except (ValueError, AttributeError):
        keys = None
    if not isinstance(keys, list):
        raise Transient(f"{name}'s signing keys were unreadable.", provider=policy.provider)
    return [key for key in keys if isinstance(key, dict)]


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey | None:
    try:
        e = int.from_bytes(unb64(str(jwk["e"])), "big")
        n = int.from_bytes(unb64(str(jwk["n"])), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError, binascii.Error):
        return None


def _signature_ok(policy: IssuerPolicy, kid: str, signing_input: bytes, signature: bytes) -> bool:
    candidates = [
        jwk
        for jwk in _fetch_jwks(policy)
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


def _int_claim(policy: IssuerPolicy, claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise policy.refuse(f"malformed {name}")
    return int(value)


def _check_issuer_and_audience(policy: IssuerPolicy, claims: Mapping[str, Any]) -> None:
    if claims.get("iss") != policy.issuer:
        raise policy.refuse("the ID token comes from another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not policy.client_id or policy.client_id not in audiences:
        raise policy.refuse("the ID token was issued to another application")
    if len(audiences) > 1 and claims.get("azp") != policy.client_id:
        raise policy.refuse("the ID token was issued to another application")


def _check_lifetime(policy: IssuerPolicy, claims: Mapping[str, Any], now: datetime) -> None:
    moment = now.timestamp()
    expires = _int_claim(policy, claims, "exp")
    issued = _int_claim(policy, claims, "iat")
    not_before = _int_claim(policy, claims, "nbf")
    if expires is None or issued is None:
        raise policy.refuse("the ID token has no lifetime")
    if expires + policy.leeway_s < moment:
        raise policy.refuse("the ID token has expired")
    if issued - policy.leeway_s > moment or (not_before is not None and not_before - policy.leeway_s > moment):
        raise policy.refuse("the ID token is not valid yet")


def _check_nonce(policy: IssuerPolicy, claims: Mapping[str, Any], nonce: str) -> None:
    value = claims.get("nonce")
    if (nonce or value is not None) and (
        not isinstance(value, str) or not hmac.compare_digest(value.encode(), nonce.encode())
    ):
        raise policy.refuse("the sign-in does not belong to this browser session (nonce mismatch)")


def display_name_of(claims: Mapping[str, Any]) -> str:
    """`name`, else `given_name family_name` (standard claims), else ''."""
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = (claims.get("given_name"), claims.get("family_name"))
    return " ".join(str(part) for part in parts if isinstance(part, str) and part)
