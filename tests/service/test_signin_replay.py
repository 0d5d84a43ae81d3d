"""A verified ID token is single use on both providers: presented again, even in a new round trip whose nonce
matches, it is refused with a clear message and nothing is created (real emulators, real `identify`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.accounts.signup import ReplayedSignIn, complete_signin, complete_signup
from connector.ports import ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store
from connector.storage.tables import Connection, Organization, User
from connector.vault.keyring import Vault, generate_key

STATE = "st4te"


@pytest.fixture(scope="module")
def xero() -> Iterator[Any]:
    from providers.xero.emulator import start

    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def vault() -> Vault:
    return Vault.from_keys({"k1": generate_key()}, "k1")


def counts(store: Store) -> tuple[int, int, int]:
    with store.unit_of_work() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(t)) for t in (User, Organization, Connection)
        )


def _replaying(spec: ProviderSpec, tokens: TokenSet) -> ProviderSpec:
    """The provider, except that every code exchange answers with the same (captured) tokens."""

    def exchange(settings: ProviderSettings, params: Mapping[str, str], verifier: str, now: datetime) -> TokenSet:
        return tokens

    return replace(spec, exchange_code=exchange)


def _quickbooks(qbo: Any, nonce: str) -> tuple[ProviderSpec, ProviderSettings, TokenSet, dict[str, str]]:
    from providers.quickbooks import PROVIDER, oauth
    from providers.quickbooks.emulator import DEFAULT_CLIENT_ID
    from tests.support.quickbooks import emulator_settings

    settings = emulator_settings(qbo)
    realm = qbo.store.add_company(f"Replay Co {nonce[:4]}").realm
    scopes = (*oauth.DEFAULT_SCOPES,)
    user = qbo.emulator.oauth.add_user(f"replay-{nonce[:6]}@example.com", "Rae", "Play")
    code = qbo.emulator.oauth.issue_code(
        realm, DEFAULT_CLIENT_ID, scopes, settings.redirect_uri, user=user.sub, nonce=nonce
    )
    params = {"code": code, "state": STATE, "realmId": realm}
    tokens = PROVIDER.exchange_code(settings, params, "", datetime.now(UTC))
    return _replaying(PROVIDER, tokens), settings, tokens, params


def _xero(xero: Any, nonce: str) -> tuple[ProviderSpec, ProviderSettings, TokenSet, dict[str, str]]:
    from providers.xero import PROVIDER
    from tests.support.xero import emulator_settings

    settings = emulator_settings(xero, "http://127.0.0.1:9/xero/callback")
    tenant = xero.add_tenant(f"Replay Ltd {nonce[:4]}")
    with xero.state.lock:
        user = xero.state.add_user(f"replay-{nonce[:6]}@example.com", "Rae", "Play")
        scopes = ["openid", "profile", "email", "offline_access", "accounting.transactions", "accounting.contacts"]
        grant = xero.state.approve(next(iter(xero.state.clients)), [tenant], scopes, user.user_id)
        body = xero.state.issue_tokens(grant, nonce=nonce)
    tokens = TokenSet.from_response(body, datetime.now(UTC))
    return _replaying(PROVIDER, tokens), settings, tokens, {"code": "c", "state": STATE}


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_a_reused_nonce_is_refused_and_creates_nothing(
    store: Store, vault: Vault, qbo: Any, xero: Any, provider: str
) -> None:
    nonce = secrets.token_urlsafe(16)
    spec, settings, _tokens, params = _quickbooks(qbo, nonce) if provider == "quickbooks" else _xero(xero, nonce)
    now = datetime.now(UTC)
    first = complete_signup(store, vault, spec, settings, params, STATE, "verifier", nonce, now)
    assert first.created
    created = counts(store)
    # A new round trip (new state) presenting the same ID token, whose nonce the attacker made match.
    with pytest.raises(ReplayedSignIn, match="already used") as refused:
        complete_signup(store, vault, spec, settings, {**params, "state": "n3w"}, "n3w", "verifier", nonce, now)
    assert "start again" in refused.value.user_message
    with pytest.raises(ReplayedSignIn, match="already used"):
        complete_signin(store, spec, settings, {**params, "state": "n3w"}, "n3w", "verifier", nonce, now)
    assert counts(store) == created
