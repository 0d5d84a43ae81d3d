"""Sign in / sign up with Intuit (OpenID Connect) for QuickBooks: the verified identity behind a consent.

`identify` is ProviderSpec.identify. Issuer, JWKS and userinfo endpoint come from the OpenID discovery
document of the configured environment (Intuit's, or the emulator's), the one intuit-oauth reads too;
`options.oidc_issuer` overrides the issuer. The ID token is verified by `connector.identity.oidc` (RS256
only, signature against the JWKS, `iss`, `aud`, lifetime, nonce). Intuit's ID token carries `sub` and
`realmid` but not always the email (its discovery document lists claims aud, exp, iat, iss, realmid, sub),
so the email, `emailVerified` and the name come from the userinfo endpoint when the token lacks them
(docs/signin.md). No message quotes a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from connector.errors import Transient
from connector.identity.oidc import IssuerPolicy, display_name_of, verified_claims
from connector.ports import Identity, ProviderSettings, TokenSet
from providers.quickbooks.constants import PROVIDER_KEY
from providers.quickbooks.oauth import discovery_document, discovery_url

USERINFO_TIMEOUT = (5.0, 30.0)


def issuer_policy(settings: ProviderSettings) -> IssuerPolicy:
    """What an Intuit ID token must satisfy for this app."""
    document = discovery_document(discovery_url(settings))
    return IssuerPolicy(
        provider=PROVIDER_KEY,
        display_name="Intuit",
        issuer=str(settings.options.get("oidc_issuer") or document["issuer"]),
        jwks_url=str(document["jwks_uri"]),
        client_id=settings.client_id,
    )


def identify(settings: ProviderSettings, tokens: TokenSet, nonce: str, now: datetime) -> Identity:
    """The Intuit user behind `tokens`, verified as OpenID Connect requires (AuthError if not)."""
    policy = issuer_policy(settings)
    claims = verified_claims(policy, tokens.id_token, nonce, now)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise policy.refuse("the ID token names no user")
    if not isinstance(claims.get("email"), str):
        profile = _userinfo(settings, tokens)
        if profile.get("sub") != subject:
            raise policy.refuse("Intuit's user information names another user")
        claims = {**_standard(profile), **claims}
    email = claims.get("email")
    return Identity(
        subject=subject,
        email=email.strip() if isinstance(email, str) else "",
        name=display_name_of(claims),
        email_verified=claims.get("email_verified") is True,
    )


def _standard(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Intuit's userinfo keys (camelCase) as the standard claims' names."""
    renamed = {"emailVerified": "email_verified", "givenName": "given_name", "familyName": "family_name"}
    return {renamed.get(key, key): value for key, value in profile.items()}


def _userinfo(settings: ProviderSettings, tokens: TokenSet) -> dict[str, Any]:
    """GET the userinfo endpoint with the access token (never following a redirect)."""
    url = str(discovery_document(discovery_url(settings))["userinfo_endpoint"])
    try:
        response = requests.get(
            url,
            headers={"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"},
            timeout=USERINFO_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise Transient(
            f"Intuit could not be reached for the user's details ({type(exc).__name__}).", provider=PROVIDER_KEY
        ) from None
    if response.status_code != 200:
        raise Transient(
            f"Intuit's user details could not be read (HTTP {response.status_code}).", provider=PROVIDER_KEY
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Transient("Intuit's user details were unreadable.", provider=PROVIDER_KEY)
    return body
