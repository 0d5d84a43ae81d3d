"""connector.accounts.signup: sign-up creates user + organization + owner + connections in one go, or nothing at all."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from connector.accounts.signup import (
    AccountExists,
    LinkRequired,
    ReplayedSignIn,
    SignupError,
    begin_signup,
    complete_identity,
    complete_signin,
    complete_signup,
    identities,
    link_identity,
)
from connector.accounts.users import authenticate, create_user
from connector.domain.model import ConnectionInfo, Role
from connector.errors import AuthError
from connector.ports import Identity, ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store
from connector.storage.tables import Connection, OidcNonce, Organization, User
from connector.vault.keyring import Vault, generate_key
from connector.vault.tokens import open_tokens
from providers.xero import PROVIDER

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STATE, VERIFIER, NONCE = "st4te", "verifier", "n0nce"
PARAMS = {"code": "the-code", "state": STATE}
SETTINGS = ProviderSettings(key="xero", client_id="cid", client_secret="secret", redirect_uri="http://x/cb")
TOKENS = TokenSet("access", "refresh", NOW + timedelta(minutes=30), id_token="header.claims.sig")
FILES = [
    ConnectionInfo(provider="xero", tenant_id="t-1", name="First Org Ltd"),
    ConnectionInfo(provider="xero", tenant_id="t-2", name="Second Org Ltd"),
]


_NONCES = itertools.count()


def fresh_nonce() -> str:
    """A nonce not used before: each ID token's nonce is single use (oidc_nonces)."""
    return f"{NONCE}-{next(_NONCES)}"


RELEASED: list[list[str]] = []  # the tenants each refused or repeated sign-up handed back at the provider


def spec(identity: Identity | Exception, files: list[ConnectionInfo] = FILES) -> ProviderSpec:
    """Xero's spec with the network calls replaced: tests never leave the machine."""
    seen: dict[str, str] = {}

    def exchange(settings: ProviderSettings, params: Mapping[str, str], verifier: str, now: datetime) -> TokenSet:
        seen["verifier"] = verifier
        return TOKENS

    def identify(settings: ProviderSettings, tokens: TokenSet, nonce: str, now: datetime) -> Identity:
        assert tokens is TOKENS
        assert nonce.startswith(NONCE)
        if isinstance(identity, Exception):
            raise identity
        return identity

    def connect(settings: ProviderSettings, params: Mapping[str, str], tokens: TokenSet) -> list[ConnectionInfo]:
        return files

    def disconnect_tenants(settings: ProviderSettings, tokens: TokenSet, tenants: Collection[str]) -> list[str]:
        RELEASED.append(sorted(tenants))
        return sorted(tenants)

    def revoke(settings: ProviderSettings, tokens: TokenSet) -> None:
        raise AssertionError("a sign-up never revokes the grant the user's connections share")

    return replace(
        PROVIDER,
        exchange_code=exchange,
        identify=identify,
        connect=connect,
        disconnect_tenants=disconnect_tenants,
        revoke=revoke,
    )


@pytest.fixture
def vault() -> Vault:
    return Vault.from_keys({"k1": generate_key()}, "k1")


def counts(store: Store) -> tuple[int, int, int]:
    with store.unit_of_work() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(table)) for table in (User, Organization, Connection)
        )


def signup(
    store: Store, vault: Vault, provider: ProviderSpec, params: Mapping[str, str] = PARAMS, nonce: str = ""
) -> object:
    return complete_signup(store, vault, provider, SETTINGS, params, STATE, VERIFIER, nonce or fresh_nonce(), NOW)


def test_begin_signup_adds_a_nonce_and_pkce() -> None:
    request = begin_signup(PROVIDER, SETTINGS)
    query = parse_qs(urlsplit(request.url).query)
    assert query["nonce"] == [request.nonce]
    assert query["state"] == [request.state]
    assert query["code_challenge_method"] == ["S256"]
    assert request.code_verifier
    assert {"openid", "profile", "email", "offline_access"} <= set(query["scope"][0].split())
    sign_in = parse_qs(urlsplit(begin_signup(PROVIDER, SETTINGS, sign_in_only=True).url).query)
    assert sign_in["scope"] == ["openid profile email"]


def test_signup_creates_user_organization_owner_and_connections(store: Store, vault: Vault) -> None:
    result = complete_signup(
        store,
        vault,
        spec(Identity("sub-1", "New@Example.com", "Nia New")),
        SETTINGS,
        PARAMS,
        STATE,
        VERIFIER,
        NONCE,
        NOW,
    )
    assert result.created
    assert result.org_name == "First Org Ltd"
    assert [c.name for c in result.connections] == ["First Org Ltd", "Second Org Ltd"]
    with store.unit_of_work() as uow:
        user = uow.users.by_identity("xero", "sub-1")
        assert user is not None
        assert user.id == result.user_id
        assert user.email == "new@example.com"
        assert user.display_name == "Nia New"
        assert user.password_hash == ""
        assert authenticate(uow, "new@example.com", "") is None
        assert uow.memberships.role(user.id, result.org_id or 0) is Role.OWNER
        connections = uow.connections.for_organization(result.org_id or 0)
        assert {c.tenant_id for c in connections} == {"t-1", "t-2"}
        assert all(open_tokens(vault, c).refresh_token == "refresh" for c in connections)
    assert counts(store) == (1, 1, 2)


def test_a_second_signup_of_the_same_identity_creates_nothing(store: Store, vault: Vault) -> None:
    provider = spec(Identity("sub-1", "new@example.com", "Nia"))
    first = signup(store, vault, provider)
    again = signup(store, vault, provider)
    assert not again.created
    assert again.user_id == first.user_id
    assert counts(store) == (1, 1, 2)


def test_an_email_with_a_local_account_is_refused_and_nothing_is_created(store: Store, vault: Vault) -> None:
    with store.unit_of_work() as uow:
        create_user(uow, "taken@example.com", "a long enough password")
        uow.commit()
    RELEASED.clear()
    with pytest.raises(AccountExists, match=r"already exists.*Sign in.*connect Xero from your dashboard"):
        signup(store, vault, spec(Identity("sub-2", "TAKEN@example.com", "T")))
    assert counts(store) == (1, 0, 0)
    assert [sorted(info.tenant_id for info in FILES)] == RELEASED  # the refused consent's organisations handed back
    with store.unit_of_work() as uow:
        user = uow.users.by_email("taken@example.com")
        assert user is not None
        assert user.auth_provider is None
        assert user.auth_subject is None


@pytest.mark.parametrize(
    ("params", "expected", "match"),
    [
        ({"code": "c", "state": "other"}, STATE, "state mismatch"),
        ({"code": "c", "state": STATE}, "", "state mismatch"),
        ({"error": "access_denied", "state": STATE}, STATE, "did not grant access"),
        ({"state": STATE}, STATE, "no authorization code"),
    ],
)
def test_callback_problems_create_nothing(
    store: Store, vault: Vault, params: dict[str, str], expected: str, match: str
) -> None:
    with pytest.raises(SignupError, match=match):
        complete_signup(store, vault, spec(Identity("s", "a@example.com")), SETTINGS, params, expected, "v", NONCE, NOW)
    assert counts(store) == (0, 0, 0)


def test_an_unverifiable_id_token_creates_nothing(store: Store, vault: Vault) -> None:
    refused = AuthError("Xero's sign-in could not be verified (the ID token has expired); start again.")
    with pytest.raises(SignupError, match="could not be verified"):
        signup(store, vault, spec(refused))
    assert counts(store) == (0, 0, 0)


def test_no_email_or_no_organisation_creates_nothing(store: Store, vault: Vault) -> None:
    with pytest.raises(SignupError, match="email"):
        signup(store, vault, spec(Identity("s", "")))
    with pytest.raises(SignupError, match="no organisation"):
        signup(store, vault, spec(Identity("s", "a@example.com"), files=[]))
    assert counts(store) == (0, 0, 0)


def test_signin_finds_the_user_by_identity_only(store: Store, vault: Vault) -> None:
    created = signup(store, vault, spec(Identity("sub-1", "new@example.com")))
    user_id = complete_signin(
        store, spec(Identity("sub-1", "x@example.com")), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW
    )
    assert user_id == created.user_id  # type: ignore[attr-defined]
    with pytest.raises(SignupError, match="Sign up with Xero first"):
        complete_signin(
            store, spec(Identity("sub-9", "new@example.com")), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW
        )
    assert counts(store) == (1, 1, 2)


def test_identities_are_unique_per_provider(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.users.add_external("a@example.com", "A", "xero", "sub")
        with pytest.raises(ValueError, match="this xero identity already has a user"):
            uow.users.add_external("b@example.com", "B", "xero", "sub")
        uow.users.add_external("c@example.com", "C", "quickbooks", "sub")
        create_user(uow, "local1@example.com", "a long enough password")
        create_user(uow, "local2@example.com", "a long enough password")  # NULL identities never collide
        uow.commit()


def test_signup_seeds_the_new_organizations_library_from_the_starter(store: Store, vault: Vault) -> None:
    from connector.library.items import list_items
    from tests.support.library import starter_settings

    result = complete_signup(
        store,
        vault,
        spec(Identity("sub-9", "seed@example.com", "Sid Seed")),
        SETTINGS,
        PARAMS,
        STATE,
        VERIFIER,
        fresh_nonce(),
        NOW,
        starter=starter_settings(),
    )
    with store.unit_of_work() as uow:
        cadences = list_items(uow, result.org_id or 0, "cadence")
        organization = uow.organizations.get(result.org_id or 0)
    assert [c.name for c in cadences] == ["standard"]
    assert organization is not None
    assert organization.settings["default_cadence_id"] == cadences[0].id


def test_a_nonce_is_single_use_even_in_a_new_round_trip(store: Store, vault: Vault) -> None:
    nonce = fresh_nonce()
    first = signup(store, vault, spec(Identity("sub-r", "replay@example.com")), nonce=nonce)
    assert first.created  # type: ignore[attr-defined]
    created = counts(store)
    # The same verified ID token (same nonce) presented again, as a sign-up or a sign-in: refused, nothing created.
    with pytest.raises(ReplayedSignIn, match="already used"):
        signup(store, vault, spec(Identity("sub-other", "other@example.com")), nonce=nonce)
    with pytest.raises(ReplayedSignIn, match="already used"):
        complete_signin(store, spec(Identity("sub-r", "replay@example.com")), SETTINGS, PARAMS, STATE, "v", nonce, NOW)
    assert counts(store) == created
    with store.unit_of_work() as uow:
        stored = [row[0] for row in uow.session.execute(select(func.count()).select_from(OidcNonce))]
        assert stored == [1]
        assert uow.session.scalar(select(OidcNonce.nonce_hash)) != nonce  # hashed, never the nonce


def test_a_verified_email_of_an_existing_account_asks_for_linking(store: Store, vault: Vault) -> None:
    with store.unit_of_work() as uow:
        local = create_user(uow, "owner@example.com", "a long enough password")
        uow.commit()
        local_id = local.id
    RELEASED.clear()
    verified = Identity("intuit-sub", "Owner@Example.com", "Olivia", email_verified=True)
    with pytest.raises(LinkRequired) as asked:
        signup(store, vault, spec(verified))
    assert asked.value.link.user_id == local_id
    assert asked.value.link.subject == "intuit-sub"
    assert counts(store) == (1, 0, 0)  # nothing created before the password is given
    assert RELEASED  # the consent was handed back
    with pytest.raises(SignupError, match="another Nudge account"):
        link_identity(store, asked.value.link, local_id + 1, NOW)
    link_identity(store, asked.value.link, local_id, NOW)
    # From now on the identity signs in to that account, and cannot be linked twice.
    user_id = complete_signin(store, spec(verified), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW)
    assert user_id == local_id
    with pytest.raises(SignupError, match="already signs in"):
        link_identity(store, asked.value.link, local_id, NOW)
    with store.unit_of_work() as uow:
        assert [i.provider for i in identities(uow).for_user(local_id)] == ["xero"]
        assert identities(uow).user_for("xero", "intuit-sub").id == local_id  # type: ignore[union-attr]


def test_an_unverified_email_never_links(store: Store, vault: Vault) -> None:
    with store.unit_of_work() as uow:
        create_user(uow, "victim@example.com", "a long enough password")
        uow.commit()
    unverified = Identity("attacker-sub", "victim@example.com", "Mallory", email_verified=False)
    with pytest.raises(AccountExists):
        signup(store, vault, spec(unverified))
    with pytest.raises(SignupError, match="no Nudge account signs in"):
        complete_signin(store, spec(unverified), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW)
    assert counts(store) == (1, 0, 0)


def test_an_invitations_sign_in_creates_a_user_without_an_organization(store: Store) -> None:
    identity = Identity("invitee-sub", "invitee@example.com", "Ivy")
    result = complete_identity(store, spec(identity), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW)
    assert result.created
    assert result.org_id is None
    assert counts(store) == (1, 0, 0)
    again = complete_identity(store, spec(identity), SETTINGS, PARAMS, STATE, "v", fresh_nonce(), NOW)
    assert not again.created
    assert again.user_id == result.user_id
