"""OAuth against the emulator: authorize page, PKCE code exchange, /connections, rotation, grace, revoke."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connector.errors import AuthError
from connector.ports import ProviderSettings
from providers.xero import PROVIDER
from providers.xero.adapter import XeroAdapter
from providers.xero.emulator import XeroEmulator
from providers.xero.oauth import LocalTokenSource, sdk_token, tokens_from_response
from tests.support.xero import admin, seed_basic

VERIFIER = "v" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def _consent(url: str, tenants: list[str], decision: str = "approve") -> dict[str, list[str]]:
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    for tenant in tenants:
        assert tenant in page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form = [*hidden.items(), ("decision", decision), *[("tenant", t) for t in tenants]]
    action = urlsplit(url)._replace(query="").geturl()
    answer = requests.post(action, data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)


def test_authorize_exchange_and_connect_two_organisations(xero: XeroEmulator, settings: ProviderSettings) -> None:
    first = seed_basic(xero)["tenantId"]
    practice = xero.add_tenant("Practice Ltd", tenant_type="PRACTICE")
    url = PROVIDER.authorization_url(settings, "st4te", CHALLENGE)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) >= {
        "openid", "profile", "email", "offline_access",
        "accounting.transactions", "accounting.contacts", "accounting.settings.read",
    }  # fmt: skip
    callback = {k: v[0] for k, v in _consent(url, [first, practice]).items()}
    assert callback["state"] == "st4te"

    now = datetime.now(UTC)
    tokens = PROVIDER.exchange_code(settings, callback, VERIFIER, now)
    assert tokens.expires_at == now + timedelta(seconds=1800)
    assert tokens.refresh_expires_at == now + timedelta(days=60)
    assert "offline_access" in tokens.scope
    assert tokens.id_token
    assert "<redacted>" in repr(tokens)
    assert tokens.access_token not in repr(tokens)

    infos = PROVIDER.connect(settings, callback, tokens)
    assert {(i.tenant_id, i.tenant_type) for i in infos} == {(first, "ORGANISATION"), (practice, "PRACTICE")}
    assert all(i.provider == "xero" and i.extra["connection_id"] for i in infos)
    assert {i.name for i in infos} == {"Demo Company (NZ)", "Practice Ltd"}


def test_wrong_verifier_and_reused_code_are_invalid_grant(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Org")
    callback = {k: v[0] for k, v in _consent(PROVIDER.authorization_url(settings, "s", CHALLENGE), [tenant]).items()}
    with pytest.raises(AuthError) as info:
        PROVIDER.exchange_code(settings, callback, "w" * 64, datetime.now(UTC))
    assert "invalid_grant" in info.value.user_message
    with pytest.raises(AuthError):  # the code was spent by the failed attempt
        PROVIDER.exchange_code(settings, callback, VERIFIER, datetime.now(UTC))


def test_denied_consent_is_an_auth_error(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Org")
    callback = {k: v[0] for k, v in _consent(PROVIDER.authorization_url(settings, "s", ""), [tenant], "deny").items()}
    assert callback == {"error": "access_denied", "state": "s"}
    with pytest.raises(AuthError):
        PROVIDER.exchange_code(settings, callback, "", datetime.now(UTC))


def test_unregistered_redirect_uri_is_never_redirected_to(xero: XeroEmulator, settings: ProviderSettings) -> None:
    admin(
        xero, "oauth", {"client_id": "strict-app", "client_secret": "s3", "redirect_uris": ["https://nudge.example/cb"]}
    )
    answer = requests.get(
        f"{xero.url}/connect/authorize",
        params={"client_id": "strict-app", "redirect_uri": "https://evil.example/cb", "response_type": "code",
                "scope": "openid", "state": "x"},
        allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 400


def test_refresh_rotates_with_grace_then_strict(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Org")
    original = tokens_from_response(xero.grant([tenant]), datetime.now(UTC))
    rotated = PROVIDER.refresh(settings, original, datetime.now(UTC))
    assert rotated.refresh_token != original.refresh_token
    assert rotated.access_token != original.access_token
    # Facts doc §2.1: the superseded token may be retried within 30 minutes (a lost response) ...
    assert PROVIDER.refresh(settings, original, datetime.now(UTC)).access_token
    # ... but not after the grace period.
    admin(xero, "clock", {"advance_seconds": 31 * 60})
    with pytest.raises(AuthError):
        PROVIDER.refresh(settings, original, datetime.now(UTC))
    # Strict mode: no grace at all.
    admin(xero, "oauth", {"strict_refresh": True})
    newer = PROVIDER.refresh(settings, rotated, datetime.now(UTC))
    with pytest.raises(AuthError):
        PROVIDER.refresh(settings, rotated, datetime.now(UTC))
    assert PROVIDER.refresh(settings, newer, datetime.now(UTC)).access_token


def test_refresh_token_dies_after_sixty_days(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Org")
    tokens = tokens_from_response(xero.grant([tenant]), datetime.now(UTC))
    admin(xero, "clock", {"advance_days": 61})
    with pytest.raises(AuthError):
        PROVIDER.refresh(settings, tokens, datetime.now(UTC))


def test_revoke_removes_the_connections(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = xero.add_tenant("Org")
    tokens = tokens_from_response(xero.grant([tenant]), datetime.now(UTC))
    assert len(PROVIDER.connect(settings, {}, tokens)) == 1
    PROVIDER.revoke(settings, tokens)
    with pytest.raises(AuthError):
        PROVIDER.refresh(settings, tokens, datetime.now(UTC))
    assert admin(xero, "oauth", method="GET")["connections"] == []


def test_delete_connection_then_api_is_forbidden(xero: XeroEmulator, settings: ProviderSettings) -> None:
    tenant = seed_basic(xero)["tenantId"]
    body = xero.grant([tenant])
    tokens = tokens_from_response(body, datetime.now(UTC))
    (info,) = PROVIDER.connect(settings, {}, tokens)
    gone = requests.delete(
        f"{xero.url}/connections/{info.extra['connection_id']}",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
        timeout=10,
    )
    assert gone.status_code == 204
    adapter = XeroAdapter(tenant, LocalTokenSource(settings, tokens), settings)
    with pytest.raises(AuthError) as info_:
        adapter.get_invoice("00000000-0000-0000-0000-000000000000")
    assert info_.value.status == 403


def test_sdk_token_dict_has_only_the_keys_the_sdk_accepts(xero: XeroEmulator) -> None:
    tenant = xero.add_tenant("Org")
    tokens = tokens_from_response(xero.grant([tenant]), datetime.now(UTC))
    shape = sdk_token(tokens)
    assert set(shape) == {
        "access_token",
        "scope",
        "expires_in",
        "token_type",
        "expires_at",
        "refresh_token",
        "id_token",
    }
    assert isinstance(shape["scope"], list)
    assert "offline_access" in shape["scope"]
    assert 1700 < shape["expires_in"] <= 1800


def test_five_threads_one_connection_one_refresh(xero: XeroEmulator, settings: ProviderSettings) -> None:
    """The SDK never refreshes on its own: an expired token shared by 5 threads costs exactly one refresh."""
    seeded = seed_basic(xero)
    tenant = seeded["tenantId"]
    issued = tokens_from_response(xero.grant([tenant]), datetime.now(UTC))
    # Tokens whose access token already expired, as seen by the SDK and by the emulator.
    expired = tokens_from_response(xero.grant([tenant]), datetime.now(UTC) - timedelta(hours=1))
    admin(xero, "tokens/expire")
    source = LocalTokenSource(settings, expired)
    adapter = XeroAdapter(tenant, source, settings)
    assert issued.refresh_token  # a second, untouched grant exists: refreshes are counted per emulator
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for invoice_id in seeded["invoices"][:2]:
                assert adapter.get_invoice(invoice_id) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert source.refresh_calls == 1
    assert admin(xero, "oauth", method="GET")["refresh_count"] == 1


def test_expired_at_the_emulator_401_refreshes_once_and_retries(xero: XeroEmulator, settings: ProviderSettings) -> None:
    seeded = seed_basic(xero)
    source = LocalTokenSource(settings, tokens_from_response(xero.grant([seeded["tenantId"]]), datetime.now(UTC)))
    adapter = XeroAdapter(seeded["tenantId"], source, settings)
    admin(xero, "tokens/expire")  # Nudge still believes the token is fresh: the API answers 401
    assert adapter.get_invoice(seeded["invoices"][0]) is not None
    assert source.refresh_calls == 1
    assert [c.status for c in xero.core.calls("data")][-2:] == [401, 200]


def test_invalid_grant_during_sync_is_auth_error_not_a_crash(xero: XeroEmulator, settings: ProviderSettings) -> None:
    seeded = seed_basic(xero)
    source = LocalTokenSource(settings, tokens_from_response(xero.grant([seeded["tenantId"]]), datetime.now(UTC)))
    adapter = XeroAdapter(seeded["tenantId"], source, settings)
    admin(xero, "revoke", {"tenant": seeded["tenantId"]})
    with pytest.raises(AuthError) as info:
        list(adapter.changed_invoices(None))
    assert source._tokens.refresh_token not in info.value.user_message


def test_each_client_has_its_own_token_object(xero: XeroEmulator, settings: ProviderSettings) -> None:
    """xero-python's Configuration() returns a copy of the first one ever made; tokens must not leak across."""
    first = seed_basic(xero)["tenantId"]
    other = xero.add_tenant("Other Org")
    a = XeroAdapter(
        first, LocalTokenSource(settings, tokens_from_response(xero.grant([first]), datetime.now(UTC))), settings
    )
    b = XeroAdapter(
        other, LocalTokenSource(settings, tokens_from_response(xero.grant([other]), datetime.now(UTC))), settings
    )
    assert a.client._sdk.configuration.oauth2_token is not b.client._sdk.configuration.oauth2_token
    assert a.client._sdk.configuration.debug is False
    assert a.provider_reminders_enabled() is False
    assert b.provider_reminders_enabled() is False  # with a's token this would be a 403
