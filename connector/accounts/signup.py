"""Sign up / sign in with a provider through OpenID Connect ("Sign up with Xero"; docs/design.md "Web (Flask)").

`begin_signup` is `begin_connect` plus an OIDC `nonce`. The callback is finished by `complete_signup`
(a new user without a password, an organization named after the first organisation consented, the
owner membership and one connection per organisation, in one transaction) or `complete_signin` (finds
the user by (provider, sub); creates nothing). The ID token is verified by the provider's `identify`
before anything is read from it. An email that already belongs to a Nudge account is refused: an
identity is never attached silently to an existing account.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError

from connector.config import Settings
from connector.connections.connect import ConnectedFile, ConnectError, begin_connect, store_connections
from connector.domain.model import ConnectionStatus, Role
from connector.errors import ProviderError
from connector.library.starter import ensure_library
from connector.ports import Identity, ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store
from connector.vault.keyring import Vault

log = logging.getLogger(__name__)

SIGN_IN_SCOPES = ("openid", "profile", "email")  # identity only: no organisation is picked or connected


class SignupError(ConnectError):
    """Sign-up or sign-in through a provider cannot be completed; nothing was created."""


class AccountExists(SignupError):
    """The provider's email already belongs to a Nudge account: sign in first, then connect."""


@dataclass(frozen=True)
class SignupRequest:
    """Where to send the visitor, and what the session must remember until the callback."""

    url: str
    state: str
    code_verifier: str
    nonce: str


@dataclass(frozen=True)
class SignupResult:
    """What a sign-up or sign-in did: the user, their organization and the files connected for it."""

    user_id: int
    org_id: int | None
    org_name: str
    connections: list[ConnectedFile]
    created: bool  # False: the identity already had a user, who is signed in and nothing was created


def supports_signup(spec: ProviderSpec) -> bool:
    """True when the provider offers sign-in with its identity (an ID token) over PKCE."""
    return spec.identify is not None and spec.supports_pkce


def begin_signup(spec: ProviderSpec, settings: ProviderSettings, *, sign_in_only: bool = False) -> SignupRequest:
    """A fresh state, PKCE verifier and nonce; the authorize URL (identity scopes only for `sign_in_only`)."""
    if not supports_signup(spec):
        raise SignupError(f"{spec.display_name} does not offer sign-up")
    if sign_in_only:
        settings = replace(settings, scopes=SIGN_IN_SCOPES)
    request = begin_connect(spec, settings)
    nonce = secrets.token_urlsafe(32)
    separator = "&" if "?" in request.url else "?"
    url = f"{request.url}{separator}{urlencode({'nonce': nonce})}"
    return SignupRequest(url, request.state, request.code_verifier, nonce)


def _verified(
    spec: ProviderSpec,
    settings: ProviderSettings,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    nonce: str,
    now: datetime,
) -> tuple[Identity, TokenSet]:
    """The callback's checks (as `complete_connect`), the code exchange and the verified identity."""
    name = spec.display_name
    if spec.identify is None:
        raise SignupError(f"{name} does not offer sign-up")
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        raise SignupError(f"{name} did not grant access ({reason}); nothing was created")
    state = params.get("state", "")
    if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise SignupError(f"the {name} sign-in did not match this browser session (state mismatch); start again")
    if not params.get("code"):
        raise SignupError(f"{name} returned no authorization code; start again")
    if not nonce:
        raise SignupError(f"the {name} sign-in did not start in this browser session; start again")
    try:
        tokens = spec.exchange_code(settings, params, code_verifier, now)
        identity = spec.identify(settings, tokens, nonce, now)
    except ProviderError as exc:
        raise SignupError(f"signing in with {name} failed: {exc.user_message}") from exc
    return identity, tokens


def complete_signup(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    nonce: str,
    now: datetime,
    *,
    starter: Settings | None = None,
) -> SignupResult:
    """Finish "Sign up with <provider>": verify, then create user, organization, owner membership and connections;
    the organization's library is seeded from `starter` (the install's settings) when given."""
    name = spec.display_name
    identity, tokens = _verified(spec, settings, params, expected_state, code_verifier, nonce, now)
    existing, refusal = _existing_or_refusal(store, spec, identity)
    if existing is not None or refusal is not None:
        # Nothing of this consent is kept: give back what it granted instead of dropping live tokens.
        release_consent(store, spec, settings, params, tokens)
        if refusal is not None:
            raise refusal
    if existing is not None:  # the identity already has a user: signed in, nothing created
        return SignupResult(existing, None, "", [], created=False)
    try:
        files = spec.connect(settings, params, tokens)
    except ProviderError as exc:
        raise SignupError(f"connecting to {name} failed: {exc.user_message}") from exc
    if not files:
        raise SignupError(f"{name} named no organisation to connect; nothing was created")
    org_name = (files[0].name or "").strip() or f"{identity.name or identity.email}'s organization"
    try:
        with store.unit_of_work() as uow:
            user = uow.users.add_external(identity.email, identity.name, spec.key, identity.subject)
            actor = f"user:{user.id}"
            organization = uow.organizations.add(org_name[:200])
            uow.memberships.add(user.id, organization.id, Role.OWNER)
            uow.activities.record(organization.id, "organization.created", organization.name, actor=actor, at=now)
            results = store_connections(uow, vault, spec.key, organization.id, files, tokens, now, actor=actor)
            if starter is not None:
                ensure_library(uow, organization.id, starter, now)
            result = SignupResult(user.id, organization.id, organization.name, results, created=True)
            uow.commit()
    except ValueError as exc:  # taken email or identity (checked above; a concurrent sign-up got there first)
        raise SignupError(f"{exc}; sign in instead. Nothing was created") from None
    except IntegrityError:
        raise SignupError(f"this {name} user or email already has a Nudge account; sign in instead") from None
    return result


def _existing_or_refusal(store: Store, spec: ProviderSpec, identity: Identity) -> tuple[int | None, SignupError | None]:
    """The id of the user this identity already has (None: a new one), or why the sign-up is refused."""
    name = spec.display_name
    with store.unit_of_work() as uow:
        existing = uow.users.by_identity(spec.key, identity.subject)
        if existing is not None:
            if not existing.is_active:
                return existing.id, SignupError("this Nudge account is deactivated; ask an owner of your organization")
            return existing.id, None
        if not identity.email:
            return None, SignupError(
                f"{name} did not share an email address (the email scope is needed); nothing was created"
            )
        if uow.users.by_email(identity.email) is not None:
            return None, AccountExists(
                f"a Nudge account with the email {identity.email} already exists. Sign in to it with your "
                f"password first, then connect {name} from your dashboard; nothing was created"
            )
    return None, None


def release_consent(
    store: Store, spec: ProviderSpec, settings: ProviderSettings, params: Mapping[str, str], tokens: TokenSet
) -> None:
    """End what a consent granted when Nudge keeps none of it (best effort; failures are logged, not raised).

    With `disconnect_tenants` (Xero) only the organisations of THIS consent that no live Nudge connection
    uses are disconnected — revoking the refresh token would cut every connection of the provider user,
    the ones Nudge does use included. Other providers revoke the grant. Identity-only consents hold nothing.
    """
    if set(tokens.scope) <= set(SIGN_IN_SCOPES) and not tokens.refresh_token:
        return
    try:
        if spec.disconnect_tenants is None:
            spec.revoke(settings, tokens)
            return
        files = spec.connect(settings, params, tokens)
        with store.unit_of_work() as uow:
            in_use = {
                info.tenant_id
                for info in files
                for connection in uow.connections.with_tenant(spec.key, info.tenant_id)
                if connection.status != ConnectionStatus.DISCONNECTED.value
            }
        spec.disconnect_tenants(settings, tokens, [info.tenant_id for info in files if info.tenant_id not in in_use])
    except ProviderError as exc:
        log.warning("could not give back an unused %s consent: %s", spec.display_name, exc.user_message)


def complete_signin(
    store: Store,
    spec: ProviderSpec,
    settings: ProviderSettings,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    nonce: str,
    now: datetime,
) -> int:
    """Finish "Sign in with <provider>": the id of the user with this (provider, sub); creates nothing."""
    name = spec.display_name
    identity, _tokens = _verified(spec, settings, params, expected_state, code_verifier, nonce, now)
    with store.unit_of_work() as uow:
        user = uow.users.by_identity(spec.key, identity.subject)
        if user is None:
            raise SignupError(
                f"no Nudge account signs in with this {name} user. Sign up with {name} first, "
                "or sign in with your email and password"
            )
        if not user.is_active:
            raise SignupError("this Nudge account is deactivated; ask an owner of your organization")
        return user.id
