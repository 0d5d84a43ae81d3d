"""A Xero sign-up by an identity Nudge already knows gives back what its consent granted (issue 10 item 18).

Through the real emulator (consent page, token endpoint, JWT access tokens, /connections) and a real store:
the second "Sign up with Xero" of the same Xero user signs them in and creates nothing; the organisation
that consent newly connected is disconnected at Xero again (DELETE /connections/{id}), while the one the
user's Nudge organization uses keeps working — no revocation, which would have cut it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.accounts.signup import begin_signup, complete_signup
from connector.ports import ProviderSettings
from connector.storage import Store
from connector.vault.keyring import Vault, generate_key
from connector.vault.tokens import open_tokens
from providers._emulator.kit import EmulatorKit, emulator_kit
from providers.xero import PROVIDER


@pytest.fixture
def kit() -> Iterator[EmulatorKit]:
    with emulator_kit("xero", rate_limits=False) as handle:
        yield handle


def _signup(kit: EmulatorKit, store: Store, vault: Vault, settings: ProviderSettings, tenants: list[str]) -> object:
    request = begin_signup(PROVIDER, settings)
    params = kit.approve(request.url, tenants)
    return complete_signup(
        store, vault, PROVIDER, settings, params, request.state, request.code_verifier, request.nonce, datetime.now(UTC)
    )


def _connected(kit: EmulatorKit) -> set[str]:
    state = kit.emulator.state  # type: ignore[attr-defined]
    with state.lock:
        return {str(c["tenantId"]) for c in state.connections}


def test_a_repeated_signup_disconnects_only_what_its_consent_newly_connected(kit: EmulatorKit, store: Store) -> None:
    vault = Vault.from_keys({"k1": generate_key()}, "k1")
    settings = kit.settings("http://127.0.0.1:9/signup/xero/callback")
    used = kit.add_company("Kept Ltd")
    first = _signup(kit, store, vault, settings, [used])
    assert first.created  # type: ignore[attr-defined]
    extra = kit.add_company("Ticked By The Way Ltd")

    again = _signup(kit, store, vault, settings, [used, extra])
    assert not again.created  # type: ignore[attr-defined]
    assert _connected(kit) == {used}  # the new organisation's connection was ended, not left dangling
    deletes = [c for c in kit.calls("oauth") if c["method"] == "DELETE"]
    assert len(deletes) == 1
    assert not [c for c in kit.calls("oauth") if c["path"] == "/connect/revocation"]
    # The organisation Nudge uses still answers with the first sign-up's tokens.
    with store.unit_of_work() as uow:
        [connection] = uow.connections.with_tenant("xero", used)
        tokens = open_tokens(vault, connection)
    state = kit.emulator.state  # type: ignore[attr-defined]
    with state.lock:
        grant, _reason = state.grant_for_access(tokens.access_token)
        assert grant is not None
        assert state.connected(grant, used)
