"""Sign up / sign in with a provider through OpenID Connect ("Sign up with Xero"; docs/design.md "Web (Flask)").

`begin_signup` is `begin_connect` plus an OIDC `nonce`. The callback is finished by `complete_signup`
(a new user without a password, an organization named after the first organisation consented, the
owner membership and one connection per organisation, in one transaction) or `complete_signin` (finds
the user by (provider, sub); creates nothing) or `complete_identity` (an invitation's sign-in: the user for
the identity, created without an organization when new). The ID token is verified by the provider's
`identify` before anything is read from it, and its nonce is single use (`oidc_nonces`, hashed): a token
presented again, even in a new round trip, is refused.

Users are found by (provider, sub) first (`user_identities`, several per user), then by email. An identity is
never attached silently to an existing account: when the provider VERIFIED the email of an existing account,
`LinkRequired` asks the web layer to have the user prove the account is theirs (its password) before
`link_identity`; an unverified email is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError

from connector.config import Settings
from connector.connections.connect import ConnectedFile, ConnectError, begin_connect, store_connections
from connector.domain.model import ConnectionStatus, Role
from connector.errors import ProviderError
from connector.library.starter import ensure_library
from connector.ports import Identity, ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store, UnitOfWork
from connector.storage.repositories import OidcNonces, UserIdentities
from connector.storage.tables import User
from connector.vault.keyring import Vault

log = logging.getLogger(__name__)

SIGN_IN_SCOPES = ("openid", "profile", "email")  # identity only: no organisation is picked or connected
# How long a used nonce is remembered: longer than any ID token lives (Xero 5 minutes, Intuit 1 hour), so a
# token cannot outlive the record of its nonce.
NONCE_TTL = timedelta(hours=24)


class SignupError(ConnectError):
    """Sign-up or sign-in through a provider cannot be completed; nothing was created."""


class AccountExists(SignupError):
    """The provider's email already belongs to a Nudge account: sign in first, then connect."""


class ReplayedSignIn(SignupError):
    """The ID token's nonce was used before: the same sign-in presented twice."""


@dataclass(frozen=True)
class PendingLink:
    """A verified identity whose email belongs to an existing account, waiting for that account's password."""

    provider: str
    subject: str
    email: str
    name: str
    user_id: int  # the account the verified email belongs to


class LinkRequired(SignupError):
    """The provider verified an email that belongs to an existing Nudge account: link only after proof."""

    def __init__(self, message: str, link: PendingLink) -> None:
        super().__init__(message)
        self.link = link


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
    elif settings.scopes and not set(SIGN_IN_SCOPES) <= set(settings.scopes):
        # One consent for both: the configured (accounting) scopes plus the identity ones.
        missing = tuple(scope for scope in SIGN_IN_SCOPES if scope not in settings.scopes)
        settings = replace(settings, scopes=(*settings.scopes, *missing))
    request = begin_connect(spec, settings)
    nonce = secrets.token_urlsafe(32)
    separator = "&" if "?" in request.url else "?"
    url = f"{request.url}{separator}{urlencode({'nonce': nonce})}"
    return SignupRequest(url, request.state, request.code_verifier, nonce)


def _verified(
    store: Store,
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
    _consume_nonce(store, spec, nonce, now)
    return identity, tokens


def _consume_nonce(store: Store, spec: ProviderSpec, nonce: str, now: datetime) -> None:
    """Record the verified ID token's nonce as used; ReplayedSignIn when it was used before."""
    digest = hashlib.sha256(f"{spec.key}:{nonce}".encode()).hexdigest()
    try:
        with store.unit_of_work() as uow:
            fresh = OidcNonces(uow.session).consume(digest, spec.key, now + NONCE_TTL, now)
            uow.commit()
    except IntegrityError:  # a concurrent use of the same nonce committed first
        fresh = False
    if not fresh:
        raise ReplayedSignIn(
            f"this {spec.display_name} sign-in was already used (its ID token was presented before); "
            "start again. Nothing was created"
        )


def identities(uow: UnitOfWork) -> UserIdentities:
    """The user-identities repository over this unit of work."""
    return UserIdentities(uow.session)


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
    identity, tokens = _verified(store, spec, settings, params, expected_state, code_verifier, nonce, now)
    existing, refusal = _existing_or_refusal(store, spec, identity)
    if existing is not None or refusal is not None:
        # Nothing of this consent is kept: give back what it granted instead of dropping live tokens.
        tenants = release_consent(store, spec, settings, params, tokens)
        if refusal is not None:
            raise refusal
    if existing is not None:  # the identity already has a user: signed in, nothing created
        org_id = landing_organization(store, existing, spec.key, tenants)
        return SignupResult(existing, org_id, "", [], created=False)
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
    """The id of the user this identity already has (None: a new one), or why the sign-up stops here."""
    name = spec.display_name
    with store.unit_of_work() as uow:
        existing = identities(uow).user_for(spec.key, identity.subject)
        if existing is not None:
            if not existing.is_active:
                return existing.id, SignupError("this Nudge account is deactivated; ask an owner of your organization")
            return existing.id, None
        if not identity.email:
            return None, SignupError(
                f"{name} did not share an email address (the email scope is needed); nothing was created"
            )
        owner = uow.users.by_email(identity.email)
        if owner is not None:
            return None, _link_or_refuse(spec, identity, owner)
    return None, None


def _link_or_refuse(spec: ProviderSpec, identity: Identity, owner: User) -> SignupError:
    """An existing account has the identity's email: offer linking when the provider verified it, else refuse."""
    name = spec.display_name
    if not owner.is_active:
        return SignupError("this Nudge account is deactivated; ask an owner of your organization")
    if identity.email_verified:
        link = PendingLink(spec.key, identity.subject, identity.email, identity.name, owner.id)
        return LinkRequired(f"a Nudge account with the email {identity.email} already exists", link)
    return AccountExists(
        f"a Nudge account with the email {identity.email} already exists. Sign in to it with your "
        f"password first, then connect {name} from your dashboard; nothing was created"
    )


def link_identity(store: Store, link: PendingLink, user_id: int, now: datetime) -> None:
    """Attach the pending identity to `user_id` (who proved the account is theirs); SignupError if it cannot be."""
    if user_id != link.user_id:
        raise SignupError("this sign-in belongs to another Nudge account; nothing was linked")
    try:
        with store.unit_of_work() as uow:
            user = uow.users.get(user_id)
            if user is None or not user.is_active:
                raise SignupError("this Nudge account cannot sign in; nothing was linked")
            identities(uow).link(user_id, link.provider, link.subject, link.email)
            for org, _role in uow.organizations.for_user(user_id):
                uow.activities.record(
                    org.id,
                    "user.identity_linked",
                    f"{link.provider} sign-in linked to {user.email}",
                    actor=f"user:{user_id}",
                    at=now,
                )
            uow.commit()
    except (ValueError, IntegrityError):
        raise SignupError(f"this {link.provider} identity already signs in to a Nudge account") from None


def release_consent(
    store: Store, spec: ProviderSpec, settings: ProviderSettings, params: Mapping[str, str], tokens: TokenSet
) -> list[str]:
    """End what a consent granted when Nudge keeps none of it (best effort; failures are logged, not raised);
    the tenant ids the consent named (for landing the user on the organization holding one).

    Only the files of THIS consent that no live Nudge connection uses are given back: with
    `disconnect_tenants` (Xero) those organisations are disconnected; other providers (QuickBooks) revoke the
    grant only when no live connection uses its file, since Intuit's revocation ends the app's access to the
    company, the connection Nudge does use included. Identity-only consents hold nothing.
    """
    if set(tokens.scope) <= set(SIGN_IN_SCOPES) and not tokens.refresh_token:
        return []
    tenants: list[str] = []
    try:
        files = spec.connect(settings, params, tokens)
        tenants = [info.tenant_id for info in files]
        with store.unit_of_work() as uow:
            in_use = {
                tenant
                for tenant in tenants
                for connection in uow.connections.with_tenant(spec.key, tenant)
                if connection.status != ConnectionStatus.DISCONNECTED.value
            }
        unused = [tenant for tenant in tenants if tenant not in in_use]
        if spec.disconnect_tenants is not None:
            spec.disconnect_tenants(settings, tokens, unused)
        elif not in_use:
            spec.revoke(settings, tokens)
    except ProviderError as exc:
        log.warning("could not give back an unused %s consent: %s", spec.display_name, exc.user_message)
    return tenants


def landing_organization(store: Store, user_id: int, provider: str, tenants: list[str]) -> int | None:
    """The user's organization holding a connection to one of `tenants` (the app store's launch names the file),
    else their first organization, else None."""
    with store.unit_of_work() as uow:
        organizations = [org.id for org, _role in uow.organizations.for_user(user_id)]
        for tenant in tenants:
            for connection in uow.connections.with_tenant(provider, tenant):
                if connection.organization_id in organizations:
                    return connection.organization_id
    return organizations[0] if organizations else None


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
    identity, _tokens = _verified(store, spec, settings, params, expected_state, code_verifier, nonce, now)
    existing, refusal = _existing_or_refusal(store, spec, identity)
    if isinstance(refusal, LinkRequired):
        raise refusal
    if existing is None:
        raise SignupError(
            f"no Nudge account signs in with this {name} user. Sign up with {name} first, "
            "or sign in with your email and password"
        )
    if refusal is not None:
        raise refusal
    return existing


def complete_identity(
    store: Store,
    spec: ProviderSpec,
    settings: ProviderSettings,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    nonce: str,
    now: datetime,
) -> SignupResult:
    """Finish an invitation's "Sign in with <provider>": the user of this identity, else a new user WITHOUT an
    organization (the invitation gives them one); a verified email of an existing account asks for linking."""
    identity, _tokens = _verified(store, spec, settings, params, expected_state, code_verifier, nonce, now)
    existing, refusal = _existing_or_refusal(store, spec, identity)
    if refusal is not None:
        raise refusal
    if existing is not None:
        return SignupResult(existing, None, "", [], created=False)
    try:
        with store.unit_of_work() as uow:
            user = uow.users.add_external(identity.email, identity.name, spec.key, identity.subject)
            result = SignupResult(user.id, None, "", [], created=True)
            uow.commit()
    except (ValueError, IntegrityError):
        raise SignupError(
            f"this {spec.display_name} user or email already has a Nudge account; sign in instead"
        ) from None
    return result
