"""Connect lists only the organisations of its own consent (authEventId); disconnect ends one tenant only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.errors import AuthError
from connector.ports import ProviderSettings, TokenSet
from providers.xero.adapter import auth_event_id, connect, disconnect_tenants
from providers.xero.emulator import XeroEmulator
from providers.xero.oauth import tokens_from_response


def _tokens(body: dict[str, object]) -> TokenSet:
    return tokens_from_response(body, datetime.now(UTC))


def test_connect_lists_only_the_tenants_of_this_consent(xero: XeroEmulator, settings: ProviderSettings) -> None:
    earlier = xero.add_tenant("Connected last year")
    now = xero.add_tenant("Connected now")
    xero.grant([earlier])
    tokens = _tokens(xero.grant([now]))
    assert [info.tenant_id for info in connect(settings, {}, tokens)] == [now]


def test_disconnect_tenants_ends_one_tenant_and_keeps_the_grant(xero: XeroEmulator, settings: ProviderSettings) -> None:
    first, second = xero.add_tenant("One"), xero.add_tenant("Two")
    tokens = _tokens(xero.grant([first, second]))
    assert disconnect_tenants(settings, tokens, [first]) == [first]
    with xero.state.lock:
        assert [c["tenantId"] for c in xero.state.connections] == [second]
        assert not any(grant.revoked for grant in xero.state.grants.values())
    assert disconnect_tenants(settings, tokens, [second]) == [second]
    with xero.state.lock:  # nothing left: the refresh token was revoked too
        assert all(grant.revoked for grant in xero.state.grants.values())


@pytest.mark.parametrize(
    "token", ["", "opaque-token", "a.b.c", "a.eyJmb28iOiAxfQ.c", "a.eyJhdXRoZW50aWNhdGlvbl9ldmVudF9pZCI6IDF9.c"]
)
def test_a_token_without_its_consent_id_is_refused(token: str) -> None:
    with pytest.raises(AuthError, match="which consent"):
        auth_event_id(token)
