"""Sign in / sign up with Xero: OpenID Connect ID-token verification.

`identify` is ProviderSpec.identify. The verification itself (RS256 only, JWKS of the configured identity
host, `iss`, `aud`, lifetime, nonce) is the provider-neutral `connector.identity.oidc`; this module only says
where Xero's keys are and who Xero's issuer is. No message quotes the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.identity.oidc import IssuerPolicy, display_name_of, verified_claims
from connector.ports import Identity, ProviderSettings, TokenSet
from providers.xero.constants import ID_TOKEN_LEEWAY, IDENTITY_TIMEOUT, ISSUER, JWKS_PATH, JWKS_URL, PROVIDER_KEY


def jwks_url(settings: ProviderSettings) -> str:
    """Where the identity host publishes its signing keys (the emulator's when `identity_base` is set)."""
    return f"{settings.identity_base.rstrip('/')}{JWKS_PATH}" if settings.identity_base else JWKS_URL


def issuer_policy(settings: ProviderSettings) -> IssuerPolicy:
    """What a Xero ID token must satisfy for this app (`oidc_issuer` overrides the issuer)."""
    return IssuerPolicy(
        provider=PROVIDER_KEY,
        display_name="Xero",
        issuer=str(settings.options.get("oidc_issuer") or ISSUER),
        jwks_url=jwks_url(settings),
        client_id=settings.client_id,
        leeway_s=ID_TOKEN_LEEWAY,
        timeout=(float(IDENTITY_TIMEOUT[0]), float(IDENTITY_TIMEOUT[1])),
    )


def identify(settings: ProviderSettings, tokens: TokenSet, nonce: str, now: datetime) -> Identity:
    """The Xero user behind `tokens`, from its ID token, verified as OpenID Connect requires (AuthError if not)."""
    policy = issuer_policy(settings)
    return _identity(policy, verified_claims(policy, tokens.id_token, nonce, now))


def _identity(policy: IssuerPolicy, claims: Mapping[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise policy.refuse("the ID token names no user")
    email = claims.get("email")
    return Identity(
        subject=subject,
        email=email if isinstance(email, str) else "",
        name=display_name_of(claims),
        email_verified=claims.get("email_verified") is True,
    )
